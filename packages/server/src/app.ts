// The app factory: wires config, registry, executors, auth, logs and metrics into an Express 5
// app; the routes live in api/routes/. It never listens (see server.ts), so tests drive the
// real routes on an ephemeral port. Videos and feature vectors are admitted by two limiters
// (services/executor.ts): a feature vector costs under a millisecond and must not wait behind
// videos that take seconds. A declared route asked with another method answers 405 with
// `Allow`, any other path 404.
import cors from 'cors'
import express from 'express'
import type { Logger } from 'pino'
import { errorMiddleware } from './api/error-middleware.js'
import { openapiFor } from './api/openapi.js'
import type { RouteContext } from './api/routes/context.js'
import { healthRoutes } from './api/routes/health.js'
import { inferRoutes } from './api/routes/infer.js'
import { jobRoutes } from './api/routes/jobs.js'
import { modelRoutes } from './api/routes/models.js'
import { oipRoutes } from './api/routes/oip.js'
import { webRoutes } from './api/routes/web.js'
import type { Config } from './core/config.js'
import { ApiError } from './core/errors.js'
import { bearerAuth } from './core/security.js'
import { httpLogger, makeLogger, Metrics } from './core/observability.js'
import { logSweeps, makePrivateDir } from './core/tempdirs.js'
import type { Answer } from './services/answer.js'
import { CallbackPolicy } from './services/callbacks.js'
import { Limiter, SyncExecutor } from './services/executor.js'
import { QueueExecutor } from './services/queue-executor.js'
import { Registry } from './services/registry.js'

export interface Service {
  app: express.Express
  registry: Registry
  /** Admits video inferences (CONCURRENCY, MAX_PENDING). */
  limiter: Limiter
  /** Admits feature-vector inferences (FEATURE_CONCURRENCY, FEATURE_MAX_PENDING). */
  featureLimiter: Limiter
  /** Queue mode only: the job queue client. */
  queue?: QueueExecutor
  logger: Logger
  /** The private folder uploads are written to (emptied as each response ends). */
  uploadDir: string
  /** Closes the queue connections and removes the upload folder. */
  dispose(): Promise<void>
}

/** A service's upload folder: `tabr-serve-<namespace>-<pid>-XXXXXX` in the OS temp dir (core/tempdirs). */
export const UPLOAD_DIR_PREFIX = 'tabr-serve-'

export function createService(config: Config, opts: { logger?: Logger; registry?: Registry } = {}): Service {
  const logger = opts.logger ?? makeLogger(config.logLevel)
  const registry =
    opts.registry ??
    new Registry(config.registry, {
      ortProvider: config.ortProvider,
      flow: config.flow,
      limits: config.limits,
      warn: (model, msg) => logger.warn({ model }, msg),
      lazy: config.modelLoading === 'lazy',
    })
  const limiter = new Limiter(config.concurrency, config.maxPending, config.requestTimeoutMs)
  const featureLimiter = new Limiter(config.featureConcurrency, config.featureMaxPending, config.requestTimeoutMs)
  const metrics = new Metrics({
    inFlight: () => ({ video: limiter.inFlight, features: featureLimiter.inFlight }),
    pending: () => ({ video: limiter.pending, features: featureLimiter.pending }),
  })
  const observe = (a: Answer, totalMs?: number) => {
    for (const [stage, ms] of Object.entries(totalMs === undefined ? a.timings_ms : { ...a.timings_ms, total: totalMs })) metrics.stageDuration.observe({ model: a.model, stage }, ms / 1000)
  }
  // The API's own executor: POST /infer in sync mode, and the Open Inference Protocol's
  // batches in both modes (see api/routes/oip.ts).
  const sync = new SyncExecutor(registry, limiter, featureLimiter, observe)
  const queue =
    config.executionMode === 'queue'
      ? new QueueExecutor(config, logger, (outcome, a) => {
          metrics.jobsFinished.inc({ outcome })
          if (a) observe(a)
        })
      : undefined
  if (queue) metrics.watchQueue(() => queue.counts())
  const callbacks = new CallbackPolicy(config.callbackHosts, config.callbackSecret)
  // A killed service leaves its upload folder behind: the next one removes it, at start-up and
  // then once a minute.
  const uploads = makePrivateDir(UPLOAD_DIR_PREFIX, logSweeps(logger, 'upload folders of services', 'upload folder'))
  const uploadDir = uploads.path
  const openapi = openapiFor(config.executionMode)
  const auth = bearerAuth(config.tokens)
  const app = express()
  app.disable('x-powered-by')
  app.set('trust proxy', false)
  app.use(httpLogger(logger))
  if (config.corsOrigins.length) {
    app.use(cors({ origin: config.corsOrigins, allowedHeaders: ['Authorization', 'Content-Type', 'X-Request-Id', 'Prefer'], exposedHeaders: ['X-Request-Id', 'Retry-After', 'Location'], maxAge: 600 }))
  }
  app.use((req, res, next) => {
    const end = metrics.httpDuration.startTimer({ method: req.method })
    res.on('finish', () => end({ route: (req.route?.path as string | undefined) ?? 'unmatched', status: String(res.statusCode) }))
    next()
  })

  const ctx: RouteContext = { config, registry, sync, executor: queue ?? sync, queue, metrics, callbacks, auth, uploadDir, openapi }
  healthRoutes(app, ctx)
  modelRoutes(app, ctx)
  inferRoutes(app, ctx)
  jobRoutes(app, ctx)
  oipRoutes(app, ctx)
  webRoutes(app, ctx, logger)

  // Every declared path answers its other methods 405 with Allow (OPTIONS: 204 with Allow).
  const router = (app as unknown as { router: { stack: { route?: { path: string; methods: Record<string, boolean> } }[] } }).router
  const declared = new Map<string, Set<string>>()
  for (const { route } of router.stack) {
    if (!route) continue
    const methods = declared.get(route.path) ?? new Set<string>()
    for (const [m, on] of Object.entries(route.methods)) if (on) methods.add(m.toUpperCase())
    declared.set(route.path, methods)
  }
  for (const [path, methods] of declared) {
    if (methods.has('GET')) methods.add('HEAD')
    const allow = [...methods].sort().join(', ')
    app.route(path).all((req, res, next) => {
      res.setHeader('Allow', allow)
      if (req.method === 'OPTIONS') return void res.status(204).end()
      next(new ApiError('method_not_allowed', `${req.method} is not allowed here (Allow: ${allow})`))
    })
  }
  app.use((req, _res, next) => next(new ApiError('not_found', `no route ${req.method} ${req.path}`)))
  app.use(errorMiddleware)

  const dispose = async () => {
    registry.close()
    try {
      await queue?.close()
    } finally {
      uploads.release()
    }
  }
  return { app, registry, limiter, featureLimiter, queue, logger, uploadDir, dispose }
}
