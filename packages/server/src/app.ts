// The app factory: wires config, registry, limiters, auth, logs and metrics into an Express 5
// app. It never listens (see server.ts), so tests drive the real routes on an ephemeral port.
// Videos and feature vectors are admitted by two limiters: a feature vector costs under a
// millisecond and must not wait behind videos that take seconds. A declared route asked with
// another method answers 405 with `Allow`, any other path 404.
import { rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import cors from 'cors'
import express, { type Request, type Response } from 'express'
import type { Logger } from 'pino'
import { ApiError, errorMiddleware } from './api/errors.js'
import { openapiFor } from './api/openapi.js'
import { bodyToInput } from './api/uploads.js'
import type { Config } from './core/config.js'
import { bearerAuth } from './core/security.js'
import { httpLogger, makeLogger, Metrics } from './core/observability.js'
import { makePrivateDir, removeStaleDirs } from './core/tempdirs.js'
import { answerOf, inferBody, type Answer } from './services/answer.js'
import { CallbackPolicy } from './services/callbacks.js'
import type { InferenceInput } from './services/handler.js'
import { Limiter } from './services/executor.js'
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

/** A service's upload folder: `tabr-serve-<pid>-XXXXXX` in the OS temp dir. */
export const UPLOAD_DIR_PREFIX = 'tabr-serve-'

/** RFC 7240: `Prefer: respond-async` (possibly among other preferences). */
const prefersAsync = (req: Request) => /(^|[\s,;])respond-async($|[\s,;=])/i.test(String(req.headers.prefer ?? ''))

const docsPage = `<!doctype html><html><head><meta charset="utf-8"><title>tabr-serve API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head><body><div id="ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#ui' })</script></body></html>`

export function createService(config: Config, opts: { logger?: Logger; registry?: Registry } = {}): Service {
  const logger = opts.logger ?? makeLogger(config.logLevel)
  const registry = opts.registry ?? new Registry(config.registry, { ortProvider: config.ortProvider, limits: config.limits, lazy: config.modelLoading === 'lazy' })
  const limiter = new Limiter(config.concurrency, config.maxPending, config.requestTimeoutMs)
  const featureLimiter = new Limiter(config.featureConcurrency, config.featureMaxPending, config.requestTimeoutMs)
  const metrics = new Metrics({
    inFlight: () => ({ video: limiter.inFlight, features: featureLimiter.inFlight }),
    pending: () => ({ video: limiter.pending, features: featureLimiter.pending }),
  })
  const observe = (a: Answer, totalMs?: number) => {
    for (const [stage, ms] of Object.entries(totalMs === undefined ? a.timings_ms : { ...a.timings_ms, total: totalMs })) metrics.stageDuration.observe({ model: a.model, stage }, ms / 1000)
  }
  const queue =
    config.executionMode === 'queue'
      ? new QueueExecutor(config, logger, (outcome, a) => {
          metrics.jobsFinished.inc({ outcome })
          if (a) observe(a)
        })
      : undefined
  if (queue) metrics.watchQueue(() => queue.counts())
  const callbacks = new CallbackPolicy(config.callbackHosts, config.callbackSecret)
  // A killed service leaves its upload folder behind: the next one removes it.
  const stale = removeStaleDirs(UPLOAD_DIR_PREFIX)
  if (stale.removed.length) logger.info({ folders: stale.removed }, 'removed the upload folders of services that no longer run')
  if (stale.failed.length) logger.warn({ folders: stale.failed }, 'cannot remove the upload folders of services that no longer run')
  const uploadDir = makePrivateDir(UPLOAD_DIR_PREFIX)
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

  app.get('/healthz', (_req, res) => void res.json({ status: 'ok' }))
  app.get('/readyz', (req, res) => {
    const [code, message] = !registry.ready() ? ['not_ready', 'models are still loading'] : queue && !queue.ready() ? ['queue_unavailable', 'the job queue (Redis) is unavailable'] : []
    if (!code) return void res.json({ status: 'ready', ...(queue ? { queue: 'ready' } : {}) })
    res.status(503).setHeader('Retry-After', '1').json({ error: { code, message, request_id: req.id } })
  })
  app.get('/openapi.json', (_req, res) => void res.json(openapi))
  // absolute-path.js gives the folder without loading the 1.7 MB bundle into the process.
  const uiDir = (createRequire(import.meta.url)('swagger-ui-dist/absolute-path.js') as () => string)()
  app.use('/docs/static', express.static(uiDir, { index: false }))
  app.get('/docs', (_req, res) => void res.type('html').send(docsPage))
  app.get('/metrics', ...(config.metricsPublic ? [] : [auth]), async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics())
  })

  app.get('/models', auth, (_req, res) => void res.json({ models: registry.list() }))
  app.get('/models/:model', auth, async (req: Request<{ model: string }>, res) => {
    res.json((await registry.get(req.params.model)).describe())
  })

  // Cheap refusals come before the body is read: unknown model, queue down, bad callback_url.
  app.post(
    '/infer/:model',
    auth,
    (req: Request<{ model: string }>, _res, next) => {
      if (!registry.has(req.params.model)) return next(new ApiError('model_not_found', `no model named ${JSON.stringify(req.params.model)}`))
      queue?.assertAvailable()
      if (req.query.callback_url !== undefined) checkCallback(req.query.callback_url)
      next()
    },
    bodyToInput(uploadDir, { maxBytes: config.maxUploadBytes, timeoutMs: config.requestTimeoutMs }),
    async (req: Request<{ model: string }>, res: Response) => {
      const started = performance.now()
      const name = req.params.model
      res.locals.model = name
      const input = res.locals.input as InferenceInput
      const includeFeatures = req.query.include === 'features'
      const rawCallback = req.query.callback_url ?? (req.body as { callback_url?: unknown } | undefined)?.callback_url
      const callbackUrl = rawCallback === undefined ? undefined : checkCallback(rawCallback)
      let answer: Answer
      if (queue) {
        const id = await queue.submit(name, input, { includeFeatures, requestId: req.id as string, callbackUrl })
        res.locals.jobId = id
        if (prefersAsync(req)) {
          return void res.status(202).location(`/jobs/${id}`).setHeader('Preference-Applied', 'respond-async').json({ job_id: id, status: 'queued' })
        }
        answer = await queue.wait(id)
      } else {
        const handler = await registry.get(name)
        const admit = input.kind === 'features' ? featureLimiter : limiter
        answer = answerOf(name, handler, await admit.run((signal) => handler.infer(input, signal)), includeFeatures)
      }
      const total = performance.now() - started
      res.locals.timings = { ...answer.timings_ms, total }
      if (!queue) observe(answer, total)
      res.json(inferBody(answer, req.id as string, total))
    },
  )

  app.get('/jobs/:id', auth, async (req: Request<{ id: string }>, res) => {
    const view = queue ? await queue.view(req.params.id) : undefined
    if (!view) throw new ApiError('job_not_found', 'no such job (unknown, or expired after JOB_TTL_S)')
    res.json(view)
  })

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

  function checkCallback(raw: unknown): string {
    if (!queue) throw new ApiError('callback_not_allowed', 'callback_url: callbacks need EXECUTION_MODE=queue')
    return callbacks.check(raw)
  }

  const dispose = async () => {
    await queue?.close()
    rmSync(uploadDir, { recursive: true, force: true })
  }
  return { app, registry, limiter, featureLimiter, queue, logger, uploadDir, dispose }
}
