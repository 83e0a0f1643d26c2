// Liveness, readiness, metrics and the API's own description. /readyz answers 503 while models
// load or (queue mode) while Redis is away, so a balancer sends no traffic to a service that
// would refuse it. /docs serves Swagger UI from swagger-ui-dist's folder.
import { createRequire } from 'node:module'
import express, { type Express } from 'express'
import type { RouteContext } from './context.js'

const docsPage = `<!doctype html><html><head><meta charset="utf-8"><title>tabr-serve API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head><body><div id="ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#ui' })</script></body></html>`

export function healthRoutes(app: Express, { registry, queue, metrics, config, auth, openapi }: RouteContext): void {
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
  app.get('/metrics', ...(config.metricsPublic ? [] : [auth]), async (_req, res, next) => {
    try {
      res.type(metrics.registry.contentType).send(await metrics.registry.metrics())
    } catch (err) {
      next(err)
    }
  })
}
