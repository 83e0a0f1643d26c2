// POST /infer/{model}: cheap refusals first (unknown model, queue down, bad callback_url) so a
// refused upload is never read; then the body becomes an input (uploads.ts) and an executor
// answers it: the SyncExecutor in this process, or the QueueExecutor through a worker, which
// answers 202 + Location at once when the client sent `Prefer: respond-async`.
import type { Express, NextFunction, Request } from 'express'
import { ApiError } from '../../core/errors.js'
import { inferBody } from '../../services/answer.js'
import { bodyToInput } from '../uploads.js'
import type { ApiResponse, RouteContext } from './context.js'

/** RFC 7240: `Prefer: respond-async` (possibly among other preferences). */
const prefersAsync = (req: Request) => /(^|[\s,;])respond-async($|[\s,;=])/i.test(String(req.headers.prefer ?? ''))

type InferRequest = Request<{ model: string }>

/** What `?include=` may add to the answer: `features`, `series`, `evidence` (comma-separated or repeated). */
const INCLUDES = new Set(['features', 'series', 'evidence'])
function includes(raw: unknown): Set<string> {
  const parts = (raw === undefined ? [] : Array.isArray(raw) ? raw : [raw]).flatMap((v) => (typeof v === 'string' ? v.split(',') : [null]))
  if (parts.some((p) => p === null || !INCLUDES.has(p.trim()))) throw new ApiError('bad_request', 'include: features, series, evidence (comma-separated)')
  return new Set(parts.map((p) => p!.trim()))
}

export function inferRoutes(app: Express, ctx: RouteContext): void {
  const { config, registry, executor, queue, callbacks, auth, uploadDir } = ctx
  const checkCallback = (raw: unknown): string => {
    if (!queue) throw new ApiError('callback_not_allowed', 'callback_url: callbacks need EXECUTION_MODE=queue')
    return callbacks.check(raw)
  }

  const refuseEarly = (req: InferRequest, _res: ApiResponse, next: NextFunction) => {
    registry.assertKnown(req.params.model)
    includes(req.query.include)
    queue?.assertAvailable()
    if (req.query.callback_url !== undefined) checkCallback(req.query.callback_url)
    next()
  }

  const infer = async (req: InferRequest, res: ApiResponse, next: NextFunction) => {
    try {
      const started = performance.now()
      const model = (res.locals.model = req.params.model)
      const input = res.locals.input!
      const rawCallback = req.query.callback_url ?? (req.body as { callback_url?: unknown } | undefined)?.callback_url
      const include = includes(req.query.include)
      const opts = {
        includeFeatures: include.has('features'),
        includeSeries: include.has('series'),
        includeEvidence: include.has('evidence'),
        requestId: req.id as string,
        callbackUrl: rawCallback === undefined ? undefined : checkCallback(rawCallback),
        respondAsync: prefersAsync(req),
        onJob: (id: string) => void (res.locals.jobId = id),
      }
      const outcome = await executor.infer(model, input, opts)
      if (outcome.accepted !== undefined) {
        const id = outcome.accepted
        return void res.status(202).location(`/jobs/${id}`).setHeader('Preference-Applied', 'respond-async').json({ job_id: id, status: 'queued' })
      }
      const { answer } = outcome
      const total = performance.now() - started
      res.locals.timings = { ...answer.timings_ms, total }
      res.json(inferBody(answer, req.id as string, total))
    } catch (err) {
      next(err)
    }
  }

  app.post('/infer/:model', auth, refuseEarly, bodyToInput(uploadDir, { maxBytes: config.maxUploadBytes, timeoutMs: config.requestTimeoutMs }), infer)
}
