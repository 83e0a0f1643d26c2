import { execFileSync, spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { describe, expect, inject, it } from 'vitest'
import { createService } from '../src/app.js'
import { ConfigError } from '../src/core/config.js'
import { Registry } from '../src/services/registry.js'
import { auth, config, DEMO, serve, TOKEN } from './helpers.js'

const clips = inject('clips')
const video = () => ({ method: 'POST', body: readFileSync(clips.long), headers: { ...auth(), 'Content-Type': 'video/x-matroska' } })
const features = () => ({ method: 'POST', body: JSON.stringify({ features: new Array(90).fill(0) }), headers: { ...auth(), 'Content-Type': 'application/json' } })

describe('limits', () => {
  it('admits CONCURRENCY + MAX_PENDING and answers the other k requests 503 with Retry-After', async () => {
    const s = await serve({ CONCURRENCY: '1', MAX_PENDING: '1' })
    try {
      const k = 3
      const rs = await Promise.all(Array.from({ length: 2 + k }, () => fetch(`${s.url}/infer/tabr-demo`, video())))
      const busy = rs.filter((r) => r.status === 503)
      expect(busy).toHaveLength(k)
      expect(rs.filter((r) => r.status === 200)).toHaveLength(2)
      for (const r of busy) {
        expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0)
        expect((await r.json()).error.code).toBe('overloaded')
      }
    } finally {
      await s.shutdown()
    }
  })

  it('admits feature vectors apart from videos: one sent while a video runs and another waits is answered first', async () => {
    const s = await serve({ CONCURRENCY: '1', MAX_PENDING: '1', FEATURE_CONCURRENCY: '1', FEATURE_MAX_PENDING: '0' })
    try {
      const order: string[] = []
      const track = (name: string, p: Promise<Response>) => p.then(async (r) => (order.push(name), [r.status, (await r.json()) as Record<string, any>] as const))
      const videos = [1, 2].map((i) => track(`video${i}`, fetch(`${s.url}/infer/tabr-demo`, video())))
      // The video limiter is full: one video runs, one waits for its slot.
      for (let i = 0; !(s.service.limiter.inFlight === 1 && s.service.limiter.pending === 1); i++) {
        if (i > 2400) throw new Error('the two videos were never admitted together')
        await new Promise((r) => setTimeout(r, 10))
      }
      const [status, body] = await track('features', fetch(`${s.url}/infer/tabr-demo`, features()))
      expect([status, body.error?.code]).toEqual([200, undefined])
      // Before the waiting video, which cannot start until the running one ends.
      expect(order).not.toContain('video2')
      expect((await Promise.all(videos)).map(([st]) => st)).toEqual([200, 200])
    } finally {
      await s.shutdown()
    }
  })

  it('answers 504 past REQUEST_TIMEOUT_S, frees the slot and serves the next request', async () => {
    // REQUEST_TIMEOUT_S also bounds the body read (408), so the clip is sent small: H.264.
    const dir = mkdtempSync(join(tmpdir(), 'tabr-timeout-'))
    const small = join(dir, 'long.mp4')
    execFileSync('ffmpeg', ['-v', 'error', '-i', clips.long, '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', small])
    const s = await serve({ CONCURRENCY: '1', MAX_PENDING: '0', REQUEST_TIMEOUT_S: '0.3' })
    try {
      const r = await fetch(`${s.url}/infer/tabr-demo`, { ...video(), body: readFileSync(small) })
      expect(r.status).toBe(504)
      expect((await r.json()).error.code).toBe('timeout')
      expect(s.service.limiter.inFlight).toBe(0)
      expect((await fetch(`${s.url}/infer/tabr-demo`, features())).status).toBe(200)
    } finally {
      await s.shutdown()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('start-up and shutdown', () => {
  it('/readyz answers 503 until the models are loaded', async () => {
    const service = createService(config())
    const server = createServer(service.app).listen(0, '127.0.0.1')
    await new Promise((r) => server.once('listening', r))
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    try {
      const before = await fetch(`${url}/readyz`)
      expect(before.status).toBe(503)
      expect((await before.json()).error.code).toBe('not_ready')
      expect((await fetch(`${url}/infer/tabr-demo`, features())).status).toBe(503)
      await service.registry.loadAll()
      expect((await fetch(`${url}/readyz`)).status).toBe(200)
    } finally {
      server.close()
      await service.dispose()
    }
  })

  it('stops on a bad registry entry with one line naming it', async () => {
    const opts = { ortProvider: 'cpu', limits: config().limits, lazy: false }
    expect(() => config({ MODEL_REGISTRY: 'a:tabr:x,x:y' })).toThrow('MODEL_REGISTRY entry 2 ("x:y"): expected name:handler:dir')
    expect(() => new Registry([{ name: 'm', handler: 'nope', dir: DEMO }], opts)).toThrow(/entry 1 \(m\): unknown handler "nope"/)
    expect(() => new Registry([{ name: 'm', handler: 'tabr', dir: '/nonexistent' }], opts)).toThrow(/entry 1 \(m\): the model directory does not exist/)
    const bad = mkdtempSync(join(tmpdir(), 'tabr-bad-model-'))
    try {
      cpSync(DEMO, bad, { recursive: true })
      const m = JSON.parse(readFileSync(join(bad, 'manifest.json'), 'utf8'))
      m.format = 'tabr-model/7'
      writeFileSync(join(bad, 'manifest.json'), JSON.stringify(m))
      const reg = new Registry([{ name: 'bad', handler: 'tabr', dir: bad }], opts)
      const err = await reg.loadAll().catch((e: unknown) => e)
      expect(err).toBeInstanceOf(ConfigError)
      expect((err as Error).message).toMatch(/^MODEL_REGISTRY entry 1 \(bad\): unknown model format "tabr-model\/7"/)
      // The bin prints that one line and exits 1, no stack trace.
      const bin = resolve(__dirname, '../dist/bin/tabr-serve.cjs')
      const run = spawnSync(process.execPath, [bin, 'serve'], {
        env: { ...process.env, AI_API_TOKEN: TOKEN, MODEL_REGISTRY: `bad:tabr:${bad}`, PORT: '0', LOG_LEVEL: 'silent' },
        encoding: 'utf8',
        timeout: 60_000,
      })
      expect(run.status).toBe(1)
      expect(run.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^tabr-serve: MODEL_REGISTRY entry 1 \(bad\): unknown model format/)])
    } finally {
      rmSync(bad, { recursive: true, force: true })
    }
  })

  it('completes an in-flight request during a graceful shutdown', async () => {
    const s = await serve()
    const inflight = fetch(`${s.url}/infer/tabr-demo`, video())
    await new Promise((r) => setTimeout(r, 100))
    const closed = s.shutdown()
    const r = await inflight
    expect(r.status).toBe(200)
    expect((await r.json()).prediction.label).toBeDefined()
    await closed
    await expect(fetch(`${s.url}/healthz`)).rejects.toThrow()
  })
})

describe('lazy loading and request logs', () => {
  it('loads a lazy model on first use; /readyz is 200 at once', async () => {
    const s = await serve({ MODEL_LOADING: 'lazy' })
    try {
      expect((await fetch(`${s.url}/readyz`)).status).toBe(200)
      expect((await (await fetch(`${s.url}/models`, { headers: auth() })).json()).models).toEqual([{ name: 'tabr-demo', loaded: false }])
      expect((await fetch(`${s.url}/infer/tabr-demo`, features())).status).toBe(200)
      expect((await (await fetch(`${s.url}/models`, { headers: auth() })).json()).models[0].task).toBe('binclass')
    } finally {
      await s.shutdown()
    }
  })

  it('logs one line per request with id, model, status and timings, never the token', async () => {
    const { Writable } = await import('node:stream')
    const { LOGGED_HEADERS, makeLogger } = await import('../src/core/observability.js')
    const { start } = await import('../src/server.js')
    const lines: string[] = []
    const sink = new Writable({ write: (chunk, _enc, cb) => void (lines.push(String(chunk)), cb()) })
    const cfg = config({ LOG_LEVEL: 'info' })
    const s = await start(cfg, createService(cfg, { logger: makeLogger('info', sink) }))
    await s.ready
    try {
      await fetch(`${s.url}/infer/tabr-demo`, { ...video(), headers: { ...video().headers, 'X-Request-Id': 'log-test-1' } })
      await fetch(`${s.url}/infer/tabr-demo`, { method: 'POST', headers: { Authorization: `Bearer ${TOKEN}x` } })
    } finally {
      await s.shutdown()
    }
    const all = lines.join('')
    expect(all).not.toContain(TOKEN)
    const entries = lines.map((l) => JSON.parse(l) as Record<string, any>).filter((l) => l.req?.url?.startsWith('/infer'))
    expect(entries).toHaveLength(2)
    const ok = entries.find((e) => e.req.id === 'log-test-1')!
    expect(ok).toMatchObject({ model: 'tabr-demo', res: { statusCode: 200 } })
    // Headers from the allow-list only: never Authorization.
    expect(ok.req.headers).toMatchObject({ 'content-type': 'video/x-matroska' })
    expect(Object.keys(ok.req.headers).filter((h) => !LOGGED_HEADERS.includes(h))).toEqual([])
    for (const k of ['decode', 'face', 'flow', 'poc', 'predict', 'total']) expect(ok.timings_ms[k]).toBeGreaterThanOrEqual(0)
    expect(entries.find((e) => e.res.statusCode === 401)?.code).toBe('unauthorized')
  })
})
