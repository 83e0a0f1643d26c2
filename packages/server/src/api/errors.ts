// Every error code the service answers with, and its HTTP status, defined once (ERROR_STATUS:
// ApiError only takes these codes, and the OpenAPI enum is built from them). One middleware
// turns every error into `{"error": {"code", "message", "request_id"}}`. Native errors map by
// their stable `code`; the 4xx errors of Express's own parts (body-parser, the router's
// parameter decoding) by their HTTP status and type, with our own message, never theirs;
// anything else becomes a bare 500 `internal` (logged, never shown).
import type { ErrorRequestHandler } from 'express'

/** Each code and the HTTP status it is answered with. */
export const ERROR_STATUS = {
  bad_request: 400,
  unauthorized: 401,
  not_found: 404,
  model_not_found: 404,
  job_not_found: 404,
  method_not_allowed: 405,
  request_timeout: 408,
  upload_expired: 410,
  payload_too_large: 413,
  unsupported_media_type: 415,
  invalid_video: 422,
  video_too_long: 422,
  video_too_short: 422,
  frame_too_large: 422,
  video_too_large: 422,
  no_face: 422,
  invalid_features: 422,
  callback_not_allowed: 422,
  model_error: 500,
  internal: 500,
  overloaded: 503,
  not_ready: 503,
  queue_unavailable: 503,
  timeout: 504,
  aborted: 504,
} as const

export type ErrorCode = keyof typeof ERROR_STATUS

export const ERROR_CODES = Object.keys(ERROR_STATUS) as ErrorCode[]

const isCode = (c: unknown): c is ErrorCode => typeof c === 'string' && Object.hasOwn(ERROR_STATUS, c)

export class ApiError extends Error {
  readonly status: number

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message)
    this.status = ERROR_STATUS[code]
  }
}

/** The stable codes a native rejection can carry that are answered as they are. */
const NATIVE_CODES = new Set<ErrorCode>(['invalid_video', 'video_too_long', 'video_too_short', 'frame_too_large', 'video_too_large', 'no_face', 'invalid_features', 'model_error', 'aborted'])

/**
 * An error as it crosses a process boundary (a queue job's failure): its code and message only.
 * `decodeError` turns it back into the same ApiError the sync path would have thrown.
 */
export interface CodedError {
  code: ErrorCode
  message: string
}

/** The codes a queue job can end with (the native ones and the service's). */
const JOB_CODES = new Set<ErrorCode>([...NATIVE_CODES, 'model_not_found', 'timeout', 'internal', 'upload_expired'])

export function encodeError(err: unknown): string {
  const e = toApiError(err)
  return JSON.stringify({ code: e.code, message: e.message } satisfies CodedError)
}

/** A job's failedReason → its code and message; anything foreign (a stall) is `internal`. */
export function decodeError(reason: string | undefined): CodedError {
  try {
    const e = JSON.parse(reason ?? '') as Partial<CodedError>
    if (isCode(e.code) && JOB_CODES.has(e.code) && typeof e.message === 'string') return { code: e.code, message: e.message }
  } catch {
    // not one of ours: fall through
  }
  return { code: 'internal', message: 'the job was interrupted on every attempt' }
}

export const apiErrorOf = (e: CodedError) => new ApiError(e.code, e.message)

/** Our messages for the http-errors that body-parser raises, by their `type`. */
const HTTP_ERROR_TYPES: Record<string, [ErrorCode, string]> = {
  'entity.too.large': ['payload_too_large', 'the request body is too large'],
  'entity.parse.failed': ['bad_request', 'the JSON body cannot be parsed'],
  'charset.unsupported': ['unsupported_media_type', 'unsupported charset: JSON bodies are UTF-8'],
  'encoding.unsupported': ['unsupported_media_type', 'unsupported Content-Encoding (identity, gzip, deflate or br)'],
}

/** For any other 4xx http-error: the code and message of its status (else 400 bad_request). */
const HTTP_STATUS: Record<number, [ErrorCode, string]> = {
  404: ['not_found', 'not found'],
  405: ['method_not_allowed', 'method not allowed'],
  408: ['request_timeout', 'the request body did not arrive in time'],
  413: ['payload_too_large', 'the request body is too large'],
  415: ['unsupported_media_type', 'unsupported media type or encoding'],
}

/** An ApiError for anything thrown: ours pass through, native ones map by code. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err
  const e = (err ?? {}) as { code?: unknown; message?: unknown; status?: unknown; statusCode?: unknown; type?: unknown; expose?: unknown }
  if (isCode(e.code) && NATIVE_CODES.has(e.code)) {
    return new ApiError(e.code, e.code === 'model_error' ? 'the model failed to run' : String(e.message))
  }
  // http-errors (body-parser, the router): a client error, answered as one, in our words.
  const status = typeof e.status === 'number' ? e.status : e.statusCode
  if (typeof status === 'number' && status >= 400 && status < 500) {
    const known = typeof e.type === 'string' ? HTTP_ERROR_TYPES[e.type] : undefined
    if (known) return new ApiError(...known)
    if (err instanceof URIError) return new ApiError('bad_request', 'the URL holds a malformed percent-escape')
    if (typeof e.code === 'string' && e.code.startsWith('Z_')) return new ApiError('bad_request', 'the body does not decode as its Content-Encoding says')
    return new ApiError(...(HTTP_STATUS[status] ?? ['bad_request', 'the request cannot be read']))
  }
  return new ApiError('internal', 'internal error')
}

export const errorMiddleware: ErrorRequestHandler = (err, req, res, next) => {
  // Too late for an error body: Express's final handler closes the connection.
  if (res.headersSent) return next(err)
  const e = toApiError(err)
  if (e.code === 'internal') req.log?.error({ err }, 'internal error')
  for (const [k, v] of Object.entries(e.headers)) res.setHeader(k, v)
  res.locals.errorCode = e.code
  res.status(e.status).json({ error: { code: e.code, message: e.message, request_id: req.id } })
}
