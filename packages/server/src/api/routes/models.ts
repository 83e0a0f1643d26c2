// GET /models (every model, loaded or not) and GET /models/{model} (one model's metadata,
// loading it first in lazy mode; 404 model_not_found for a name the registry does not hold).
import type { Express, Request } from 'express'
import type { RouteContext } from './context.js'

export function modelRoutes(app: Express, { registry, auth }: RouteContext): void {
  app.get('/models', auth, (_req, res) => void res.json({ models: registry.list() }))
  app.get('/models/:model', auth, async (req: Request<{ model: string }>, res, next) => {
    try {
      res.json((await registry.get(req.params.model)).describe())
    } catch (err) {
      next(err)
    }
  })
}
