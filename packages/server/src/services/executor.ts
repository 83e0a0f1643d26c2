// The executors: how one inference runs to its answer. SyncExecutor runs it in this process
// (the API in sync mode, and every queue worker for its jobs: one code path for both);
// QueueExecutor (queue-executor.ts) hands it to a worker through Redis. The Limiter admits
// CONCURRENCY inferences at once, lets up to MAX_PENDING wait, and answers 503 + Retry-After
// beyond that. Each inference has REQUEST_TIMEOUT_S from admission: past it the caller gets
// 504 at once, the slot is freed and the native task is aborted.
import { ApiError } from '../core/errors.js'
import { answerOf, type Answer } from './answer.js'
import type { BatchResult, InferenceInput } from './handler.js'
import type { Registry } from './registry.js'

export interface RunOptions {
  includeFeatures: boolean
  includeSeries: boolean
  includeEvidence: boolean
  requestId: string
  callbackUrl?: string
  /** The caller takes a job id instead of waiting (`Prefer: respond-async`); queue mode only. */
  respondAsync?: boolean
  /** Told the job's id as soon as there is one (queue mode), for the caller's log line. */
  onJob?: (id: string) => void
}

/** An inference's outcome: its answer, or the id of the job accepted to compute it. */
export type Outcome = { answer: Answer; accepted?: never } | { accepted: string; answer?: never }

/**
 * How POST /infer runs one inference of a named model, in either mode: the answer, or
 * (queue mode, `respondAsync`) the accepted job; rejects with an ApiError. Each executor
 * observes the answers it produces (stage metrics), so the route does not ask which mode runs.
 */
export interface Executor {
  infer(model: string, input: InferenceInput, opts: RunOptions): Promise<Outcome>
}

type Waiter = () => void

export class Limiter {
  private active = 0
  private readonly queue: Waiter[] = []

  constructor(
    readonly concurrency: number,
    readonly maxPending: number,
    private readonly timeoutMs: number,
  ) {}

  get inFlight(): number {
    return this.active
  }

  get pending(): number {
    return this.queue.length
  }

  /** Runs `work` under the limits. `work` gets a signal that aborts on timeout. */
  run<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    if (this.active >= this.concurrency && this.queue.length >= this.maxPending) {
      const retry = Math.max(1, Math.ceil(this.timeoutMs / 1000 / 4))
      return Promise.reject(new ApiError('overloaded', 'the service is busy: retry later', { 'Retry-After': String(retry) }))
    }
    return new Promise<T>((resolve, reject) => {
      const ac = new AbortController()
      let settled = false
      let started = false
      const finish = (fn: () => void) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        if (started) this.release()
        fn()
      }
      const timer = setTimeout(() => {
        ac.abort()
        if (!started) this.queue.splice(this.queue.indexOf(waiter), 1)
        finish(() => reject(new ApiError('timeout', 'the inference took longer than the request timeout')))
      }, this.timeoutMs)
      const waiter: Waiter = () => {
        started = true
        this.active++
        work(ac.signal).then(
          (v) => finish(() => resolve(v)),
          (e) => finish(() => reject(e)),
        )
      }
      if (this.active < this.concurrency) waiter()
      else this.queue.push(waiter)
    })
  }

  private release() {
    this.active--
    this.queue.shift()?.()
  }
}

/**
 * Runs inferences in this process: the model's handler, under the video limiter or the
 * feature-vector limiter (a vector costs under a millisecond and must not wait behind videos).
 * `input` may be a function, called once the model is known (a worker reads its upload then).
 */
export class SyncExecutor implements Executor {
  constructor(
    private readonly registry: Registry,
    private readonly videoLimiter: Limiter,
    private readonly featureLimiter: Limiter,
    /** Told each answer of `infer` and its milliseconds (the API's stage metrics). */
    private readonly observe?: (answer: Answer, totalMs: number) => void,
  ) {}

  /** The Executor contract: runs the inference here; `respondAsync` does not apply. */
  async infer(model: string, input: InferenceInput, opts: RunOptions): Promise<Outcome> {
    const started = performance.now()
    const answer = await this.run(model, input, opts)
    this.observe?.(answer, performance.now() - started)
    return { answer }
  }

  async run(model: string, input: InferenceInput | (() => Promise<InferenceInput>), opts: Pick<RunOptions, 'includeFeatures' | 'includeSeries' | 'includeEvidence'>): Promise<Answer> {
    const handler = await this.registry.get(model)
    const given = typeof input === 'function' ? await input() : input
    const admit = given.kind === 'features' ? this.featureLimiter : this.videoLimiter
    return answerOf(
      model,
      handler,
      await admit.run((signal) => handler.infer(given, signal, { includeFeatures: opts.includeFeatures, includeSeries: opts.includeSeries, includeEvidence: opts.includeEvidence })),
    )
  }

  /**
   * A batch of feature vectors (the Open Inference Protocol), under the feature-vector
   * limiter. Both modes run it here: see api/routes/oip.ts for why it never goes through the
   * queue.
   */
  async runBatch(model: string, values: Float32Array, rows: number, opts?: { evidence?: boolean }): Promise<BatchResult> {
    const handler = await this.registry.get(model)
    return this.featureLimiter.run((signal) => handler.inferBatch(values, rows, signal, opts))
  }
}
