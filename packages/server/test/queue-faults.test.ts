// Queue mode under faults, with real Redis and real worker processes: a worker SIGKILLed
// mid-job, a worker stopped gracefully mid-job, a caller that gives up, and Redis going away
// and coming back while the API keeps running.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Running } from '../src/server.js'
import { BLOB_PATTERN, blobKey } from '../src/services/queue.js'
import { binDir } from '../../tabr-native/test/setup.js'
import { auth, serve } from './helpers.js'
import { queueEnv, startReceiver, startRedis, startWorker, until, verifySignature, type RedisServer, type WorkerProcess } from './queue-helpers.js'

type Json = Record<string, any>

// A small clip (320×240, 1.5 s, ~2 MB) keeps 30 jobs quick; drawn by the project's generator.
const dir = mkdtempSync(join(tmpdir(), 'tabr-faults-'))
const clip = join(dir, 'small.mkv')
execFileSync(join(binDir(), 'tabr-synth'), [clip, '--width', '320', '--height', '240', '--frames', '45'], { stdio: 'ignore' })
const form = () => {
  const f = new FormData()
  f.append('video', new Blob([readFileSync(clip)]), 'small.mkv')
  return f
}
const features = () => ({ method: 'POST', body: JSON.stringify({ features: Array.from({ length: 90 }, () => 0.1) }), headers: { ...auth(), 'Content-Type': 'application/json' } })
const getJob = async (s: Running, id: string) => (await (await fetch(`${s.url}/jobs/${id}`, { headers: auth() })).json()) as Json
const started = (w: WorkerProcess) => w.lines.filter((l) => l.msg === 'job started')

describe('queue mode under faults', () => {
  let redis: RedisServer
  let api: Running
  const workers: WorkerProcess[] = []

  beforeAll(async () => {
    redis = await startRedis()
    api = await serve(queueEnv(redis.url, { REQUEST_TIMEOUT_S: '60' }))
  })
  afterAll(async () => {
    for (const w of workers) w.proc.kill('SIGKILL')
    await api?.shutdown()
    await redis?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('completes all 30 jobs when one of 2 workers is SIGKILLed mid-job; one callback per job', async () => {
    const receiver = await startReceiver()
    try {
      const [a, b] = await Promise.all([startWorker(queueEnv(redis.url)), startWorker(queueEnv(redis.url))])
      workers.push(a!, b!)
      const ids: string[] = []
      for (let i = 0; i < 30; i++) {
        const r = await fetch(`${api.url}/infer/tabr-demo?callback_url=${encodeURIComponent(receiver.url)}`, { method: 'POST', body: form(), headers: { ...auth(), Prefer: 'respond-async' } })
        expect(r.status).toBe(202)
        ids.push(((await r.json()) as Json).job_id as string)
      }
      // Kill worker a the moment it starts its next job, so it dies holding that job.
      const killed = new Promise<number>((resolve) => {
        a!.onLine = (l) => {
          if (l.msg !== 'job started') return
          a!.onLine = undefined
          a!.proc.kill('SIGKILL')
          resolve(Date.now())
        }
      })
      const killedAt = await killed
      expect(await a!.exited).toBe(null)
      // With all its output read: the one job a started and never finished.
      const ended = new Set(a!.lines.filter((l) => l.msg === 'job succeeded' || l.msg === 'job failed').map((l) => l.job_id))
      const unfinished = started(a!).filter((l) => !ended.has(l.job_id))
      expect(unfinished).toHaveLength(1)
      const victim = unfinished[0]!.job_id as string

      const victimDone = await until(
        async () => {
          const j = await getJob(api, victim)
          return j.status === 'succeeded' && j
        },
        30_000,
        'the killed job to be taken over',
      )
      const takeover = Date.now() - killedAt
      expect(takeover).toBeLessThan(15_000 + 5_000 /* the jobs queued before it on worker b */)
      expect(victimDone.attempts).toBeGreaterThanOrEqual(2)
      expect(started(b!).some((l) => l.job_id === victim)).toBe(true)

      const views = await until(
        async () => {
          const all = await Promise.all(ids.map((id) => getJob(api, id)))
          return all.every((j) => j.status === 'succeeded') && all
        },
        120_000,
        'all 30 jobs',
      )
      expect(views).toHaveLength(30)
      await until(() => receiver.received.length >= 30, 20_000, '30 callbacks')
      await new Promise((r) => setTimeout(r, 1500)) // a duplicate would arrive now
      expect(receiver.received.map((c) => c.jobId).sort()).toEqual([...ids].sort())
      for (const c of receiver.received) expect(verifySignature(c.body, c.signature)).toBe(true)
      expect(await redis.keys(BLOB_PATTERN)).toEqual([])
      console.log(`worker SIGKILLed mid-job: its job succeeded on the other worker ${takeover} ms later (JOB_LOCK_S=5)`)
    } finally {
      await receiver.close()
    }
  })

  it('finishes the active job on SIGTERM before the worker exits', async () => {
    const w = await startWorker(queueEnv(redis.url))
    workers.push(w)
    for (const old of workers.slice(0, -1)) old.proc.kill('SIGKILL')
    const r = await fetch(`${api.url}/infer/tabr-demo`, { method: 'POST', body: form(), headers: { ...auth(), Prefer: 'respond-async' } })
    const id = ((await r.json()) as Json).job_id as string
    await until(() => started(w).some((l) => l.job_id === id), 30_000, 'the job to start')
    w.proc.kill('SIGTERM')
    expect(await w.exited).toBe(0)
    const j = await getJob(api, id)
    expect([j.status, j.attempts]).toEqual(['succeeded', 1])
    expect(w.lines.map((l) => l.msg)).toContain('worker stopped')
  })

  it('answers 504 when no worker takes the job in time, and drops the job and its upload', async () => {
    const short = await serve(queueEnv(redis.url, { REQUEST_TIMEOUT_S: '1' }))
    const jobKeys = () => redis.keys('tabr:infer:*-*-*-*-*')
    const blobs = () => redis.keys(BLOB_PATTERN)
    const [before, blobsBefore] = [(await jobKeys()).length, (await blobs()).length]
    try {
      const t = Date.now()
      const r = await fetch(`${short.url}/infer/tabr-demo`, features())
      expect(r.status).toBe(504)
      expect(((await r.json()) as Json).error.code).toBe('timeout')
      expect(Date.now() - t).toBeLessThan(3000)
      await until(async () => (await blobs()).length === blobsBefore, 5000, 'the upload to be dropped')
      expect(await jobKeys()).toHaveLength(before)
    } finally {
      await short.shutdown()
    }
  })

  it('expires uploads and results after JOB_TTL_S: a job whose upload expired fails with upload_expired, then answers 404', async () => {
    const brief = await serve(queueEnv(redis.url, { JOB_TTL_S: '1' }))
    try {
      const r = await fetch(`${brief.url}/infer/tabr-demo`, { ...features(), headers: { ...features().headers, Prefer: 'respond-async' } })
      const id = ((await r.json()) as Json).job_id as string
      expect((await getJob(brief, id)).status).toBe('queued')
      await until(async () => (await redis.keys(blobKey(id))).length === 0, 5000, 'the upload to expire in Redis')
      workers.push(await startWorker(queueEnv(redis.url)))
      const failed = await until(
        async () => {
          const j = await getJob(brief, id)
          return j.status === 'failed' && j
        },
        15_000,
        'the job to fail',
      )
      expect(failed.error.code).toBe('upload_expired')
      expect(failed.attempts).toBe(1)
      await until(async () => (await fetch(`${brief.url}/jobs/${id}`, { headers: auth() })).status === 404, 5000, 'the result to expire')
    } finally {
      await brief.shutdown()
    }
  })

  it('answers 503 queue_unavailable within 2 s while Redis is down, and recovers on its own', async () => {
    const w = await startWorker(queueEnv(redis.url))
    workers.push(w)
    expect((await fetch(`${api.url}/infer/tabr-demo`, features())).status).toBe(200)

    await redis.stop()
    for (const attempt of [features(), { method: 'POST', body: form(), headers: auth() }]) {
      const t = Date.now()
      const r = await fetch(`${api.url}/infer/tabr-demo`, attempt)
      expect(Date.now() - t).toBeLessThan(2000)
      expect(r.status).toBe(503)
      expect(r.headers.get('retry-after')).toBeTruthy()
      expect(((await r.json()) as Json).error.code).toBe('queue_unavailable')
    }
    const t = Date.now()
    const ready = await fetch(`${api.url}/readyz`)
    expect([ready.status, ((await ready.json()) as Json).error.code]).toEqual([503, 'queue_unavailable'])
    expect((await fetch(`${api.url}/jobs/00000000-0000-4000-8000-000000000000`, { headers: auth() })).status).toBe(503)
    expect((await fetch(`${api.url}/metrics`, { headers: auth() })).status).toBe(200)
    expect(Date.now() - t).toBeLessThan(2000)
    // The worker says Redis is away once, not at every reconnect attempt (it wrote four lines
    // a second: 2,644 in 11 minutes).
    await new Promise((r) => setTimeout(r, 5000))
    const errorLines = () => w.lines.filter((l) => l.msg === 'queue connection error').length
    expect(errorLines()).toBeGreaterThanOrEqual(1)
    expect(errorLines()).toBeLessThanOrEqual(2)

    await redis.start()
    await until(async () => (await fetch(`${api.url}/readyz`)).status === 200, 15_000, '/readyz to recover')
    const r = await until(
      async () => {
        const res = await fetch(`${api.url}/infer/tabr-demo`, { method: 'POST', body: form(), headers: auth() })
        return res.status === 200 && ((await res.json()) as Json)
      },
      20_000,
      'a request to succeed again',
    )
    expect(r.prediction.probabilities).toHaveLength(2)
    await until(async () => w.lines.some((l) => l.msg === 'queue connection error: recovered'), 10_000, 'the worker to say the queue is back')
  })
})
