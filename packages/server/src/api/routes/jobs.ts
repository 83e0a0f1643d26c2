// GET /jobs/{id}: a queue job's state and, once it ended, its answer or error; for an unknown or
// expired id, 404 job_not_found. Queue mode only: a sync service has no jobs, so it neither
// serves nor documents the path (any /jobs/... is the plain 404 of a path it does not have).
import type { Express, Request } from 'express'
import { ApiError } from '../../core/errors.js'
import type { RouteContext } from './context.js'

export function jobRoutes(app: Express, { queue, auth }: RouteContext): void {
  if (!queue) return
  app.get('/jobs/:id', auth, async (req: Request<{ id: string }>, res, next) => {
    try {
      const view = await queue.view(req.params.id)
      if (!view) throw new ApiError('job_not_found', 'no such job (unknown, or expired after JOB_TTL_S)')
      res.json(view)
    } catch (err) {
      next(err)
    }
  })
}
