// Every error code the service answers with, defined once: its HTTP status and whether a queue
// job that ends with it is worth retrying (ERROR_TABLE). ApiError only takes these codes; the
// error middleware (api/error-middleware.ts), the worker's retry decision and the OpenAPI enum
// all read this table, and nothing here knows about HTTP requests, so services may import it.
// Native errors map by their stable `code`; the 4xx errors of Express's own parts
// (body-parser, the router's parameter decoding) by their HTTP status and type, with our own
// message, never theirs; anything else becomes a bare 500 `internal` (logged, never shown).
import { NATIVE_ERROR_CODES, type NativeErrorCode } from './native.generated.js'

interface ErrorSpec {
  /** The HTTP status it is answered with. */
  readonly status: number
  /** A queue job that ends with it is retried (with backoff): it may not happen twice. */
  readonly retryable: boolean
}

/** Each code: its HTTP status, and whether a queue job failing with it is retried. */
export const ERROR_TABLE = {
  bad_request: { status: 400, retryable: false },
  unauthorized: { status: 401, retryable: false },
  not_found: { status: 404, retryable: false },
  model_not_found: { status: 404, retryable: false },
  job_not_found: { status: 404, retryable: false },
  method_not_allowed: { status: 405, retryable: false },
  request_timeout: { status: 408, retryable: false },
  upload_expired: { status: 410, retryable: false },
  payload_too_large: { status: 413, retryable: false },
  unsupported_media_type: { status: 415, retryable: false },
  invalid_video: { status: 422, retryable: false },
  video_too_long: { status: 422, retryable: false },
  video_too_short: { status: 422, retryable: false },
  frame_too_large: { status: 422, retryable: false },
  video_too_large: { status: 422, retryable: false },
  no_face: { status: 422, retryable: false },
  invalid_features: { status: 422, retryable: false },
  evidence_unavailable: { status: 400, retryable: false },
  poor_recording: { status: 422, retryable: false },
  callback_not_allowed: { status: 422, retryable: false },
  model_error: { status: 500, retryable: true },
  internal: { status: 500, retryable: true },
  overloaded: { status: 503, retryable: true },
  not_ready: { status: 503, retryable: true },
  queue_unavailable: { status: 503, retryable: true },
  timeout: { status: 504, retryable: false },
  aborted: { status: 504, retryable: true },
} as const satisfies Record<string, ErrorSpec>

export type ErrorCode = keyof typeof ERROR_TABLE

export const ERROR_CODES = Object.keys(ERROR_TABLE) as ErrorCode[]

const isCode = (c: unknown): c is ErrorCode => typeof c === 'string' && Object.hasOwn(ERROR_TABLE, c)

export class ApiError extends Error {
  readonly status: number
  readonly retryable: boolean

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message)
    this.status = ERROR_TABLE[code].status
    this.retryable = ERROR_TABLE[code].retryable
  }
}

/**
 * The stable codes a native rejection can carry that are answered as they are: the core's own
 * list (generated, native.generated.ts), less `internal`, whose message is never shown.
 */
const NATIVE_CODES = new Set<ErrorCode>(NATIVE_ERROR_CODES.filter((c) => c !== 'internal'))

/** Every native code has a row in ERROR_TABLE: a code the core adds fails the type check here
 * until it is given a status (it used to become a silent 500 `internal`). */
const _everyNativeCodeHasAStatus: Record<NativeErrorCode, ErrorSpec> = ERROR_TABLE
void _everyNativeCodeHasAStatus

/**
 * An error as it crosses a process boundary (a queue job's failure): its code and message only.
 * `decodeError` turns it back into the same ApiError the sync path would have thrown.
 */
export interface CodedError {
  code: ErrorCode
  message: string
}

/** The codes a queue job can end with (the native ones and the service's). */
const JOB_CODES = new Set<ErrorCode>([...NATIVE_CODES, 'model_not_found', 'timeout', 'internal', 'upload_expired', 'evidence_unavailable'])

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

/** The error a request gets for a model name the registry does not hold (404). */
export const modelNotFound = (name: string) => new ApiError('model_not_found', `no model named ${JSON.stringify(name)}`)

/** The error a request gets for a version the model does not have (404). */
export const modelVersionNotFound = (name: string, version: string) => new ApiError('model_not_found', `model ${JSON.stringify(name)} has no version ${JSON.stringify(version)}`)

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
