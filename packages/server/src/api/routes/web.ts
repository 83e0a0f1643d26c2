// The browser client (packages/web, built by Vite into its dist/) at /app/, from this origin:
// the page calls the API with the token it keeps in sessionStorage, and no CDN is involved.
// `/` redirects there. Two small public JSON files feed the page: /app/config.json (the limits
// a recording must respect) and /app/questions.json (WEB_QUESTIONS_FILE's questions when the
// researcher gave some; otherwise the built page's own file). Every /app response carries a
// strict Content-Security-Policy: scripts, styles and connections from this origin only,
// recorded video as blob: URLs.
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, sep } from 'node:path'
import express, { type Express } from 'express'
import type { Logger } from 'pino'
import { ApiError } from '../../core/errors.js'
import { pageHeaders } from '../../core/security.js'
import type { RouteContext } from './context.js'

/** Recorded video plays from blob: URLs; the chart's images may be data: or blob: URLs. */
const appHeaders = pageHeaders({ img: ['data:', 'blob:'], media: ['blob:'] })

/** The built page's folder (`@org/tabr-web`'s dist/). */
export const webDir = () => join(dirname(createRequire(import.meta.url).resolve('@org/tabr-web/package.json')), 'dist')

export function webRoutes(app: Express, { config }: RouteContext, logger: Logger): void {
  const dir = webDir()
  if (!existsSync(join(dir, 'index.html'))) logger.warn('the browser client is not built (make build): /app/ answers 404')
  app.use('/app', (_req, res, next) => {
    appHeaders(res)
    next()
  })
  app.get('/', (_req, res) => res.redirect(302, '/app/'))
  app.get('/app/config.json', (_req, res) => void res.json({ max_video_seconds: config.limits.maxSeconds, max_upload_mb: config.maxUploadBytes / (1024 * 1024) }))
  const questions = config.webQuestions
  app.get('/app/questions.json', (_req, res, next) => (questions ? void res.json({ questions }) : res.sendFile('questions.json', { root: dir }, (err) => err && next())))
  // The page is read-only: other methods are 405 with Allow (OPTIONS 204), as on every API path.
  app.use('/app', (req, res, next) => {
    if (req.method === 'GET' || req.method === 'HEAD') return next()
    res.setHeader('Allow', 'GET, HEAD')
    if (req.method === 'OPTIONS') return void res.status(204).end()
    next(new ApiError('method_not_allowed', `${req.method} is not allowed here (Allow: GET, HEAD)`))
  })
  // Vite names every file under assets/ by its content's hash: cached for a year. The page
  // itself is revalidated, so a new build is seen at once.
  app.use(
    '/app',
    express.static(dir, {
      index: 'index.html',
      redirect: true,
      dotfiles: 'ignore',
      setHeaders: (res, path) => res.setHeader('Cache-Control', path.startsWith(join(dir, 'assets') + sep) ? 'public, max-age=31536000, immutable' : 'no-cache'),
    }),
  )
}
