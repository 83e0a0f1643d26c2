// How many libuv threads the service wants, in one place for the launcher (bin/tabr-serve.cts,
// which sets UV_THREADPOOL_SIZE before the pool exists) and the start-up check
// (core/threadpool.ts). CommonJS, so the launcher can load it synchronously, before any
// ES-module loading has touched the pool.
import { existsSync, readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { parse } from 'dotenv'

/** libuv's own bounds on UV_THREADPOOL_SIZE. */
export const POOL_MAX = 1024

/**
 * One thread per video and per feature vector admitted at once, plus two for file I/O (upload
 * writes, temp clean-up), so a feature vector never waits behind videos for a thread.
 */
export function wantedPoolSize(videos: number, features: number): number {
  return Math.min(POOL_MAX, videos + features + 2)
}

/** CONCURRENCY and FEATURE_CONCURRENCY as the service will read them (environment, then .env, then cores). */
export function admittedAtOnce(env: NodeJS.ProcessEnv, dotenvPath = '.env'): { videos: number; features: number } {
  const file = existsSync(dotenvPath) ? parse(readFileSync(dotenvPath)) : {}
  const cores = availableParallelism()
  const read = (key: string) => {
    const n = Number(env[key] ?? file[key])
    return Number.isInteger(n) && n >= 1 ? n : cores
  }
  return { videos: read('CONCURRENCY'), features: read('FEATURE_CONCURRENCY') }
}
