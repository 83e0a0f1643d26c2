// Logs (pino + pino-http) and metrics (prom-client). Request ids: X-Request-Id is honoured
// when it looks like an id, else generated, and always echoed. One log line per request
// carries the model, status, error code and stage timings. A request is logged by what is
// safe to keep: its path without the query string (a query can carry a token or other
// secrets) and a short allow-list of headers (never Authorization or Cookie); Authorization
// and Cookie are also redacted wherever else a request object is logged.
import { randomUUID } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { pino, type Logger } from 'pino'
import { pinoHttp } from 'pino-http'
import client from 'prom-client'

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

export function makeLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  const options = { level, redact: { paths: ['req.headers.authorization', 'req.headers.cookie'], censor: '[redacted]' } }
  return destination ? pino(options, destination) : pino(options)
}

/** The request headers a log line keeps. */
/**
 * One line for an error that repeats (a dependency away: every reconnect attempt fails), then
 * at most one line per `everyMs` saying how many were held back, and one line when it is over.
 * A Redis outage of 11 minutes used to write 2,644 warnings; it now writes about 24.
 */
export function repeatingErrorLog(logger: Logger, msg: string, everyMs = 30_000) {
  let since = 0
  let last = 0
  let held = 0
  return {
    report(err: Error) {
      const now = Date.now()
      if (!since) since = now
      if (now - last >= everyMs) {
        logger.warn({ err: err.message, held_back: held, since: new Date(since).toISOString() }, msg)
        last = now
        held = 0
      } else held++
    },
    /** The dependency answers again: says so once, if anything was reported. */
    recovered() {
      if (!since) return
      logger.info({ held_back: held, down_s: Math.round((Date.now() - since) / 1000) }, `${msg}: recovered`)
      since = last = held = 0
    },
  }
}

export const LOGGED_HEADERS = ['user-agent', 'content-type', 'content-length', 'content-encoding', 'transfer-encoding', 'prefer', 'origin']

interface SerializedReq {
  id: unknown
  method: string
  remoteAddress?: string
  raw: IncomingMessage & { originalUrl?: string }
}

/** A request as logged: id, method, path (no query), allow-listed headers, peer address. */
export function logRequest(r: SerializedReq) {
  const url = r.raw.originalUrl ?? r.raw.url ?? ''
  const q = url.indexOf('?')
  const headers: Record<string, string | string[]> = {}
  for (const h of LOGGED_HEADERS) {
    const v = r.raw.headers[h]
    if (v !== undefined) headers[h] = v
  }
  return { id: r.id, method: r.method, url: q < 0 ? url : url.slice(0, q), headers, remoteAddress: r.remoteAddress }
}

export function httpLogger(logger: Logger) {
  return pinoHttp({
    logger,
    serializers: { req: logRequest },
    genReqId: (req: IncomingMessage, res: ServerResponse) => {
      const given = req.headers['x-request-id']
      const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID()
      res.setHeader('X-Request-Id', id)
      return id
    },
    customProps: (_req, res) => {
      const l = (res as ServerResponse & { locals?: Record<string, unknown> }).locals ?? {}
      return { model: l.model, job_id: l.jobId, code: l.errorCode, timings_ms: l.timings }
    },
    autoLogging: { ignore: (req) => /^\/(healthz|readyz)(\?|$)/.test(req.url ?? '') },
  })
}

export class Metrics {
  readonly registry = new client.Registry()
  readonly httpDuration = new client.Histogram({
    name: 'tabr_http_request_duration_seconds',
    help: 'HTTP request duration by route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  })
  readonly stageDuration = new client.Histogram({
    name: 'tabr_stage_duration_seconds',
    help: 'Inference stage durations (decode, face, flow, poc, predict, total) by model',
    labelNames: ['model', 'stage'] as const,
    buckets: [0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  })

  readonly jobsFinished = new client.Counter({
    name: 'tabr_jobs_finished_total',
    help: 'Queue mode: jobs that ended, by outcome (job durations: tabr_stage_duration_seconds, stage "queue" = waiting for a worker)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  })

  /** Queue mode: job counts by state (waiting, active, delayed, failed, completed), read at scrape time. */
  watchQueue(counts: () => Promise<Record<string, number> | undefined>) {
    new client.Gauge({
      name: 'tabr_queue_jobs',
      help: 'Queue mode: jobs in the queue by state',
      labelNames: ['state'] as const,
      registers: [this.registry],
      async collect() {
        const c = await counts()
        this.reset()
        if (c) for (const [state, n] of Object.entries(c)) this.set({ state }, n)
      },
    })
  }

  /** Gauges by admission kind (`video`, `features`: two limiters). */
  constructor(gauges: { inFlight: () => Record<string, number>; pending: () => Record<string, number> }) {
    client.collectDefaultMetrics({ register: this.registry })
    const byKind = (name: string, help: string, read: () => Record<string, number>) =>
      new client.Gauge({
        name,
        help,
        labelNames: ['kind'] as const,
        registers: [this.registry],
        collect() {
          for (const [kind, n] of Object.entries(read())) this.set({ kind }, n)
        },
      })
    byKind('tabr_inflight', 'inferences running, by kind (video, features)', gauges.inFlight)
    byKind('tabr_pending', 'inferences waiting for a slot, by kind (video, features)', gauges.pending)
  }
}
