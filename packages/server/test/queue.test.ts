// Queue mode against real Redis and a real worker process: the same answers as sync mode,
// async jobs, callbacks, and no upload left behind in Redis.
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { UnrecoverableError } from 'bullmq'
import { ApiError } from '../src/core/errors.js'
import type { Running } from '../src/server.js'
import { BLOB_PATTERN } from '../src/services/queue.js'
import { failureFor } from '../src/worker.js'
import { auth, call, serve } from './helpers.js'
import { queueEnv, startReceiver, startRedis, startWorker, until, verifySignature, type RedisServer, type WorkerProcess } from './queue-helpers.js'

const clips = inject('clips')
type Json = Record<string, any>

const video = (path: string, extra: Record<string, string> = {}) => {
  const form = new FormData()
  form.append('video', new Blob([readFileSync(path)]), 'clip.mkv')
  for (const [k, v] of Object.entries(extra)) form.append(k, v)
  return form
}
const featuresBody = (n = 90) => JSON.stringify({ features: Array.from({ length: n }, (_, i) => (i % 5 ? 0.05 * i : null)) })

/** A body without what differs by design between runs and modes: ids and timings. */
function comparable(j: Json): Json {
  const { request_id: _r, timings_ms, ...rest } = j
  if (j.error) return { error: { code: j.error.code, message: j.error.message } }
  return {
    ...rest,
    timing_keys: Object.keys(timings_ms ?? {})
      .filter((k) => k !== 'queue')
      .sort(),
  }
}

describe('queue mode', () => {
  let redis: RedisServer
  let sync: Running
  let queued: Running
  let worker: WorkerProcess
  let receiver: Awaited<ReturnType<typeof startReceiver>>

  beforeAll(async () => {
    redis = await startRedis()
    receiver = await startReceiver(1)
    worker = await startWorker(queueEnv(redis.url))
    sync = await serve({ MAX_UPLOAD_MB: '32' })
    queued = await serve(queueEnv(redis.url, { MAX_UPLOAD_MB: '32' }))
  })
  afterAll(async () => {
    await queued?.shutdown()
    await sync?.shutdown()
    worker?.proc.kill('SIGTERM')
    expect(await worker?.exited).toBe(0)
    await receiver?.close()
    await redis?.stop()
  })

  it('gives the same answers as sync mode, error codes included', async () => {
    const cases: [string, string, () => RequestInit][] = [
      ['multipart video', '/infer/tabr-demo?include=features', () => ({ method: 'POST', body: video(clips.face) })],
      ['raw video', '/infer/tabr-demo', () => ({ method: 'POST', body: readFileSync(clips.face), headers: { 'Content-Type': 'video/x-matroska' } })],
      ['raw video, series', '/infer/tabr-demo?include=series', () => ({ method: 'POST', body: readFileSync(clips.face), headers: { 'Content-Type': 'video/x-matroska' } })],
      ['features', '/infer/tabr-demo', () => ({ method: 'POST', body: featuresBody(), headers: { 'Content-Type': 'application/json' } })],
      ['no face', '/infer/tabr-demo', () => ({ method: 'POST', body: video(clips.noFace) })],
      ['one frame', '/infer/tabr-demo', () => ({ method: 'POST', body: video(clips.oneFrame) })],
      ['not a video', '/infer/tabr-demo', () => ({ method: 'POST', body: Buffer.from('definitely not a video'), headers: { 'Content-Type': 'video/mp4' } })],
      ['empty', '/infer/tabr-demo', () => ({ method: 'POST', body: Buffer.alloc(0), headers: { 'Content-Type': 'video/mp4' } })],
      ['too few features', '/infer/tabr-demo', () => ({ method: 'POST', body: featuresBody(3), headers: { 'Content-Type': 'application/json' } })],
      ['too large', '/infer/tabr-demo', () => ({ method: 'POST', body: Buffer.alloc(33 * 1024 * 1024), headers: { 'Content-Type': 'video/mp4' } })],
      ['unknown model', '/infer/nope', () => ({ method: 'POST', body: featuresBody(), headers: { 'Content-Type': 'application/json' } })],
      ['bad JSON', '/infer/tabr-demo', () => ({ method: 'POST', body: '{"features": 1}', headers: { 'Content-Type': 'application/json' } })],
    ]
    const statuses: number[] = []
    for (const [what, path, init] of cases) {
      const a = await call(sync, path, init())
      const b = await call(queued, path, init())
      expect({ what, status: b.status, body: comparable(b.json) }).toEqual({ what, status: a.status, body: comparable(a.json) })
      if (a.status === 200) expect(b.json.timings_ms.queue).toBeGreaterThanOrEqual(0)
      statuses.push(a.status)
    }
    expect(statuses).toEqual([200, 200, 200, 200, 422, 422, 422, 422, 422, 413, 404, 400])
  })

  it('answers 202 with Location under Prefer: respond-async, then the job succeeds', async () => {
    const r = await call(queued, '/infer/tabr-demo', { method: 'POST', body: video(clips.face), headers: { Prefer: 'respond-async', 'X-Request-Id': 'async-1' } })
    expect(r.status).toBe(202)
    expect(r.headers.get('preference-applied')).toBe('respond-async')
    expect(r.json).toEqual({ job_id: expect.any(String), status: 'queued' })
    expect(r.headers.get('location')).toBe(`/jobs/${r.json.job_id}`)
    const seen = new Set<string>()
    const done = await until(async () => {
      const j = await call(queued, r.headers.get('location')!)
      expect(j.status).toBe(200)
      seen.add(j.json.status)
      return j.json.status === 'succeeded' && j.json
    })
    expect([...seen].every((s) => ['queued', 'running', 'succeeded'].includes(s))).toBe(true)
    expect(done).toMatchObject({ job_id: r.json.job_id, model: 'tabr-demo', attempts: 1 })
    expect(Date.parse(done.finished_at)).toBeGreaterThanOrEqual(Date.parse(done.created_at))
    const direct = await call(sync, '/infer/tabr-demo', { method: 'POST', body: video(clips.face) })
    expect(done.result.request_id).toBe('async-1')
    expect(comparable(done.result)).toEqual(comparable(direct.json))
  })

  it('fails a job with a 4xx-class error at once, without retrying', async () => {
    const r = await call(queued, '/infer/tabr-demo', { method: 'POST', body: video(clips.noFace), headers: { Prefer: 'respond-async' } })
    const done = await until(async () => {
      const j = (await call(queued, `/jobs/${r.json.job_id}`)).json
      return j.status === 'failed' && j
    })
    expect(done.error.code).toBe('no_face')
    expect(done.attempts).toBe(1)
    expect(done.result).toBeUndefined()
  })

  it('retries crashes and stalls, not bad inputs or timeouts', () => {
    expect(failureFor(Object.assign(new Error('x'), { code: 'no_face' }))).toBeInstanceOf(UnrecoverableError)
    expect(failureFor(new ApiError('timeout', 't'))).toBeInstanceOf(UnrecoverableError)
    for (const crash of [Object.assign(new Error('x'), { code: 'model_error' }), new TypeError('boom')]) {
      const e = failureFor(crash)
      expect(e).not.toBeInstanceOf(UnrecoverableError)
      expect(JSON.parse(e.message).code).toMatch(/^(model_error|internal)$/)
    }
  })

  it('answers 404 job_not_found for unknown ids', async () => {
    for (const id of ['00000000-0000-4000-8000-000000000000', 'not-an-id', '1']) {
      const r = await call(queued, `/jobs/${id}`)
      expect(r.status).toBe(404)
      expect(r.json.error.code).toBe('job_not_found')
    }
    expect((await call(sync, '/jobs/00000000-0000-4000-8000-000000000000')).status).toBe(404)
    expect((await fetch(`${queued.url}/jobs/not-an-id`)).status).toBe(401)
  })

  it('posts the final job JSON to callback_url, signed, retried after a failed delivery', async () => {
    const r = await call(queued, `/infer/tabr-demo?callback_url=${encodeURIComponent(receiver.url)}`, { method: 'POST', body: video(clips.face), headers: { Prefer: 'respond-async' } })
    expect(r.status).toBe(202)
    // The receiver refuses the first delivery (500): the callback is retried with backoff.
    const cb = await until(() => receiver.received.find((c) => c.jobId === r.json.job_id), 20_000, 'the callback')
    expect(verifySignature(cb.body, cb.signature)).toBe(true)
    expect(verifySignature(cb.body, cb.signature, 'another-secret-0123456789abcdefghijklm')).toBe(false)
    const body = JSON.parse(cb.body) as Json
    expect(body).toEqual((await call(queued, `/jobs/${r.json.job_id}`)).json)
    expect(body.status).toBe('succeeded')

    // A multipart field works too, in the waiting (sync-contract) form, and for a failed job.
    const f = await call(queued, '/infer/tabr-demo', { method: 'POST', body: video(clips.noFace, { callback_url: receiver.url }) })
    expect(f.json.error.code).toBe('no_face')
    const failed = await until(() => receiver.received.find((c) => JSON.parse(c.body).result === undefined && JSON.parse(c.body).error?.code === 'no_face'), 20_000, 'the failure callback')
    expect(verifySignature(failed.body, failed.signature)).toBe(true)
    expect(receiver.received.filter((c) => c.jobId === r.json.job_id)).toHaveLength(1)
  })

  it('refuses a callback host outside the allow-list with 422, before any work', async () => {
    // What a refused request must not leave: any key of a job. BullMQ's `stalled-check` is the
    // worker's own timer (set and expired every stall interval), so it comes and goes by itself.
    const jobKeys = async () => (await redis.keys('tabr:infer:*')).filter((k) => !k.endsWith(':stalled-check')).sort() // KEYS has no order
    const keysBefore = await jobKeys()
    for (const url of ['http://169.254.169.254/latest/meta-data', 'http://localhost:1/x', 'ftp://127.0.0.1/x', 'http://user:pw@127.0.0.1/x', 'not a url']) {
      const q = await call(queued, `/infer/tabr-demo?callback_url=${encodeURIComponent(url)}`, { method: 'POST', body: featuresBody(), headers: { 'Content-Type': 'application/json' } })
      expect([url, q.status, q.json.error.code]).toEqual([url, 422, 'callback_not_allowed'])
      const m = await call(queued, '/infer/tabr-demo', { method: 'POST', body: video(clips.face, { callback_url: url }) })
      expect([url, m.status, m.json.error.code]).toEqual([url, 422, 'callback_not_allowed'])
    }
    expect(await jobKeys()).toEqual(keysBefore)
    const s = await call(sync, `/infer/tabr-demo?callback_url=${encodeURIComponent(receiver.url)}`, { method: 'POST', body: featuresBody(), headers: { 'Content-Type': 'application/json' } })
    expect([s.status, s.json.error.code]).toEqual([422, 'callback_not_allowed'])
  })

  it('reports Redis in /readyz and the queue in /metrics', async () => {
    expect(await (await fetch(`${queued.url}/readyz`)).json()).toEqual({ status: 'ready', queue: 'ready' })
    const text = await (await fetch(`${queued.url}/metrics`, { headers: auth() })).text()
    expect(text).toMatch(/tabr_queue_jobs\{state="completed"\} [1-9]/)
    expect(text).toMatch(/tabr_queue_jobs\{state="failed"\} [1-9]/)
    expect(text).toMatch(/tabr_jobs_finished_total\{outcome="succeeded"\} [1-9]/)
    expect(text).toMatch(/tabr_stage_duration_seconds_count\{model="tabr-demo",stage="queue"\} [1-9]/)
  })

  it('leaves no upload in Redis once jobs have ended', async () => {
    await until(async () => (await redis.keys(BLOB_PATTERN)).length === 0, 5000, 'no blob keys')
    expect(worker.lines.filter((l) => l.msg === 'job started').length).toBeGreaterThan(5)
  })
})
