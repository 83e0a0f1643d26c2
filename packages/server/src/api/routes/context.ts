// What every route module is given (the service's parts, built once by app.ts) and the typed
// `res.locals` a request carries: the upload middleware sets `input` (or `body`), the infer
// routes `model`, `jobId` and `timings`, the error middleware `errorCode`; the request log
// reads them all.
import type { RequestHandler, Response } from 'express'
import type { Config } from '../../core/config.js'
import type { ErrorCode } from '../../core/errors.js'
import type { Metrics } from '../../core/observability.js'
import type { CallbackPolicy } from '../../services/callbacks.js'
import type { Executor, SyncExecutor } from '../../services/executor.js'
import type { InferenceInput } from '../../services/handler.js'
import type { QueueExecutor } from '../../services/queue-executor.js'
import type { Registry } from '../../services/registry.js'

export interface Locals {
  model?: string
  input?: InferenceInput
  /** An Open Inference Protocol request's bytes (uploads.ts `rawBody`). */
  body?: Buffer
  jobId?: string
  timings?: Record<string, number>
  errorCode?: ErrorCode
}

/** A response whose `locals` are the ones above. */
export type ApiResponse = Response<unknown, Locals>

export interface RouteContext {
  config: Config
  registry: Registry
  /** The API's in-process executor (the Open Inference Protocol's batches, in both modes). */
  sync: SyncExecutor
  /** What POST /infer runs through: the queue in queue mode, else `sync`. */
  executor: Executor
  /** Queue mode only. */
  queue?: QueueExecutor
  metrics: Metrics
  callbacks: CallbackPolicy
  auth: RequestHandler
  uploadDir: string
  openapi: object
}
