// The app factory: wires config, registry, limiter, auth, logs and metrics into an Express 5
// app. It never listens (see server.ts), so tests drive the real routes on an ephemeral port.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import cors from 'cors'
import express, { type Request, type Response } from 'express'
import type { Logger } from 'pino'
import { ApiError, errorMiddleware } from './api/errors.js'
import { openapi } from './api/openapi.js'
import { bodyToInput } from './api/uploads.js'
import type { Config } from './core/config.js'
import { bearerAuth } from './core/security.js'
import { httpLogger, makeLogger, Metrics } from './core/observability.js'
import type { InferenceInput } from './services/handler.js'
import { Limiter } from './services/executor.js'
import { Registry } from './services/registry.js'

export interface Service {
  app: express.Express
  registry: Registry
  limiter: Limiter
  logger: Logger
  /** The private folder uploads are written to (emptied as each response ends). */
  uploadDir: string
  /** Removes the upload folder. */
  dispose(): void
}

const docsPage = `<!doctype html><html><head><meta charset="utf-8"><title>tabr-serve API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head><body><div id="ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#ui' })</script></body></html>`

export function createService(config: Config, opts: { logger?: Logger; registry?: Registry } = {}): Service {
  const logger = opts.logger ?? makeLogger(config.logLevel)
  const registry = opts.registry ?? new Registry(config.registry, { ortProvider: config.ortProvider, lazy: config.modelLoading === 'lazy' })
  const limiter = new Limiter(config.concurrency, config.maxPending, config.requestTimeoutMs)
  const metrics = new Metrics({ inFlight: () => limiter.inFlight, pending: () => limiter.pending })
  const uploadDir = mkdtempSync(join(tmpdir(), 'tabr-serve-'))
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
    if (registry.ready()) return void res.json({ status: 'ready' })
    res.status(503).setHeader('Retry-After', '1').json({ error: { code: 'not_ready', message: 'models are still loading', request_id: req.id } })
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

  app.post(
    '/infer/:model',
    auth,
    (req: Request<{ model: string }>, _res, next) => next(registry.has(req.params.model) ? undefined : new ApiError(404, 'model_not_found', `no model named ${JSON.stringify(req.params.model)}`)),
    bodyToInput(uploadDir, config.maxUploadBytes),
    async (req: Request<{ model: string }>, res: Response) => {
      const started = performance.now()
      const name = req.params.model
      res.locals.model = name
      const handler = await registry.get(name)
      const input = res.locals.input as InferenceInput
      const result = await limiter.run((signal) => handler.infer(input, signal))
      const timings = { ...result.timings_ms, total: performance.now() - started }
      res.locals.timings = timings
      for (const [stage, ms] of Object.entries(timings)) metrics.stageDuration.observe({ model: name, stage }, ms / 1000)
      const info = handler.describe()
      res.json({
        model: name,
        model_version: info.version,
        request_id: req.id,
        prediction: result.prediction,
        ...(result.video ? { video: result.video } : {}),
        timings_ms: timings,
        ...(req.query.include === 'features' && result.features ? { features: result.features } : {}),
      })
    },
  )

  app.use((req, _res, next) => next(new ApiError(404, 'not_found', `no route ${req.method} ${req.path}`)))
  app.use(errorMiddleware)

  return { app, registry, limiter, logger, uploadDir, dispose: () => rmSync(uploadDir, { recursive: true, force: true }) }
}
