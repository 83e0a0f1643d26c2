// The one error middleware: turns every error into `{"error": {"code", "message",
// "request_id"}}` with the status and headers of its code (core/errors.ts holds the table and
// the mapping of foreign errors); under /v2, the Open Inference Protocol's `{"error": "…"}`
// with the same status. An `internal` error is logged here, never shown.
import type { ErrorRequestHandler } from 'express'
import { toApiError } from '../core/errors.js'

/** The Open Inference Protocol's paths (every path under /v2, known or not), in any case:
 * Express matches routes case-insensitively, so /V2/MODELS/x is the protocol's route too and
 * answers in its form. */
export const isOipPath = (path: string) => {
  const p = path.toLowerCase()
  return p === '/v2' || p.startsWith('/v2/')
}

export const errorMiddleware: ErrorRequestHandler = (err, req, res, next) => {
  // Too late for an error body: Express's final handler closes the connection.
  if (res.headersSent) return next(err)
  const e = toApiError(err)
  if (e.code === 'internal') req.log?.error({ err }, 'internal error')
  for (const [k, v] of Object.entries(e.headers)) res.setHeader(k, v)
  res.locals.errorCode = e.code
  // The Open Inference Protocol's routes answer in its own form: the message alone (the
  // request id stays in X-Request-Id).
  if (isOipPath(req.path)) return void res.status(e.status).json({ error: e.message })
  res.status(e.status).json({ error: { code: e.code, message: e.message, request_id: req.id } })
}
