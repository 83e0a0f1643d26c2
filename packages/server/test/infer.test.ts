import { spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { extractFeatures } from '@org/tabr-native'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import type { Running } from '../src/server.js'
import { assertNoLeak, auth, call, DEMO, DEMO_V2, requireShared, serve, SHARED } from './helpers.js'

const FACE_CLIPS = resolve(__dirname, '../../../scripts/tabr/face_clips.py')

const clips = inject('clips')

const post = (s: Running, body: BodyInit, headers: Record<string, string> = {}, path = '/infer/tabr-demo') => call(s, path, { method: 'POST', body, headers })

describe('POST /infer/{model}', () => {
  let s: Running
  beforeAll(async () => {
    s = await serve()
  })
  afterAll(async () => {
    const dir = s.service.uploadDir
    // Every temp file is gone, after successes and failures alike.
    await new Promise((r) => setTimeout(r, 100))
    expect(readdirSync(dir)).toEqual([])
    await s.shutdown()
    expect(existsSync(dir)).toBe(false)
  })

  it('calls a mouth micro-movement of the demo distribution micro_movement and a still face none', async () => {
    const label = async (clip: string) => (await post(s, readFileSync(clip), { 'Content-Type': 'video/x-matroska' })).json.prediction.label
    expect(await label(clips.demoMouth)).toBe('micro_movement')
    expect(await label(clips.demoStill)).toBe('none')
  })

  it('answers 200 with a prediction, video summary, timings and features for a multipart field "video"', async () => {
    const form = new FormData()
    form.append('video', new Blob([readFileSync(clips.face)]), 'face.mkv')
    const r = await post(s, form, {}, '/infer/tabr-demo?include=features')
    expect(r.status).toBe(200)
    expect(r.json).toMatchObject({ model: 'tabr-demo', model_version: '1.0.0' })
    expect(r.json.video).toMatchObject({ frames: 90, fps: 30, width: 640, height: 480, face_detect_rate: 1 })
    for (const k of ['decode', 'face', 'flow', 'poc', 'predict', 'total']) expect(r.json.timings_ms[k]).toBeGreaterThanOrEqual(0)
    expect(r.json.features.values).toHaveLength(90)
    expect(r.json.request_id).toBe(r.headers.get('x-request-id'))
  })

  it('adds the per-pair series with ?include=series (with or without the features), and refuses an unknown include before reading the upload', async () => {
    const bytes = readFileSync(clips.face)
    const r = await post(s, bytes, { 'Content-Type': 'video/x-matroska' }, '/infer/tabr-demo?include=series')
    expect(r.status).toBe(200)
    expect(r.json.features).toBeUndefined()
    const series = r.json.series as { channels: string[]; t_s: number[]; values: number[][] }
    expect(series.channels).toHaveLength(18)
    expect(series.t_s).toHaveLength(89)
    expect(series.values).toHaveLength(89)
    expect(series.values.every((row) => row.length === 18)).toBe(true)
    const both = await post(s, bytes, { 'Content-Type': 'video/x-matroska' }, '/infer/tabr-demo?include=features,series')
    expect(both.json.features.values).toHaveLength(90)
    expect(both.json.series.values).toEqual(series.values)
    const mouthMax = Math.max(...series.values.map((row) => row[series.channels.indexOf('mouth.abs')]!))
    expect(mouthMax).toBeCloseTo(both.json.features.values[both.json.features.names.indexOf('mouth.abs.max')], 5)
    const bad = await post(s, bytes, { 'Content-Type': 'video/x-matroska' }, '/infer/tabr-demo?include=everything')
    expect(bad.status).toBe(400)
    expect(bad.json.error.message).toBe('include: features, series, evidence (comma-separated)')
  })

  it('answers a raw video/* or octet-stream body alike and echoes X-Request-Id', async () => {
    const bytes = readFileSync(clips.face)
    const a = await post(s, bytes, { 'Content-Type': 'video/x-matroska', 'X-Request-Id': 'abc-123' })
    const b = await post(s, bytes, { 'Content-Type': 'application/octet-stream' })
    expect(a.status).toBe(200)
    expect(a.json.request_id).toBe('abc-123')
    expect(a.headers.get('x-request-id')).toBe('abc-123')
    expect(b.json.prediction).toEqual(a.json.prediction)
    expect(a.json.features).toBeUndefined()
  })

  it('answers a JSON feature vector in which null means a missing value', async () => {
    const r = await post(s, JSON.stringify({ features: Array.from({ length: 90 }, (_, i) => (i % 7 ? 0.1 : null)) }), { 'Content-Type': 'application/json' })
    expect(r.status).toBe(200)
    expect(r.json.prediction.probabilities).toHaveLength(2)
    expect(r.json.video).toBeUndefined()
  })

  it('answers 400, 404, 413, 415 and 422 with stable codes', async () => {
    const json = { 'Content-Type': 'application/json' }
    expect((await post(s, '{"features": [1, 2', json)).json.error.code).toBe('bad_request')
    expect((await post(s, '{"nope": 1}', json)).status).toBe(400)
    const empty = new FormData()
    empty.append('other', 'x')
    expect((await post(s, empty)).json.error).toMatchObject({ code: 'bad_request' })
    expect((await post(s, '{}', json, '/infer/nope')).status).toBe(404)
    expect((await post(s, '{}', json, '/infer/nope')).json.error.code).toBe('model_not_found')
    const small = await serve({ MAX_UPLOAD_MB: '1' })
    try {
      const big = Buffer.alloc(3 * 1024 * 1024, 1)
      const r413 = await post(small, big, { 'Content-Type': 'video/mp4' })
      expect([r413.status, r413.json.error.code]).toEqual([413, 'payload_too_large'])
      const form = new FormData()
      form.append('video', new Blob([big]), 'big.mp4')
      expect((await post(small, form)).status).toBe(413)
      await new Promise((r) => setTimeout(r, 100))
      expect(readdirSync(small.service.uploadDir)).toEqual([])
    } finally {
      await small.shutdown()
    }
    expect((await post(s, 'hello', { 'Content-Type': 'text/plain' })).json.error.code).toBe('unsupported_media_type')
    expect((await post(s, 'not a video', { 'Content-Type': 'video/mp4' })).json.error.code).toBe('invalid_video')
    expect((await post(s, Buffer.alloc(0), { 'Content-Type': 'video/mp4' })).json.error.code).toBe('invalid_video')
    const short = await post(s, JSON.stringify({ features: [1, 2, 3] }), json)
    expect([short.status, short.json.error.code]).toEqual([422, 'invalid_features'])
    expect((await post(s, readFileSync(clips.noFace), { 'Content-Type': 'video/x-matroska' })).json.error.code).toBe('no_face')
    expect((await post(s, readFileSync(clips.oneFrame), { 'Content-Type': 'video/x-matroska' })).json.error.code).toBe('video_too_short')
  })

  it('gives every error fixture of EXPECTED.md its code through HTTP', async () => {
    const expected = join(SHARED, 'spec/reference/EXPECTED.md')
    requireShared(expected)
    const big = s
    {
      const rows = readFileSync(expected, 'utf8')
        .split('\n')
        .map((l) => /^\| (\S+\/\S+) \| error (\w+) \|/.exec(l))
        .filter((m) => m !== null)
      expect(rows.length).toBeGreaterThan(10)
      for (const [, file, code] of rows) {
        const r = await post(big, readFileSync(join(SHARED, 'fixtures', file!)), { 'Content-Type': 'application/octet-stream' })
        expect([file, r.status, r.json.error?.code]).toEqual([file, 422, code])
      }
    }
  })

  it('lists and describes models, never showing a file path', async () => {
    const list = await (await fetch(`${s.url}/models`, { headers: auth() })).text()
    assertNoLeak(list)
    expect(JSON.parse(list).models[0]).toMatchObject({ name: 'tabr-demo', task: 'binclass', n_features: 90, inputs: ['video', 'features'] })
    const one = await fetch(`${s.url}/models/tabr-demo`, { headers: auth() })
    expect((await one.json()).labels).toEqual(['none', 'micro_movement'])
    expect((await fetch(`${s.url}/models/nope`, { headers: auth() })).status).toBe(404)
  })

  it('exports per-stage duration metrics after an inference', async () => {
    const text = await (await fetch(`${s.url}/metrics`, { headers: auth() })).text()
    expect(text).toMatch(/tabr_stage_duration_seconds_count\{model="tabr-demo",stage="flow"\} [1-9]/)
    expect(text).toMatch(/tabr_http_request_duration_seconds_count\{method="POST",route="\/infer\/:model",status="200"\}/)
    expect(text).toContain('tabr_inflight')
  })
})

describe('server-wide video limits (a cap over each manifest param)', () => {
  it('MAX_VIDEO_SECONDS, MAX_FRAME_PIXELS, MAX_DECODED_MEGAPIXELS and MAX_FRAME_RATE refuse what exceeds them', async () => {
    // The face clip: 90 frames of 640×480 at 30 fps = 3 s, 27.6 megapixels decoded; 8 fps ×
    // 10.5 s allows 84 frames.
    const cases: [Record<string, string>, string][] = [
      [{ MAX_VIDEO_SECONDS: '1' }, 'video_too_long'],
      [{ MAX_FRAME_PIXELS: String(320 * 240) }, 'frame_too_large'],
      [{ MAX_DECODED_MEGAPIXELS: '10' }, 'video_too_large'],
      [{ MAX_FRAME_RATE: '8' }, 'video_too_large'],
    ]
    for (const [env, code] of cases) {
      const s = await serve(env)
      try {
        const r = await post(s, readFileSync(clips.face), { 'Content-Type': 'video/x-matroska' })
        expect([env, r.status, r.json.error?.code]).toEqual([env, 422, code])
      } finally {
        await s.shutdown()
      }
    }
  })

  it('parses them, with their defaults, and refuses a bad one in one line', async () => {
    const { loadConfig, ConfigError } = await import('../src/core/config.js')
    const { TOKEN } = await import('./helpers.js')
    const load = (env: Record<string, string> = {}) => loadConfig({ AI_API_TOKEN: TOKEN, ...env }, { dotenv: false })
    expect(load().limits).toEqual({ maxSeconds: 10.5, maxPixels: 1920 * 1080, maxDecodedPixels: 1_306_000_000, maxFrameRate: 120 })
    expect(load({ MAX_DECODED_MEGAPIXELS: '2.5', MAX_FRAME_PIXELS: '1000', MAX_VIDEO_SECONDS: '3', MAX_FRAME_RATE: '60' }).limits).toEqual({
      maxSeconds: 3,
      maxPixels: 1000,
      maxDecodedPixels: 2_500_000,
      maxFrameRate: 60,
    })
    for (const [k, v] of [
      ['MAX_DECODED_MEGAPIXELS', '0'],
      ['MAX_FRAME_PIXELS', '-1'],
      ['MAX_FRAME_PIXELS', '1.5'],
      ['MAX_VIDEO_SECONDS', 'x'],
      ['MAX_FRAME_RATE', '0.5'],
      ['MAX_FRAME_RATE', '20000'],
    ]) {
      expect(() => load({ [k!]: v! }), `${k}=${v}`).toThrow(ConfigError)
      expect(() => load({ [k!]: v! })).toThrow(new RegExp(`^${k}: `))
    }
  })
})

describe('FLOW: the optical flow implementation', () => {
  it("answers the same prediction with ours (default) and OpenCV's, and features within the conformance tolerance", async () => {
    const answers = []
    for (const env of [{}, { FLOW: 'opencv' }]) {
      const s = await serve(env)
      try {
        const r = await post(s, readFileSync(clips.face), { 'Content-Type': 'video/x-matroska' }, '/infer/tabr-demo?include=features')
        expect(r.status).toBe(200)
        answers.push(r.json)
      } finally {
        await s.shutdown()
      }
    }
    const [ours, opencv] = answers
    expect(ours.prediction.label).toBe(opencv.prediction.label)
    for (const [i, v] of (ours.features.values as number[]).entries()) {
      const ref = opencv.features.values[i] as number
      expect(Math.abs(v - ref), ours.features.names[i]).toBeLessThanOrEqual(Math.max(1e-3, 1e-2 * Math.abs(ref)))
    }
  })

  it('defaults to rust and refuses another value in one line', async () => {
    const { loadConfig, ConfigError } = await import('../src/core/config.js')
    const { TOKEN } = await import('./helpers.js')
    const load = (env: Record<string, string> = {}) => loadConfig({ AI_API_TOKEN: TOKEN, ...env }, { dotenv: false })
    expect(load().flow).toBe('rust')
    expect(load({ FLOW: 'opencv' }).flow).toBe('opencv')
    expect(() => load({ FLOW: 'fast' })).toThrow(ConfigError)
    expect(() => load({ FLOW: 'fast' })).toThrow(/^FLOW: /)
  })
})

describe('a poc-abs v2 model served beside the v1 one', () => {
  const D18 = join(SHARED, 'fixtures/faces/face_lp_d18_man_neutral_480_liveportrait.mp4')
  const OFFICE = join(SHARED, 'fixtures/faces/face_asl_book_woman_office_640x480_intel.mkv')
  let s: Running
  beforeAll(async () => {
    s = await serve({ MODEL_REGISTRY: `tabr-demo:tabr:${DEMO},tabr-demo-v2:tabr:${DEMO_V2}` })
  })
  afterAll(async () => {
    await s.shutdown()
  })

  it('names its feature spec and computes it: the values extractFeatures gives for poc-abs/2', async () => {
    requireShared(D18)
    const info = await call(s, '/models/tabr-demo-v2')
    expect(info.json).toMatchObject({ name: 'tabr-demo-v2', n_features: 90, features: { name: 'poc-abs', version: 2 } })
    expect((await call(s, '/models/tabr-demo')).json.features).toMatchObject({ name: 'poc-abs', version: 1 })
    const r = await post(s, readFileSync(D18), { 'Content-Type': 'video/mp4' }, '/infer/tabr-demo-v2?include=features')
    expect(r.status).toBe(200)
    const v2 = await extractFeatures(D18, { spec: 'poc-abs/2' })
    expect(r.json.features.values).toEqual(Array.from(v2.values))
    const v1 = await post(s, readFileSync(D18), { 'Content-Type': 'video/mp4' }, '/infer/tabr-demo?include=features')
    expect(v1.json.features.values).not.toEqual(r.json.features.values)
  })

  // A model of the core's test-only spec (poc-abs/99: v2's face method, grown regions),
  // registered in the core's spec table alone: the service loads and answers it with no change
  // of its own, once TABR_TEST_SPECS=1.
  it('serves a model of a spec registered in the core alone', async () => {
    requireShared(D18)
    const dir = mkdtempSync(join(tmpdir(), 'tabr-spec99-'))
    const model = join(dir, 'm')
    cpSync(DEMO_V2, model, { recursive: true })
    const manifest = JSON.parse(readFileSync(join(model, 'manifest.json'), 'utf8'))
    manifest.features.version = 99
    writeFileSync(join(model, 'manifest.json'), JSON.stringify(manifest))
    process.env.TABR_TEST_SPECS = '1'
    const t = await serve({ MODEL_REGISTRY: `spec99:tabr:${model}` })
    try {
      expect((await call(t, '/models/spec99')).json.features).toMatchObject({ name: 'poc-abs', version: 99 })
      const r = await post(t, readFileSync(D18), { 'Content-Type': 'video/mp4' }, '/infer/spec99?include=features')
      expect(r.status, JSON.stringify(r.json)).toBe(200)
      const v99 = await extractFeatures(D18, { spec: 'poc-abs/99' as 'poc-abs/2' })
      expect(r.json.features.values).toEqual(Array.from(v99.values))
      await t.shutdown()
      delete process.env.TABR_TEST_SPECS
      // Without it, the same directory is refused at start-up, naming the spec.
      await expect(serve({ MODEL_REGISTRY: `spec99:tabr:${model}` })).rejects.toThrow(/poc-abs\/99 is not implemented/)
    } finally {
      delete process.env.TABR_TEST_SPECS
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('finds the face of the office clip, which v1 misses', async () => {
    requireShared(OFFICE)
    const body = readFileSync(OFFICE)
    const v2 = await post(s, body, { 'Content-Type': 'video/x-matroska' }, '/infer/tabr-demo-v2')
    expect(v2.status).toBe(200)
    expect(v2.json.video.face_detect_rate).toBe(1)
    const v1 = await post(s, body, { 'Content-Type': 'video/x-matroska' })
    expect([v1.status, v1.json.error.code]).toEqual([422, 'no_face'])
  })

  it('answers a portrait phone clip and a selfie close-up with the face found on every try', async () => {
    requireShared(D18)
    const dir = mkdtempSync(join(tmpdir(), 'tabr-phone-clips-'))
    try {
      const make = (name: string, vf: string) => {
        const out = join(dir, name)
        const r = spawnSync('ffmpeg', ['-v', 'error', '-y', '-i', D18, '-t', '2', '-an', '-vf', vf, '-c:v', 'libx264', '-crf', '18', out], { encoding: 'utf8' })
        expect(r.status, r.stderr).toBe(0)
        return out
      }
      // A phone held upright: the sensor stores the portrait picture turned a quarter
      // counter-clockwise, and its track header's display matrix [0 1; -1 0] (an iPhone's)
      // turns it back clockwise. Debian 12's ffmpeg writes only turns, so the matrix is
      // written into the 'tkhd' box here (version 0: 36 bytes, 48 bytes into the box).
      const portrait = make('portrait.mp4', 'crop=360:480:60:0,transpose=cclock')
      const bytes = readFileSync(portrait)
      const at = bytes.indexOf('tkhd') - 4
      expect(bytes[at + 8]).toBe(0)
      ;[0, 1 << 16, 0, -(1 << 16), 0, 0, 0, 0, 1 << 30].forEach((v, i) => bytes.writeInt32BE(v, at + 48 + 4 * i))
      // A selfie answer: the face fills the 512² frame from forehead to chin.
      const selfie = make('selfie.mp4', 'crop=280:280:110:130,scale=512:512')
      for (const [name, body] of [
        ['portrait', bytes],
        ['selfie', readFileSync(selfie)],
      ] as const) {
        const r = await post(s, body, { 'Content-Type': 'video/mp4' }, '/infer/tabr-demo-v2')
        expect(r.status, `${name}: ${JSON.stringify(r.json)}`).toBe(200)
        expect(r.json.video.face_detect_rate, name).toBe(1)
        if (name === 'portrait') expect([r.json.video.width, r.json.video.height]).toEqual([360, 480])
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('tells apart fresh clips made from frames it never saw (scripts/tabr/face_clips.py)', async () => {
    requireShared(D18)
    const dir = mkdtempSync(join(tmpdir(), 'tabr-v2-clips-'))
    try {
      // A seed the demo model's build never used; the held-out frame of every face fixture.
      const made = spawnSync(process.env.UV ?? 'uv', ['run', '--quiet', FACE_CLIPS, dir, '--seed', '4242', '--fixtures', join(SHARED, 'fixtures/faces')], { encoding: 'utf8', timeout: 300_000 })
      if (made.error && (made.error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('uv is not installed: `make uv` installs it')
      expect(made.status, made.stderr).toBe(0)
      const files = readdirSync(dir).sort()
      expect(files).toHaveLength(10)
      let right = 0
      for (const f of files) {
        const r = await post(s, readFileSync(join(dir, f)), { 'Content-Type': 'video/x-matroska' }, '/infer/tabr-demo-v2')
        expect(r.status, f).toBe(200)
        if (r.json.prediction.label === /^(.+)_\d+\.mkv$/.exec(f)?.[1]) right++
      }
      expect(right, `${right} of ${files.length} right`).toBeGreaterThanOrEqual(8)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 400_000)
})
