// The libuv thread pool runs every native inference (a napi AsyncTask holds one thread for the
// whole extraction) and the service's file I/O (upload writes). Its size is fixed when the
// first task is queued, which in an ES-module program happens before any of its code runs. The
// launcher (bin/tabr-serve.cts) therefore sets UV_THREADPOOL_SIZE before loading anything.
// This check covers the rest: an explicit UV_THREADPOOL_SIZE smaller than that, or a service
// started another way. With no more threads than videos admitted at once, a feature vector or
// an upload write waits behind videos although its own limiter admitted it; the service says so
// at start-up rather than silently losing the separate admission.
import type { Logger } from 'pino'
import { POOL_MAX, wantedPoolSize } from './pool-size.cjs'

/** As the process was started (read when this module is first loaded, before .env). */
const AT_START = process.env.UV_THREADPOOL_SIZE

/** libuv's pool size for this process: UV_THREADPOOL_SIZE as started (1–1024), else 4. */
export function threadPoolSize(): number {
  const n = Number(AT_START)
  return Number.isInteger(n) && n > 0 ? Math.min(n, POOL_MAX) : 4
}

/**
 * Warns when `videos` native tasks at once could take every pool thread (an explicit
 * UV_THREADPOOL_SIZE below what the launcher would set, or a service started without it).
 * Returns whether it warned.
 */
export function checkThreadPool(videos: number, features: number, logger: Logger): boolean {
  const size = threadPoolSize()
  const wanted = wantedPoolSize(videos, features)
  if (size > videos) return false
  logger.warn(
    { uv_threadpool_size: size, concurrency: videos, wanted },
    `the libuv thread pool (${size} threads) can be filled by ${videos} videos at once: feature vectors and upload writes then wait behind them. Start ` +
      `Node with UV_THREADPOOL_SIZE=${wanted} in its environment (.env is read too late)`,
  )
  return true
}
