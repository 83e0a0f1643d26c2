// Bearer authentication (passport-http-bearer). Several tokens are valid at once, so a token
// can be rotated without downtime. Each check hashes both sides and compares every configured
// token in constant time, so neither the token nor its length leaks through timing. The token
// is taken from the Authorization header only: the strategy would also read `access_token`
// from the query string or the body, where URLs and bodies end up in logs, proxies and
// browser histories, so it is shown the header and nothing else, and a request that carries
// `access_token` in its query is refused (400, as RFC 6750 says for a malformed request).
// The token is never logged (the request log keeps no Authorization header and no query).
// The headers of the service's two HTML surfaces (/app/ and /docs) are built here too, once.
import { createHash, timingSafeEqual } from 'node:crypto'
import type { Request, RequestHandler, Response } from 'express'
import passport from 'passport'
import { Strategy as BearerStrategy } from 'passport-http-bearer'
import { ApiError } from './errors.js'

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest()

export function tokenMatcher(tokens: string[]): (candidate: string) => boolean {
  const known = tokens.map(digest)
  return (candidate) => {
    const d = digest(candidate)
    let ok = false
    for (const k of known) ok = timingSafeEqual(k, d) || ok // no early exit
    return ok
  }
}

/** Express middleware: 401 JSON with `WWW-Authenticate: Bearer` unless a valid token is sent. */
export function bearerAuth(tokens: string[]): RequestHandler {
  const matches = tokenMatcher(tokens)
  const p = new passport.Passport()
  p.use(new BearerStrategy((token, done) => done(null, matches(token) ? { client: 'bearer' } : false)))
  return (req, res, next) => {
    if (Object.hasOwn(req.query ?? {}, 'access_token')) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="tabr-serve", error="invalid_request"')
      return next(new ApiError('bad_request', 'send the token in the Authorization header, never in the URL'))
    }
    // The strategy sees the Authorization header only (never req.query or req.body).
    const headerOnly = { headers: { authorization: req.headers.authorization } } as Request
    p.authenticate('bearer', { session: false }, (err: unknown, user: unknown) => {
      if (err) return next(err)
      if (!user) {
        res.setHeader('WWW-Authenticate', 'Bearer realm="tabr-serve"')
        return next(new ApiError('unauthorized', 'a valid bearer token is required'))
      }
      next()
    })(headerOnly, res, next)
  }
}

/** What a page may load beyond its own origin's scripts, styles, images and connections. */
export interface PageSources {
  style?: string[]
  img?: string[]
  media?: string[]
}

/** The headers every HTML page of this service and its files carry: a Content-Security-Policy
 * that allows this origin only (plus the sources the page names), no framing, no plugins, no
 * MIME sniffing and no referrer. Returns a setter to call on each response. */
export function pageHeaders(allow: PageSources = {}): (res: Response) => void {
  const directive = (name: string, extra?: string[]) => [`${name} 'self'`, ...(extra ?? [])].join(' ')
  const csp = [
    "default-src 'self'",
    "script-src 'self'",
    directive('style-src', allow.style),
    directive('img-src', allow.img),
    ...(allow.media ? [directive('media-src', allow.media)] : []),
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ')
  return (res) => {
    res.setHeader('Content-Security-Policy', csp)
    res.setHeader('X-Content-Type-Options', 'nosniff')
    res.setHeader('Referrer-Policy', 'no-referrer')
  }
}
