// `tabr-serve worker`: runs queue-mode jobs with the same registry and handlers as the API.
// Models are loaded before the first job is taken. Each job's upload is fetched from Redis into
// a private 0600 temp file (removed in every outcome) and deleted from Redis once the job has
// ended for good. SIGTERM finishes the active jobs (up to SHUTDOWN_TIMEOUT_S) before exiting.
// The lock, stall and retry settings are described in services/queue.ts. The temp folder is
// named after the worker's pid and its namespace (core/tempdirs.ts); at start-up and then once
// a minute a worker removes the folders of workers that no longer exist (a SIGKILLed one
// leaves a copy of its upload behind). It warns when Redis keeps no persistence.
import { randomUUID } from 'node:crypto'
import { rm, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq'
import type { Logger } from 'pino'
import { ApiError, encodeError, toApiError } from './core/errors.js'
import type { Config } from './core/config.js'
import { makeLogger, repeatingErrorLog } from './core/observability.js'
import { logSweeps, makePrivateDir } from './core/tempdirs.js'
import { checkThreadPool } from './core/threadpool.js'
import type { Answer } from './services/answer.js'
import { CallbackPolicy } from './services/callbacks.js'
import { Limiter, SyncExecutor } from './services/executor.js'
import type { InferenceInput } from './services/handler.js'
import { CALLBACK_QUEUE, INFER_QUEUE, MAX_STALLED, PREFIX, checkPersistence, jobView, redisConnection, type JobData } from './services/queue.js'
import { Registry } from './services/registry.js'

/** A worker's temp folder: `tabr-worker-<ns>-<pid>-XXXXXX` in the OS temp dir (core/tempdirs). */
export const WORKER_DIR_PREFIX = 'tabr-worker-'

export interface RunningWorker {
  logger: Logger
  /** Finishes the active jobs, then closes Redis and removes the temp folder. */
  shutdown(): Promise<void>
}

interface CallbackData {
  job_id: string
  url: string
}

/**
 * What a job throws for an error: its stable code and message, as a plain Error that BullMQ
 * retries with backoff when its code is `retryable` in the error table (model_error, internal),
 * else as an UnrecoverableError (a bad input, an unknown model, a timeout).
 */
export function failureFor(err: unknown): Error {
  const e = toApiError(err)
  return e.retryable ? new Error(encodeError(e)) : new UnrecoverableError(encodeError(e))
}

export async function startWorker(config: Config, opts: { logger?: Logger } = {}): Promise<RunningWorker> {
  const logger = opts.logger ?? makeLogger(config.logLevel)
  checkThreadPool(config.concurrency, 0, logger)
  const registry = new Registry(config.registry, { ortProvider: config.ortProvider, flow: config.flow, limits: config.limits, warn: (model, msg) => logger.warn({ model }, msg), lazy: false })
  await registry.loadAll()
  const temp = makePrivateDir(WORKER_DIR_PREFIX, logSweeps(logger, 'temp folders of workers', 'temp folder'))
  const dir = temp.path
  // The limiter gives each job REQUEST_TIMEOUT_S and aborts its native task past it.
  const limiter = new Limiter(config.concurrency, Number.POSITIVE_INFINITY, config.requestTimeoutMs)
  // The same code path as the API's sync mode; videos and vectors share the worker's one limiter.
  const executor = new SyncExecutor(registry, limiter, limiter)
  const callbacks = new CallbackPolicy(config.callbackHosts, config.callbackSecret)
  const redis = redisConnection(config.redisUrl, { blocking: true })
  const jobs = new Queue<JobData, Answer>(INFER_QUEUE, { connection: redis, prefix: PREFIX })
  const name = `${hostname()}:${process.pid}`

  async function infer(job: Job<JobData, Answer>): Promise<Answer> {
    const d = job.data
    const log = logger.child({ job_id: job.id, model: d.model, attempt: job.attemptsMade + 1 })
    log.info('job started')
    let path: string | undefined
    try {
      const answer = await executor.run(
        d.model,
        async (): Promise<InferenceInput> => {
          const bytes = await redis.getBuffer(d.blob)
          if (!bytes) throw new ApiError('upload_expired', 'the upload expired before a worker took the job (JOB_TTL_S)')
          if (d.kind !== 'video') return { kind: 'features', values: JSON.parse(bytes.toString('utf8')) as (number | null)[] }
          path = join(dir, randomUUID())
          await writeFile(path, bytes, { mode: 0o600 })
          return { kind: 'video', path }
        },
        { includeFeatures: d.include_features, includeSeries: d.include_series ?? false, includeEvidence: d.include_evidence ?? false },
      )
      answer.timings_ms = { ...answer.timings_ms, queue: (job.processedOn ?? Date.now()) - job.timestamp }
      log.info({ timings_ms: answer.timings_ms }, 'job succeeded')
      return answer
    } catch (err) {
      const failure = failureFor(err)
      if (failure instanceof UnrecoverableError) log.info({ code: toApiError(err).code }, 'job failed')
      else log.error({ err }, 'job crashed: it will be retried')
      throw failure
    } finally {
      if (path) await rm(path, { force: true })
    }
  }

  async function deliver(job: Job<CallbackData>): Promise<void> {
    const { job_id, url } = job.data
    const state = await jobs.getJobState(job_id)
    const target = state === 'unknown' ? undefined : await jobs.getJob(job_id)
    if (!target) return void logger.warn({ job_id }, 'callback dropped: the job has expired')
    const body = JSON.stringify(jobView(target, state))
    await callbacks.deliver(url, job_id, body)
    logger.info({ job_id, attempt: job.attemptsMade + 1 }, 'callback delivered')
  }

  const common = { connection: redis, prefix: PREFIX, name, lockDuration: config.jobLockMs, stalledInterval: config.jobLockMs, maxStalledCount: MAX_STALLED }
  const inferWorker = new Worker<JobData, Answer>(INFER_QUEUE, infer, { ...common, concurrency: config.concurrency })
  const callbackWorker = new Worker<CallbackData>(CALLBACK_QUEUE, deliver, { ...common, concurrency: 16 })
  const dropBlob = (job: Job<JobData> | undefined) => void (job ? redis.del(job.data.blob).catch(() => {}) : undefined)
  inferWorker.on('completed', dropBlob)
  // finishedOn is set only when the job has failed for good (no retry left).
  inferWorker.on('failed', (job) => (job?.finishedOn ? dropBlob(job) : undefined))
  callbackWorker.on('failed', (job, err) => logger.warn({ job_id: job?.data.job_id, attempt: job?.attemptsMade, err: err.message }, 'callback attempt failed'))
  // Redis away makes every reconnect attempt an error: one line, then a digest every 30 s.
  const connection = repeatingErrorLog(logger, 'queue connection error')
  for (const w of [inferWorker, callbackWorker]) w.on('error', (e) => connection.report(e))
  redis.on('ready', () => connection.recovered())
  await Promise.all([inferWorker.waitUntilReady(), callbackWorker.waitUntilReady()])
  await checkPersistence(redis, logger)
  logger.info({ name, models: config.registry.map((e) => e.name), concurrency: config.concurrency }, 'worker ready')

  let closing: Promise<void> | undefined
  const shutdown = () =>
    (closing ??= (async () => {
      logger.info('shutting down: finishing active jobs')
      // Past SHUTDOWN_TIMEOUT_S the jobs are left to their locks: another worker takes them over.
      const force = setTimeout(() => void inferWorker.close(true), config.shutdownTimeoutMs)
      try {
        await Promise.all([inferWorker.close(), callbackWorker.close()])
        clearTimeout(force)
        await jobs.close()
      } finally {
        redis.disconnect()
        temp.release()
      }
      logger.info('worker stopped')
    })())
  return { logger, shutdown }
}
