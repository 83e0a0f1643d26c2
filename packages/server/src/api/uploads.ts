// Request bodies → an InferenceInput: a multipart field `video` (multer, disk storage in the
// service's private temp folder), a raw `video/*` / `application/octet-stream` body streamed
// to a temp file, or JSON `{"features": [...]}`; anything else is 415. Why it is built so:
// - Every temp path is remembered here when it is named (multer's own clean-up clears
//   `file.path` after an error, so the path must not be read back from multer), and removed
//   when the response closes, in every outcome; a removal that fails for another reason than
//   "already gone" is logged.
// - The body is bounded in size while it streams (declared or chunked) and in time
//   (REQUEST_TIMEOUT_S for the whole read). Past either bound the request is answered at once
//   (413 payload_too_large / 408 request_timeout), writing stops, and the connection is closed
//   after the answer has gone out: the rest of the body is read and dropped for a short while
//   first, so the client reads the answer instead of a connection reset.
// - Video bodies are stored as sent, so a Content-Encoding other than identity is refused (415).
import { randomUUID } from 'node:crypto'
import { createWriteStream, unlink } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { join } from 'node:path'
import express, { type NextFunction, type Request, type RequestHandler } from 'express'
import multer from 'multer'
import { ApiError } from '../core/errors.js'
import type { InferenceInput } from '../services/handler.js'

/** JSON bodies (a feature vector) are small. */
const JSON_LIMIT = 1024 * 1024
/** What a multipart body may carry besides the video: 8 fields of ≤ 64 KiB and part headers. */
const MULTIPART_OVERHEAD = 1024 * 1024
/** How long the rest of a refused body is read and dropped before the connection is closed. */
export const LINGER_MS = 2000

const tooLarge = (max: number) => new ApiError('payload_too_large', `the request body is larger than ${+(max / 1048576).toFixed(2)} MB`)

/** multer's limits, in our words (its own messages are not passed on). */
const MULTIPART_REFUSALS: Record<string, string> = {
  LIMIT_PART_COUNT: 'too many parts',
  LIMIT_FILE_COUNT: 'one file only, in the field "video"',
  LIMIT_FIELD_COUNT: 'too many fields',
  LIMIT_FIELD_KEY: 'a field name is too long',
  LIMIT_FIELD_VALUE: 'a field value is too long',
  LIMIT_UNEXPECTED_FILE: 'a file in another field than "video"',
}

/** The temp paths of one request: named here, removed when its response closes. */
class RequestFiles {
  private readonly paths: string[] = []
  private closed = false

  constructor(
    private readonly dir: string,
    private readonly req: Request,
  ) {}

  /** A fresh name in the upload folder; undefined once the response has closed. */
  name(): string | undefined {
    if (this.closed) return undefined
    const name = randomUUID()
    this.paths.push(join(this.dir, name))
    return name
  }

  removeAll() {
    this.closed = true
    for (const path of this.paths.splice(0)) {
      unlink(path, (err) => {
        // ENOENT: never written, or already removed by multer's own clean-up.
        if (err && err.code !== 'ENOENT') this.req.log?.warn({ code: err.code }, 'an upload could not be removed')
      })
    }
  }
}

const filesOf = new WeakMap<IncomingMessage, RequestFiles>()

/**
 * The answer to a body that was not read to its end closes the connection (`Connection:
 * close`, so the client does not send another request on it). Node closes such a socket with
 * destroySoon(): a FIN, then at once the descriptor; body bytes still arriving then make the
 * kernel answer with a reset, which can discard the answer before the client has read it. So
 * this socket lingers instead: FIN after the answer, what still arrives is read and dropped,
 * and the socket is closed when the client closes its side or after LINGER_MS.
 */
function closeAfterResponse(req: IncomingMessage, res: ServerResponse) {
  const socket = req.socket
  res.setHeader('Connection', 'close')
  socket.destroySoon = function (this: typeof socket) {
    this.end()
    setTimeout(() => this.destroy(), LINGER_MS).unref()
  }
  res.once('finish', () => {
    req.unpipe()
    req.resume()
  })
  // The client may be gone already.
  res.once('close', () => void (res.writableFinished ? undefined : socket.destroy()))
}

/** `done` answers a body's read once; `then` runs on success, before the route goes on. */
type Done = (err?: unknown, then?: () => void) => void

/**
 * One body's read under the service's bounds: REQUEST_TIMEOUT_S for the whole read, and
 * `watch(limit)` on the bytes as they arrive (declared or chunked). `done` answers once: an
 * error stops the reading (`onStop`), closes the connection after the answer when the body
 * was not read to its end, and goes to the error middleware; success goes on to the route.
 */
function boundedRead(req: Request, res: ServerResponse, next: NextFunction, timeoutMs: number) {
  let answered = false
  let stop = () => {}
  const done: Done = (err, then) => {
    if (answered) return
    answered = true
    clearTimeout(timer)
    if (err) {
      stop()
      if (!req.complete) closeAfterResponse(req, res)
      return next(err)
    }
    then?.()
    next()
  }
  const timer = setTimeout(() => done(new ApiError('request_timeout', `the request body did not arrive within ${timeoutMs / 1000} s (REQUEST_TIMEOUT_S)`)), timeoutMs)
  res.once('close', () => clearTimeout(timer))
  return {
    done,
    isAnswered: () => answered,
    onStop: (f: () => void) => void (stop = f),
    /** Refuses the body past `limit` bytes (false: refused already, by its declared length). */
    watch(limit: number, refused: ApiError): boolean {
      if (Number(req.headers['content-length'] ?? 0) > limit) return (done(refused), false)
      let seen = 0
      req.on('data', (chunk: Buffer) => {
        seen += chunk.length
        if (seen > limit) done(refused)
      })
      return true
    },
  }
}

export function bodyToInput(dir: string, opts: { maxBytes: number; timeoutMs: number }): RequestHandler {
  const { maxBytes, timeoutMs } = opts
  const upload = multer({
    storage: multer.diskStorage({
      destination: dir,
      filename: (req, _file, cb) => {
        const name = filesOf.get(req)?.name()
        if (name) cb(null, name)
        else cb(new Error('the request is over'), '')
      },
    }),
    limits: { fileSize: maxBytes, files: 1, fields: 8, parts: 10, fieldSize: 64 * 1024 },
  }).single('video')
  const json = express.json({ limit: JSON_LIMIT })

  return (req, res, next) => {
    const files = new RequestFiles(dir, req)
    filesOf.set(req, files)
    res.once('close', () => files.removeAll())
    const read = boundedRead(req, res, next, timeoutMs)
    const done = (err?: unknown, input?: InferenceInput) => read.done(err, () => (res.locals.input = input))

    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
    const kind = type === 'multipart/form-data' ? 'multipart' : type.startsWith('video/') || type === 'application/octet-stream' ? 'raw' : type === 'application/json' ? 'json' : undefined
    if (!kind) return done(new ApiError('unsupported_media_type', 'send multipart/form-data (field "video"), video/*, application/octet-stream or application/json'))
    // JSON bodies are UTF-8 (RFC 8259): another declared charset is refused before parsing
    // (the JSON parser would decode UTF-16 and UTF-32 itself, then fail on the bytes as 400).
    const charset = /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(req.headers['content-type'] ?? '')?.[1]?.toLowerCase()
    if (kind === 'json' && charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') return done(new ApiError('unsupported_media_type', 'unsupported charset: JSON bodies are UTF-8'))
    const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase()
    if (kind !== 'json' && encoding !== 'identity') return done(new ApiError('unsupported_media_type', 'video uploads are stored as sent: no Content-Encoding'))

    const limit = kind === 'json' ? JSON_LIMIT : kind === 'multipart' ? maxBytes + MULTIPART_OVERHEAD : maxBytes
    if (!read.watch(limit, tooLarge(kind === 'json' ? JSON_LIMIT : maxBytes))) return

    if (kind === 'multipart') {
      read.onStop(() => void req.unpipe())
      return upload(req, res, (err: unknown) => {
        if (err instanceof multer.MulterError) {
          return done(err.code === 'LIMIT_FILE_SIZE' ? tooLarge(maxBytes) : new ApiError('bad_request', `multipart: ${MULTIPART_REFUSALS[err.code] ?? 'the body cannot be read'}`))
        }
        if (err) return done(new ApiError('bad_request', 'the multipart body cannot be read'))
        if (!req.file) return done(new ApiError('bad_request', 'the multipart field "video" is required'))
        if (req.file.size === 0) return done(new ApiError('invalid_video', 'the upload is empty'))
        done(undefined, { kind: 'video', path: req.file.path })
      })
    }

    if (kind === 'raw') {
      const name = files.name()!
      const path = join(dir, name)
      const file = createWriteStream(path, { mode: 0o600, flags: 'wx' })
      read.onStop(() => {
        req.unpipe(file)
        file.destroy()
      })
      file.on('error', (err) => {
        if (!read.isAnswered()) req.log?.error({ code: (err as NodeJS.ErrnoException).code }, 'an upload could not be written')
        done(new ApiError('internal', 'internal error'))
      })
      file.on('close', () => {
        if (!file.writableFinished) return
        done(...(file.bytesWritten === 0 ? [new ApiError('invalid_video', 'the upload is empty')] : [undefined, { kind: 'video' as const, path }]))
      })
      req.on('close', () => {
        if (!req.complete) done(new ApiError('bad_request', 'the upload was interrupted'))
      })
      req.pipe(file)
      return
    }

    read.onStop(() => void req.unpipe())
    json(req, res, (err?: unknown) => {
      if (err) return done(err)
      const features = (req.body as { features?: unknown })?.features
      if (!Array.isArray(features) || !features.every((v) => v === null || typeof v === 'number')) {
        return done(new ApiError('bad_request', 'the JSON body must be {"features": [number | null, ...]}'))
      }
      done(undefined, { kind: 'features', values: features as (number | null)[] })
    })
  }
}

/**
 * The body of an Open Inference Protocol request as bytes (`res.locals.body`), whatever its
 * Content-Type (standard clients send none): a JSON header, possibly followed by binary
 * tensor data. Bounded like every body, in size (`maxBytes`, also after a gzip or deflate
 * Content-Encoding is undone) and in time.
 */
export function rawBody(opts: { maxBytes: number; timeoutMs: number }): RequestHandler {
  const raw = express.raw({ type: () => true, limit: opts.maxBytes })
  return (req, res, next) => {
    const read = boundedRead(req, res, next, opts.timeoutMs)
    if (!read.watch(opts.maxBytes, tooLarge(opts.maxBytes))) return
    read.onStop(() => void req.unpipe())
    raw(req, res, (err?: unknown) => {
      if (err) return read.done(err)
      read.done(undefined, () => (res.locals.body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0)))
    })
  }
}
