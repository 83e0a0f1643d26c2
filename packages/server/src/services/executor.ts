// The sync executor: admits CONCURRENCY inferences at once, lets up to MAX_PENDING wait, and
// answers 503 + Retry-After beyond that. Each inference has REQUEST_TIMEOUT_S from admission:
// past it the caller gets 504 at once, the slot is freed and the native task is aborted.
import { ApiError } from '../api/errors.js'

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
