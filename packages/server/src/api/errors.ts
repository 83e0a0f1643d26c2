// One error class with an HTTP status and a stable code, and one middleware that turns every
// error into `{"error": {"code", "message", "request_id"}}`. Native errors are mapped here by
// their stable `code`; anything unknown becomes a bare 500 `internal` (logged, never shown).
import type { ErrorRequestHandler } from 'express'

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message)
  }
}

/** HTTP status of each stable code coming from the native core. */
const NATIVE_STATUS: Record<string, number> = {
  invalid_video: 422,
  video_too_long: 422,
  video_too_short: 422,
  frame_too_large: 422,
  no_face: 422,
  invalid_features: 422,
  model_error: 500,
  aborted: 504,
}

/**
 * An error as it crosses a process boundary (a queue job's failure): its code and message only.
 * `decodeError` turns it back into the same ApiError the sync path would have thrown.
 */
export interface CodedError {
  code: string
  message: string
}

/** HTTP status of the codes a queue job can end with (the native ones and the service's). */
const JOB_STATUS: Record<string, number> = { ...NATIVE_STATUS, model_not_found: 404, timeout: 504, internal: 500, upload_expired: 410 }

export function encodeError(err: unknown): string {
  const e = toApiError(err)
  return JSON.stringify({ code: e.code, message: e.message } satisfies CodedError)
}

/** A job's failedReason → its code and message; anything foreign (a stall) is `internal`. */
export function decodeError(reason: string | undefined): CodedError {
  try {
    const e = JSON.parse(reason ?? '') as Partial<CodedError>
    if (typeof e.code === 'string' && typeof e.message === 'string' && e.code in JOB_STATUS) return { code: e.code, message: e.message }
  } catch {
    // not one of ours: fall through
  }
  return { code: 'internal', message: 'the job was interrupted on every attempt' }
}

export const apiErrorOf = (e: CodedError) => new ApiError(JOB_STATUS[e.code] ?? 500, e.code, e.message)

/** An ApiError for anything thrown: ours pass through, native ones map by code. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err
  const code = (err as { code?: unknown })?.code
  if (typeof code === 'string' && code in NATIVE_STATUS) {
    const message = code === 'model_error' ? 'the model failed to run' : String((err as Error).message)
    return new ApiError(NATIVE_STATUS[code]!, code, message)
  }
  const type = (err as { type?: string })?.type
  if (type === 'entity.too.large') return new ApiError(413, 'payload_too_large', 'the request body is too large')
  if (type === 'entity.parse.failed') return new ApiError(400, 'bad_request', 'the JSON body cannot be parsed')
  return new ApiError(500, 'internal', 'internal error')
}

export const errorMiddleware: ErrorRequestHandler = (err, req, res, _next) => {
  const e = toApiError(err)
  if (e.status >= 500 && e.code === 'internal') req.log?.error({ err }, 'internal error')
  for (const [k, v] of Object.entries(e.headers)) res.setHeader(k, v)
  res.locals.errorCode = e.code
  res.status(e.status).json({ error: { code: e.code, message: e.message, request_id: req.id } })
}
