// The one error middleware: turns every error into `{"error": {"code", "message",
// "request_id"}}` with the status and headers of its code (core/errors.ts holds the table and
// the mapping of foreign errors). An `internal` error is logged here, never shown.
import type { ErrorRequestHandler } from 'express'
import { toApiError } from '../core/errors.js'

export const errorMiddleware: ErrorRequestHandler = (err, req, res, next) => {
  // Too late for an error body: Express's final handler closes the connection.
  if (res.headersSent) return next(err)
  const e = toApiError(err)
  if (e.code === 'internal') req.log?.error({ err }, 'internal error')
  for (const [k, v] of Object.entries(e.headers)) res.setHeader(k, v)
  res.locals.errorCode = e.code
  res.status(e.status).json({ error: { code: e.code, message: e.message, request_id: req.id } })
}
