// Bearer authentication (passport-http-bearer). Several tokens are valid at once, so a token
// can be rotated without downtime. Each check hashes both sides and compares every configured
// token in constant time, so neither the token nor its length leaks through timing. The token
// itself is never logged (the logger redacts Authorization).
import { createHash, timingSafeEqual } from 'node:crypto'
import type { RequestHandler } from 'express'
import passport from 'passport'
import { Strategy as BearerStrategy } from 'passport-http-bearer'
import { ApiError } from '../api/errors.js'

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
  return (req, res, next) =>
    p.authenticate('bearer', { session: false }, (err: unknown, user: unknown) => {
      if (err) return next(err)
      if (!user) {
        res.setHeader('WWW-Authenticate', 'Bearer realm="tabr-serve"')
        return next(new ApiError(401, 'unauthorized', 'a valid bearer token is required'))
      }
      next()
    })(req, res, next)
}
