// Request bodies → an InferenceInput. A multipart field `video` (multer, disk storage in the
// service's private temp dir) or a raw `video/*` / `application/octet-stream` body streamed to
// a temp file, both under MAX_UPLOAD_MB and refused with 413 as soon as they pass it; or JSON
// `{"features": [...]}`. Anything else is 415. The temp file is removed when the response
// ends, in every outcome.
import { randomUUID } from 'node:crypto'
import { createWriteStream, unlink } from 'node:fs'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import express, { type RequestHandler } from 'express'
import multer from 'multer'
import { ApiError } from './errors.js'
import type { InferenceInput } from '../services/handler.js'

const tooLarge = (max: number) => new ApiError(413, 'payload_too_large', `the upload is larger than ${Math.round(max / 1048576)} MB`)

export function bodyToInput(dir: string, maxBytes: number): RequestHandler {
  const upload = multer({
    storage: multer.diskStorage({ destination: dir, filename: (_req, _file, cb) => cb(null, randomUUID()) }),
    limits: { fileSize: maxBytes, files: 1, fields: 8, parts: 10, fieldSize: 64 * 1024 },
  }).single('video')
  const json = express.json({ limit: '1mb' })

  return (req, res, next) => {
    const remove = (path: string) => res.on('close', () => unlink(path, () => {}))
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
    if (type === 'multipart/form-data') {
      return upload(req, res, (err: unknown) => {
        if (req.file) remove(req.file.path)
        if (err instanceof multer.MulterError) {
          return next(err.code === 'LIMIT_FILE_SIZE' ? tooLarge(maxBytes) : new ApiError(400, 'bad_request', `multipart: ${err.message}`))
        }
        if (err) return next(new ApiError(400, 'bad_request', 'the multipart body cannot be read'))
        if (!req.file) return next(new ApiError(400, 'bad_request', 'the multipart field "video" is required'))
        if (req.file.size === 0) return next(new ApiError(422, 'invalid_video', 'the upload is empty'))
        res.locals.input = { kind: 'video', path: req.file.path } satisfies InferenceInput
        next()
      })
    }
    if (type.startsWith('video/') || type === 'application/octet-stream') {
      const declared = Number(req.headers['content-length'] ?? NaN)
      if (declared > maxBytes) return next(tooLarge(maxBytes))
      const path = join(dir, randomUUID())
      remove(path)
      let seen = 0
      req.on('data', (chunk: Buffer) => {
        seen += chunk.length
        if (seen > maxBytes) req.destroy(tooLarge(maxBytes))
      })
      return pipeline(req, createWriteStream(path, { mode: 0o600 })).then(
        () => {
          if (seen === 0) return next(new ApiError(422, 'invalid_video', 'the upload is empty'))
          res.locals.input = { kind: 'video', path } satisfies InferenceInput
          next()
        },
        (err: unknown) => next(err instanceof ApiError ? err : seen > maxBytes ? tooLarge(maxBytes) : new ApiError(400, 'bad_request', 'the upload was interrupted')),
      )
    }
    if (type === 'application/json') {
      return json(req, res, (err?: unknown) => {
        if (err) return next(err)
        const features = (req.body as { features?: unknown })?.features
        if (!Array.isArray(features) || !features.every((v) => v === null || typeof v === 'number')) {
          return next(new ApiError(400, 'bad_request', 'the JSON body must be {"features": [number | null, ...]}'))
        }
        res.locals.input = { kind: 'features', values: features as (number | null)[] } satisfies InferenceInput
        next()
      })
    }
    next(new ApiError(415, 'unsupported_media_type', 'send multipart/form-data (field "video"), video/*, application/octet-stream or application/json'))
  }
}
