// The Open Inference Protocol's routes (api/oip.ts holds the wire format): server metadata
// and health, model metadata and readiness, and inference on a batch of feature vectors, each
// also under /versions/{version}. The bearer token guards all but the two health routes (as
// /healthz and /readyz), and errors take the protocol's form, `{"error": "…"}`, with the
// status of their code (api/error-middleware.ts).
// Inference runs in this process in both execution modes, under the feature-vector limiter:
// a batch costs milliseconds, less than a queue round trip through Redis, and the protocol
// has no asynchronous answer to give (no 202, no job). So queue mode serves these routes too,
// from the API's own copy of each model, and they stay up while Redis is away.
import type { Express, NextFunction, Request } from 'express'
import { SERVICE_NAME, SERVICE_VERSION } from '../../core/config.js'
import { ApiError, modelVersionNotFound } from '../../core/errors.js'
import type { ModelInfo } from '../../services/handler.js'
import { asksEvidence, EXTENSIONS, encodeInferResponse, modelMetadata, parseInferRequest, TENSOR_BODY_LIMIT } from '../oip.js'
import { rawBody } from '../uploads.js'
import type { ApiResponse, RouteContext } from './context.js'

type ModelRequest = Request<{ name: string; version?: string }>

export function oipRoutes(app: Express, { registry, sync, auth, config, metrics }: RouteContext): void {
  /** The model's metadata, once loaded; 404 for an unknown name or a version it does not have. */
  const infoOf = async (req: ModelRequest): Promise<ModelInfo> => {
    const { name, version } = req.params
    const info = (await registry.get(name)).describe()
    if (version !== undefined && version !== info.version) throw modelVersionNotFound(name, version)
    return info
  }
  const json = (answer: (req: ModelRequest) => Promise<unknown>) => async (req: ModelRequest, res: ApiResponse, next: NextFunction) => {
    try {
      res.json(await answer(req))
    } catch (err) {
      next(err)
    }
  }

  app.get('/v2', auth, (_req, res) => void res.json({ name: SERVICE_NAME, version: SERVICE_VERSION, extensions: EXTENSIONS }))
  app.get('/v2/health/live', (_req, res) => void res.json({ live: true }))
  // Ready when every model that must be loaded is: these routes need nothing else (no Redis).
  app.get('/v2/health/ready', (_req, res, next) => {
    if (registry.ready()) return void res.json({ ready: true })
    next(new ApiError('not_ready', 'models are still loading', { 'Retry-After': '1' }))
  })
  for (const base of ['/v2/models/:name', '/v2/models/:name/versions/:version']) {
    app.get(
      base,
      auth,
      json(async (req) => modelMetadata(await infoOf(req))),
    )
    app.get(
      `${base}/ready`,
      auth,
      json(async (req) => ({ name: (await infoOf(req)).name, ready: true })),
    )
    app.post(
      `${base}/infer`,
      auth,
      (req: ModelRequest, _res, next) => {
        registry.assertKnown(req.params.name)
        next()
      },
      rawBody({ maxBytes: TENSOR_BODY_LIMIT, timeoutMs: config.requestTimeoutMs }),
      async (req: ModelRequest, res: ApiResponse, next: NextFunction) => {
        try {
          const started = performance.now()
          const info = await infoOf(req)
          res.locals.model = info.name
          const tensors = parseInferRequest(res.locals.body!, req.headers['inference-header-content-length'], info, config.maxBatchRows)
          // The version was checked by infoOf, before the body was parsed.
          const result = await sync.runBatch(info.name, tensors.values, tensors.rows, { evidence: asksEvidence(tensors) })
          const { header, binary } = encodeInferResponse(info, tensors, result)
          const total = performance.now() - started
          res.locals.timings = { predict: result.predict_ms, total }
          metrics.stageDuration.observe({ model: info.name, stage: 'predict' }, result.predict_ms / 1000)
          metrics.stageDuration.observe({ model: info.name, stage: 'total' }, total / 1000)
          if (!binary) return void res.type('application/json').send(header)
          res.setHeader('Inference-Header-Content-Length', String(header.length))
          res.type('application/octet-stream').send(Buffer.concat([header, binary]))
        } catch (err) {
          next(err)
        }
      },
    )
  }
}
