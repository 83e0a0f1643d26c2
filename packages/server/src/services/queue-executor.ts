// The API's side of queue mode. It stores each upload in Redis under a random key with a TTL
// (the job carries the key, never the bytes), enqueues a BullMQ job, and either waits for it
// (the sync contract: the same 200 or the same error) or hands back its id (202). Redis calls
// have a 1.5 s deadline and are refused at once while the connection is down, so a request
// gets 503 queue_unavailable within 2 s instead of hanging; ioredis reconnects on its own.
import { randomUUID } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { FlowProducer, Queue, QueueEvents } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import { ApiError, apiErrorOf, decodeError } from '../core/errors.js'
import type { Config } from '../core/config.js'
import type { Answer } from './answer.js'
import type { Executor, Outcome, RunOptions } from './executor.js'
import type { InferenceInput } from './handler.js'
import {
  CALLBACK_ATTEMPTS,
  CALLBACK_QUEUE,
  INFER_ATTEMPTS,
  INFER_QUEUE,
  PREFIX,
  blobKey,
  expired,
  jobOptions,
  checkPersistence,
  jobView,
  redisConnection,
  type JobData,
  type JobView,
} from './queue.js'

const DEADLINE_MS = 1500
const unavailable = () => new ApiError('queue_unavailable', 'the job queue is unavailable: retry later', { 'Retry-After': '2' })
const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

interface Waiter {
  resolve(r: Answer): void
  reject(e: ApiError): void
}

export type SubmitOptions = RunOptions

export class QueueExecutor implements Executor {
  private readonly redis: Redis
  /** QueueEvents' blocking connection (BullMQ leaves a connection it was given open). */
  private readonly eventsRedis: Redis
  private readonly queue: Queue<JobData, Answer>
  private readonly flow: FlowProducer
  private readonly events: QueueEvents
  private readonly waiters = new Map<string, Waiter>()
  private eventsReady = false

  constructor(
    private readonly config: Config,
    private readonly logger: Logger,
    /** Every job's end, as queue events report it (metrics). */
    onFinished: (outcome: 'succeeded' | 'failed', answer?: Answer) => void = () => {},
  ) {
    this.redis = redisConnection(config.redisUrl, { blocking: false })
    this.queue = new Queue<JobData, Answer>(INFER_QUEUE, { connection: this.redis, prefix: PREFIX })
    this.flow = new FlowProducer({ connection: this.redis, prefix: PREFIX })
    this.eventsRedis = redisConnection(config.redisUrl, { blocking: true })
    this.events = new QueueEvents(INFER_QUEUE, { connection: this.eventsRedis, prefix: PREFIX })
    const quiet = (e: Error) => this.logger.debug({ err: e.message }, 'queue connection error')
    this.queue.on('error', quiet)
    this.flow.on('error', quiet)
    this.events.on('error', quiet)
    this.events.waitUntilReady().then(
      () => void (this.eventsReady = true),
      () => {},
    )
    this.events.on('completed', ({ jobId, returnvalue }) => {
      const r = returnvalue as unknown as Answer
      this.settle(jobId, (w) => w.resolve(r))
      onFinished('succeeded', r)
    })
    this.events.on('failed', ({ jobId, failedReason }) => {
      this.settle(jobId, (w) => w.reject(apiErrorOf(decodeError(failedReason))))
      onFinished('failed')
    })
    this.redis.once('ready', () => void checkPersistence(this.redis, this.logger))
    // Whoever waits on a job hears at once when the connection drops, not at its timeout.
    this.redis.on('close', () => {
      for (const id of [...this.waiters.keys()]) this.settle(id, (w) => w.reject(unavailable()))
    })
  }

  /** Redis answers and queue events are flowing (part of /readyz). */
  ready(): boolean {
    return this.redis.status === 'ready' && this.eventsReady
  }

  private settle(id: string, fn: (w: Waiter) => void) {
    const w = this.waiters.get(id)
    if (!w) return
    this.waiters.delete(id)
    fn(w)
  }

  /** Runs a Redis call under the deadline; any failure of the connection is a 503. */
  private async guard<T>(p: () => Promise<T>): Promise<T> {
    if (this.redis.status !== 'ready') throw unavailable()
    let timer: NodeJS.Timeout | undefined
    try {
      return await Promise.race([
        p(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(unavailable()), DEADLINE_MS)
        }),
      ])
    } catch (e) {
      if (e instanceof ApiError) throw e
      this.logger.warn({ err: (e as Error).message }, 'queue call failed')
      throw unavailable()
    } finally {
      clearTimeout(timer)
    }
  }

  /** Refuses early (before the upload is read) while Redis is away. */
  assertAvailable(): void {
    if (!this.ready()) throw unavailable()
  }

  /** Stores the upload and enqueues the job; returns the job id. */
  async submit(model: string, input: InferenceInput, opts: SubmitOptions): Promise<string> {
    const id = randomUUID()
    const bytes = input.kind === 'video' ? await readFile(input.path) : Buffer.from(JSON.stringify(input.values))
    const data: JobData = {
      model,
      blob: blobKey(id),
      kind: input.kind,
      include_features: opts.includeFeatures,
      include_series: opts.includeSeries,
      include_evidence: opts.includeEvidence,
      request_id: opts.requestId,
      ...(opts.callbackUrl ? { callback_url: opts.callbackUrl } : {}),
    }
    const ttl = Math.ceil(this.config.jobTtlS)
    await this.guard(() => this.redis.set(data.blob, bytes, 'EX', ttl))
    try {
      if (!opts.callbackUrl) {
        await this.guard(() => this.queue.add('infer', data, jobOptions(id, INFER_ATTEMPTS, ttl)))
      } else {
        // The callback job is the inference job's flow parent: Redis moves it to its queue in
        // the same script that ends the child, so it runs once per job, whatever dies when.
        await this.guard(() =>
          this.flow.add({
            name: 'callback',
            queueName: CALLBACK_QUEUE,
            data: { job_id: id, url: opts.callbackUrl },
            opts: jobOptions(id, CALLBACK_ATTEMPTS, ttl),
            children: [{ name: 'infer', queueName: INFER_QUEUE, data, opts: { ...jobOptions(id, INFER_ATTEMPTS, ttl), ignoreDependencyOnFailure: true } }],
          }),
        )
      }
    } catch (e) {
      await this.redis.del(data.blob).catch(() => {})
      throw e
    }
    return id
  }

  /** The Executor contract through the queue: submits the job, then hands back its id
   * (`respondAsync`) or waits for its answer. Answers are observed when their jobs end. */
  async infer(model: string, input: InferenceInput, opts: RunOptions): Promise<Outcome> {
    const id = await this.submit(model, input, opts)
    opts.onJob?.(id)
    return opts.respondAsync ? { accepted: id } : { answer: await this.wait(id) }
  }

  /** Waits for a job (at most REQUEST_TIMEOUT_S): its result, or the ApiError it ended with. */
  wait(id: string): Promise<Answer> {
    return new Promise<Answer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.settle(id, (w) => w.reject(new ApiError('timeout', 'the inference took longer than the request timeout')))
        void this.abandon(id)
      }, this.config.requestTimeoutMs)
      this.waiters.set(id, {
        resolve: (r) => (clearTimeout(timer), resolve(r)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      })
      // The job may have ended before the waiter was registered. The state is read before the
      // job: a job read first could be a running one's copy, without its outcome.
      this.guard(() => this.queue.getJobState(id))
        .then(async (state) => {
          if (state !== 'completed' && state !== 'failed') return
          const job = await this.guard(() => this.queue.getJob(id))
          if (!job) return
          if (state === 'completed') this.settle(id, (w) => w.resolve(job.returnvalue))
          else this.settle(id, (w) => w.reject(apiErrorOf(decodeError(job.failedReason))))
        })
        .catch((e: ApiError) => this.settle(id, (w) => w.reject(e)))
    })
  }

  /** After a sync caller gave up: a job still waiting is removed with its upload. */
  private async abandon(id: string) {
    try {
      const job = await this.guard(() => this.queue.getJob(id))
      if (job && (await job.isWaiting())) {
        await job.remove()
        await this.redis.del(job.data.blob)
      }
    } catch {
      // running or already gone: its result stays readable at /jobs/{id} until JOB_TTL_S
    }
  }

  /** GET /jobs/{id}; undefined when unknown or expired. */
  async view(id: string): Promise<JobView | undefined> {
    if (!ID.test(id)) return undefined
    // State first, then the job: the job is then at least as new as the state it is shown with.
    const state = await this.guard(() => this.queue.getJobState(id))
    const job = state === 'unknown' ? undefined : await this.guard(() => this.queue.getJob(id))
    if (!job || expired(job, this.config.jobTtlS)) return undefined
    return jobView(job, state)
  }

  /** Queue depth for /metrics (undefined while Redis is away). */
  async counts(): Promise<Record<string, number> | undefined> {
    try {
      return await this.guard(() => this.queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed'))
    } catch {
      return undefined
    }
  }

  async close(): Promise<void> {
    for (const id of [...this.waiters.keys()]) this.settle(id, (w) => w.reject(unavailable()))
    // BullMQ's close waits for a connection that may never come back: with Redis away the
    // service would never finish shutting down. Past the deadline the connections are cut.
    const closed = Promise.allSettled([this.events.close(), this.flow.close(), this.queue.close()])
    let timer: NodeJS.Timeout | undefined
    await Promise.race([closed, new Promise((r) => (timer = setTimeout(r, DEADLINE_MS)))])
    clearTimeout(timer)
    this.redis.disconnect()
    this.eventsRedis.disconnect()
  }
}
