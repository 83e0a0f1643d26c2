// Liveness, readiness, metrics and the API's own description. /readyz answers 503 while models
// load or (queue mode) while Redis is away, so a balancer sends no traffic to a service that
// would refuse it. /docs serves Swagger UI: the two files of swagger-ui-dist it needs and an
// initializer of ours, nothing else of that folder (its stock index.html fetches an outside
// URL), under a Content-Security-Policy that allows this origin only.
import { createRequire } from 'node:module'
import type { Express } from 'express'
import { pageHeaders } from '../../core/security.js'
import type { RouteContext } from './context.js'

const docsPage = `<!doctype html><html><head><meta charset="utf-8"><title>tabr-serve API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head><body><div id="ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script src="/docs/static/init.js"></script></body></html>`
const docsInit = "window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#ui' })\n"

/** Swagger UI draws with inline styles and data: images; everything else from this origin. */
const docsHeaders = pageHeaders({ style: ["'unsafe-inline'"], img: ['data:'] })

/** The files of swagger-ui-dist served, by name. */
const DOCS_FILES = ['swagger-ui.css', 'swagger-ui-bundle.js']

export function healthRoutes(app: Express, { registry, queue, metrics, config, auth, openapi }: RouteContext): void {
  app.get('/healthz', (_req, res) => void res.json({ status: 'ok' }))
  app.get('/readyz', (req, res) => {
    const [code, message] = !registry.ready() ? ['not_ready', 'models are still loading'] : queue && !queue.ready() ? ['queue_unavailable', 'the job queue (Redis) is unavailable'] : []
    if (!code) return void res.json({ status: 'ready', ...(queue ? { queue: 'ready' } : {}) })
    res
      .status(503)
      .setHeader('Retry-After', '1')
      .json({ error: { code, message, request_id: req.id } })
  })
  app.get('/openapi.json', (_req, res) => void res.json(openapi))
  // absolute-path.js gives the folder without loading the 1.7 MB bundle into the process.
  const uiDir = (createRequire(import.meta.url)('swagger-ui-dist/absolute-path.js') as () => string)()
  app.get('/docs', (_req, res) => {
    docsHeaders(res)
    res.type('html').send(docsPage)
  })
  // A middleware, not routes: these files are not part of the API's contract.
  app.use('/docs/static', (req, res, next) => {
    const name = req.path.slice(1)
    if ((req.method !== 'GET' && req.method !== 'HEAD') || (name !== 'init.js' && !DOCS_FILES.includes(name))) return next()
    docsHeaders(res)
    if (name === 'init.js') return void res.type('js').send(docsInit)
    res.sendFile(name, { root: uiDir, maxAge: '1h' }, (err) => err && next(err))
  })
  app.get('/metrics', ...(config.metricsPublic ? [] : [auth]), async (_req, res, next) => {
    try {
      res.type(metrics.registry.contentType).send(await metrics.registry.metrics())
    } catch (err) {
      next(err)
    }
  })
}
