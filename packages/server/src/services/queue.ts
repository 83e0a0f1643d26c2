// What the API and the workers share in queue mode: queue names, Redis connections, the job's
// data and result, where uploads live in Redis, and the public view of a job (the body of
// GET /jobs/{id} and of every callback).
//
// Settings (see README "Queue mode"):
// - inference jobs: 3 attempts; errors of the 4xx class (and timeouts) fail at once; crashes
//   (model_error, internal) retry after 1 s, then 2 s.
// - locks: JOB_LOCK_S (5 s), renewed every half of it. Each worker checks for stalled jobs
//   every JOB_LOCK_S, so a SIGKILLed worker's job is back in the queue within ~2 × JOB_LOCK_S.
//   A job may stall twice (maxStalledCount 2); a third stall fails it with `internal`.
// - callbacks: a second queue, joined to the inference job as a BullMQ flow parent, so Redis
//   itself starts the callback exactly when the job ends, once, whichever worker ends it.
// - persistence: jobs, uploads and results live in Redis only. The API and every worker warn
//   at start-up when Redis keeps neither an append-only file nor RDB snapshots, because then
//   a Redis restart loses every accepted job (README, "Queue mode": what persistence it needs).
import { Redis, type RedisOptions } from 'ioredis'
import type { Job, JobsOptions } from 'bullmq'
import type { Logger } from 'pino'
import { decodeError, type CodedError } from '../core/errors.js'
import { inferBody, type Answer, type InferBody } from './answer.js'

export const PREFIX = 'tabr'
export const INFER_QUEUE = 'infer'
export const CALLBACK_QUEUE = 'callbacks'
export const MAX_STALLED = 2
export const INFER_ATTEMPTS = 3
/** One delivery and up to five retries, 1 s, 2 s, 4 s, 8 s, 16 s apart. */
export const CALLBACK_ATTEMPTS = 6

export const blobKey = (id: string) => `${PREFIX}:blob:${id}`
export const BLOB_PATTERN = `${PREFIX}:blob:*`

export interface JobData {
  model: string
  /** Redis key of the upload (video bytes, or the features as JSON). */
  blob: string
  kind: 'video' | 'features'
  include_features: boolean
  /** Absent in jobs of services from before the series existed. */
  include_series?: boolean
  include_evidence?: boolean
  /** The submitting request's id: the result carries it, as in sync mode. */
  request_id: string
  callback_url?: string
}

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed'

export interface JobView {
  job_id: string
  status: JobStatus
  model: string
  created_at: string
  started_at?: string
  finished_at?: string
  attempts: number
  result?: InferBody
  error?: CodedError
}

const STATUS: Record<string, JobStatus> = { active: 'running', completed: 'succeeded', failed: 'failed' }
const iso = (ms?: number) => (ms ? new Date(ms).toISOString() : undefined)

/** The public view of a job; `state` comes from job.getState(). */
export function jobView(job: Job<JobData, Answer>, state: string): JobView {
  const status = STATUS[state] ?? 'queued'
  const d = job.data
  return {
    job_id: job.id!,
    status,
    model: d.model,
    created_at: iso(job.timestamp)!,
    ...(job.processedOn ? { started_at: iso(job.processedOn) } : {}),
    ...(job.finishedOn && status !== 'queued' ? { finished_at: iso(job.finishedOn) } : {}),
    attempts: job.attemptsStarted ?? job.attemptsMade,
    ...(status === 'succeeded' ? { result: inferBody(job.returnvalue, d.request_id, job.finishedOn! - job.timestamp) } : {}),
    ...(status === 'failed' ? { error: decodeError(job.failedReason) } : {}),
  }
}

/** A finished job past JOB_TTL_S is gone, even before BullMQ's lazy clean-up removes it. */
export const expired = (job: Job, ttlS: number) => job.finishedOn !== undefined && job.finishedOn + ttlS * 1000 < Date.now()

/** A job's options: its id, attempts with exponential backoff from 1 s, kept JOB_TTL_S once ended. */
export function jobOptions(id: string, attempts: number, ttlS: number): JobsOptions {
  return {
    jobId: id,
    attempts,
    backoff: { type: 'exponential', delay: 1000 },
    removeOnComplete: { age: ttlS },
    removeOnFail: { age: ttlS },
  }
}

/**
 * A Redis connection. `blocking` ones (workers, queue events) wait forever for replies, as
 * BullMQ needs; the API's own fails fast while Redis is away (no offline queue, 1.5 s connect
 * timeout), so a request is answered 503 instead of hanging. Both reconnect on their own.
 */
export function redisConnection(url: string, { blocking }: { blocking: boolean }): Redis {
  const opts: RedisOptions = blocking ? { maxRetriesPerRequest: null, enableReadyCheck: true } : { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 1500, commandTimeout: 1500 }
  const redis = new Redis(url, { ...opts, lazyConnect: false, retryStrategy: (times) => Math.min(times * 200, 1000) })
  // Connection errors are reported by readiness and by the requests they fail; an unhandled
  // 'error' event would otherwise print every reconnect attempt.
  redis.on('error', () => {})
  return redis
}

/**
 * Logs a warning when Redis has neither AOF (`appendonly yes`) nor RDB (`save` non-empty)
 * persistence. A Redis that refuses CONFIG (managed services rename or disable it) is told
 * apart from one without persistence, and logged as unknown.
 */
export async function checkPersistence(redis: Redis, logger: Logger): Promise<'persistent' | 'volatile' | 'unknown'> {
  let aof: unknown
  let save: unknown
  try {
    ;[, aof] = (await redis.config('GET', 'appendonly')) as string[]
    ;[, save] = (await redis.config('GET', 'save')) as string[]
  } catch (e) {
    logger.info({ err: (e as Error).message }, 'Redis persistence unknown (CONFIG GET refused): without AOF or RDB a Redis restart loses every accepted job (README, "Queue mode")')
    return 'unknown'
  }
  if (aof === 'yes' || (typeof save === 'string' && save.trim() !== '')) return 'persistent'
  logger.warn(
    { appendonly: aof ?? null, save: save ?? null },
    'Redis has no persistence (neither appendonly yes nor save): a Redis restart loses every accepted job, upload and result, and GET /jobs/{id} answers 404 for them (README, "Queue mode")',
  )
  return 'volatile'
}
