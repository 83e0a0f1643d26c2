// Hostile input over real HTTP against the real service, run as a child process of the built
// bin (spawnService), so that a crash shows as an exit, the whole log stream (stdout and
// stderr, native libraries included) can be read, and the upload folder can be inspected.
// Every case asserts the status and stable code, that the body leaks no path or stack, that
// the process still answers /healthz, and that the upload folder is empty afterwards. The
// media is generated with ffmpeg at test time (playlists that point at files the test made,
// a resolution change, a high-fps black clip); nothing comes from outside.
import { execFileSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request, type IncomingHttpHeaders } from 'node:http'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { pidNamespace } from '../src/core/tempdirs.js'
import { assertNoLeak, auth, spawnService, TOKEN, type ServiceProcess } from './helpers.js'

const clips = inject('clips')
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

interface Answer {
  status: number
  headers: IncomingHttpHeaders
  text: string
  json: Record<string, any> | undefined
}

/**
 * One request with node:http (no URL normalisation, any method, header or path). `body` is
 * sent whole; `feed` instead streams a chunked body, one chunk per call every `everyMs`
 * (null ends it), until the answer comes. The request is given up after `giveUpMs`.
 */
function send(
  url: string,
  path: string,
  opts: { method?: string; headers?: Record<string, string>; body?: Buffer | string; feed?: () => Buffer | null; everyMs?: number; giveUpMs?: number } = {},
): Promise<Answer> {
  const { method = 'GET', headers = {}, body, feed, everyMs = 0, giveUpMs = 20_000 } = opts
  return new Promise((resolve, reject) => {
    let answered = false
    const req = request(url + path, { method, headers: feed ? { ...headers, 'Transfer-Encoding': 'chunked' } : headers })
    const giveUp = setTimeout(() => {
      req.destroy()
      reject(new Error(`no answer to ${method} ${path} within ${giveUpMs} ms`))
    }, giveUpMs)
    req.on('response', (res) => {
      answered = true
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (text += d))
      res.on('end', () => {
        clearTimeout(giveUp)
        req.destroy()
        let json: Record<string, any> | undefined
        try {
          json = JSON.parse(text) as Record<string, any>
        } catch {
          json = undefined
        }
        resolve({ status: res.statusCode!, headers: res.headers, text, json })
      })
      res.on('error', (e) => (clearTimeout(giveUp), reject(e)))
    })
    req.on('error', (e) => {
      if (answered) return
      clearTimeout(giveUp)
      reject(new Error(`${method} ${path}: ${e.message} before any answer`))
    })
    if (!feed) return void req.end(body)
    const pump = () => {
      if (answered || req.destroyed) return
      const chunk = feed()
      if (chunk === null) return void req.end()
      if (req.write(chunk)) setTimeout(pump, everyMs)
      else req.once('drain', () => setTimeout(pump, everyMs))
    }
    pump()
  })
}

/** A multipart/form-data body built byte by byte (files have a filename). */
function multipart(parts: { name: string; filename?: string; data: Buffer | string }[], { end = true } = {}) {
  const boundary = `----hostile${randomUUID()}`
  const chunks: Buffer[] = []
  for (const p of parts) {
    const file = p.filename ? `; filename="${p.filename}"\r\nContent-Type: application/octet-stream` : ''
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"${file}\r\n\r\n`), Buffer.from(p.data), Buffer.from('\r\n'))
  }
  if (end) chunks.push(Buffer.from(`--${boundary}--\r\n`))
  return { body: Buffer.concat(chunks), type: `multipart/form-data; boundary=${boundary}` }
}

/** Waits (up to 5 s: refused bodies are dropped for LINGER_MS first) for the folder to be empty. */
async function emptied(dir: string) {
  const end = Date.now() + 5000
  while (readdirSync(dir).length) {
    if (Date.now() > end) throw new Error(`left in the upload folder: ${readdirSync(dir).join(', ')}`)
    await sleep(50)
  }
}

/** The checks every case ends with. */
async function expectRefused(s: ServiceProcess, r: Answer, status: number, code: string) {
  assertNoLeak(r.text)
  expect([r.status, r.json?.error?.code], r.text).toEqual([status, code])
  expect(r.headers['content-type']).toMatch(/^application\/json/)
  expect(r.json!.error.request_id).toBe(r.headers['x-request-id'])
  await stillServing(s)
}

async function stillServing(s: ServiceProcess) {
  expect(s.alive(), s.output.slice(-5).join('\n')).toBe(true)
  expect((await fetch(`${s.url}/healthz`)).status).toBe(200)
  await emptied(s.uploadDir())
}

/** Log lines that are not JSON, or that are at level error (50) or above. */
function badLines(output: string[]) {
  const notJson: string[] = []
  const errors: string[] = []
  for (const l of output) {
    try {
      const rec = JSON.parse(l) as { level?: number }
      if (typeof rec !== 'object' || rec === null || typeof rec.level !== 'number') notJson.push(l)
      else if (rec.level >= 50) errors.push(l)
    } catch {
      notJson.push(l)
    }
  }
  return { notJson, errors }
}

const video = readFileSync(clips.face)
const smallVideo = video.subarray(0, 16 * 1024)
const json = { ...auth(), 'Content-Type': 'application/json' }
const features = JSON.stringify({ features: new Array(90).fill(0.1) })

describe('hostile requests', () => {
  let s: ServiceProcess
  let stale: string
  beforeAll(async () => {
    // A service killed earlier left its upload folder (with an upload) behind.
    const tmp = mkdtempSync(join(tmpdir(), 'tabr-hostile-'))
    const dead = execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' })
    stale = join(tmp, `tabr-serve-${pidNamespace()}-${dead}-stale`)
    mkdirSync(stale)
    writeFileSync(join(stale, 'upload'), 'a copy of an upload')
    s = await spawnService({ REQUEST_TIMEOUT_S: '2', MAX_UPLOAD_MB: '1' }, { tmp })
  })
  afterAll(() => s?.stop())

  it('removes the upload folder of a service that no longer runs, at start-up', () => {
    expect(readdirSync(s.tmp)).not.toContain(stale.split('/').pop())
  })

  describe('multipart bodies that made multer clean up first (the unlink(undefined) crash)', () => {
    const cases: [string, { name: string; filename?: string; data: Buffer | string }[]][] = [
      ['too many fields', [{ name: 'video', filename: 'a.mp4', data: smallVideo }, ...Array.from({ length: 9 }, (_, i) => ({ name: `f${i}`, data: 'x' }))]],
      [
        'a second file',
        [
          { name: 'video', filename: 'a.mp4', data: smallVideo },
          { name: 'video', filename: 'b.mp4', data: smallVideo },
        ],
      ],
      [
        'a field over the size limit',
        [
          { name: 'video', filename: 'a.mp4', data: smallVideo },
          { name: 'note', data: 'x'.repeat(65 * 1024) },
        ],
      ],
      [
        'a file under another field name',
        [
          { name: 'video', filename: 'a.mp4', data: smallVideo },
          { name: 'other', filename: 'b.mp4', data: smallVideo },
        ],
      ],
      [
        'a file under another field name first',
        [
          { name: 'other', filename: 'b.mp4', data: smallVideo },
          { name: 'video', filename: 'a.mp4', data: smallVideo },
        ],
      ],
    ]
    it.each(cases)('%s: 400 bad_request, and the process lives on', async (_name, parts) => {
      const m = multipart(parts)
      const r = await send(s.url, '/infer/tabr-demo', { method: 'POST', headers: { ...auth(), 'Content-Type': m.type }, body: m.body })
      await expectRefused(s, r, 400, 'bad_request')
      // And it still serves a real request.
      const ok = await send(s.url, '/infer/tabr-demo', { method: 'POST', headers: json, body: features })
      expect(ok.status).toBe(200)
    })
  })

  describe('malformed URLs and bodies', () => {
    it.each([
      ['GET', '/models/%'],
      ['GET', '/models/%E0%A4%A'],
      ['POST', '/infer/%E0%A4%A'],
      ['GET', '/models/%zz'],
    ])('%s %s: 400 bad_request, with a token or without', async (method, path) => {
      for (const headers of [auth(), {}]) {
        const r = await send(s.url, path, { method, headers: { ...headers, 'Content-Type': 'application/json' }, body: method === 'POST' ? features : undefined })
        await expectRefused(s, r, 400, 'bad_request')
      }
    })

    it('a JSON body in another charset: 415 unsupported_media_type (UTF-16 and UTF-32 too: they were 400)', async () => {
      for (const charset of ['latin1', 'utf-16', 'UTF-16LE', 'utf-32', '"utf-16"']) {
        const r = await send(s.url, '/infer/tabr-demo', { method: 'POST', headers: { ...json, 'Content-Type': `application/json; charset=${charset}` }, body: features })
        await expectRefused(s, r, 415, 'unsupported_media_type')
      }
      const ok = await send(s.url, '/infer/tabr-demo', { method: 'POST', headers: { ...json, 'Content-Type': 'application/json; charset="UTF-8"' }, body: features })
      expect(ok.status, ok.text).toBe(200)
    })

    it('bad Content-Encoding: garbage gzip 400, unknown 415, a gzip bomb 413, on a video 415', async () => {
      const post = (headers: Record<string, string>, body: Buffer | string) => send(s.url, '/infer/tabr-demo', { method: 'POST', headers, body })
      await expectRefused(s, await post({ ...json, 'Content-Encoding': 'gzip' }, Buffer.from('this is not gzip at all')), 400, 'bad_request')
      await expectRefused(s, await post({ ...json, 'Content-Encoding': 'snappy' }, features), 415, 'unsupported_media_type')
      const bomb = gzipSync(Buffer.concat([Buffer.from('{"features": ['), Buffer.alloc(8 * 1024 * 1024, ' '), Buffer.from(']}')]))
      expect(bomb.length).toBeLessThan(64 * 1024)
      await expectRefused(s, await post({ ...json, 'Content-Encoding': 'gzip' }, bomb), 413, 'payload_too_large')
      await expectRefused(s, await post({ ...auth(), 'Content-Type': 'video/mp4', 'Content-Encoding': 'gzip' }, gzipSync(video)), 415, 'unsupported_media_type')
      // gzip JSON itself is fine.
      expect((await post({ ...json, 'Content-Encoding': 'gzip' }, gzipSync(features))).status).toBe(200)
    })
  })

  describe('bodies over the size and time limits', () => {
    it('a chunked raw upload over MAX_UPLOAD_MB: the client reads 413 payload_too_large', async () => {
      let sent = 0
      const r = await send(s.url, '/infer/tabr-demo', {
        method: 'POST',
        headers: { ...auth(), 'Content-Type': 'video/mp4' },
        feed: () => ((sent += 64 * 1024) > 64 * 1024 * 1024 ? null : Buffer.alloc(64 * 1024, 7)),
      })
      await expectRefused(s, r, 413, 'payload_too_large')
    })

    it('a chunked multipart upload over MAX_UPLOAD_MB: 413, and its partial file is removed', async () => {
      const head = multipart([{ name: 'video', filename: 'a.mp4', data: '' }], { end: false })
      let first = true
      const r = await send(s.url, '/infer/tabr-demo', {
        method: 'POST',
        headers: { ...auth(), 'Content-Type': head.type },
        feed: () => (first ? ((first = false), head.body.subarray(0, head.body.length - 2)) : Buffer.alloc(64 * 1024, 7)),
      })
      await expectRefused(s, r, 413, 'payload_too_large')
    })

    it('a declared Content-Length over the limit is refused before the body is read', async () => {
      const r = await send(s.url, '/infer/tabr-demo', {
        method: 'POST',
        headers: { ...auth(), 'Content-Type': 'video/mp4', 'Content-Length': String(5 * 1024 * 1024) },
        feed: undefined,
        body: Buffer.alloc(1024),
      })
      await expectRefused(s, r, 413, 'payload_too_large')
    })

    // A never-ending body, one byte at a time: the test gives up after 20 s, the service must
    // answer within REQUEST_TIMEOUT_S (2 s here) and remove what it had written.
    it.each([
      ['raw', 'video/mp4', undefined],
      ['multipart', undefined, multipart([{ name: 'video', filename: 'a.mp4', data: smallVideo }], { end: false })],
      ['JSON', 'application/json', undefined],
    ] as const)('a never-ending slow %s body: 408 request_timeout', async (_kind, type, form) => {
      let first = true
      const r = await send(s.url, '/infer/tabr-demo', {
        method: 'POST',
        headers: { ...auth(), 'Content-Type': form?.type ?? type! },
        everyMs: 100,
        feed: () => {
          if (!first) return Buffer.from(' ')
          first = false
          return form ? form.body.subarray(0, form.body.length - 2) : type === 'application/json' ? Buffer.from('{"features": [') : smallVideo
        },
      })
      await expectRefused(s, r, 408, 'request_timeout')
    })
  })

  // Headers sent a byte every 200 ms and never finished: the connection is answered 408 and
  // closed after REQUEST_TIMEOUT_S (2 s here), not Node's 60 s and more (69–80 s before).
  it('headers that never finish are cut at REQUEST_TIMEOUT_S', async () => {
    const { hostname: host, port } = new URL(s.url)
    const t = Date.now()
    const reply = await new Promise<string>((resolve, reject) => {
      const sock = connect(Number(port), host)
      let got = ''
      sock.on('error', reject)
      sock.on('data', (d) => (got += d.toString('latin1')))
      sock.on('close', () => {
        clearInterval(drip)
        resolve(got)
      })
      sock.write(`POST /infer/tabr-demo HTTP/1.1\r\nHost: ${host}\r\nX-Slow: `)
      const drip = setInterval(() => sock.writable && sock.write('a'), 200)
      setTimeout(() => sock.destroy(), 30_000)
    })
    const took = (Date.now() - t) / 1000
    expect(reply).toMatch(/^HTTP\/1\.1 408/)
    expect(took).toBeGreaterThanOrEqual(1.5)
    expect(took).toBeLessThan(10)
    await stillServing(s)
  })

  describe('methods', () => {
    it.each([
      ['DELETE', '/models', 'GET, HEAD'],
      ['POST', '/models/tabr-demo', 'GET, HEAD'],
      ['GET', '/infer/tabr-demo', 'POST'],
      ['PUT', '/infer/tabr-demo', 'POST'],
      ['POST', '/healthz', 'GET, HEAD'],
      ['DELETE', '/openapi.json', 'GET, HEAD'],
      // The browser client's files (they answered 404 to other methods).
      ['PUT', '/app/', 'GET, HEAD'],
      ['DELETE', '/app/index.html', 'GET, HEAD'],
      ['POST', '/app/assets/anything.js', 'GET, HEAD'],
    ])('%s %s: 405 method_not_allowed with Allow: %s', async (method, path, allow) => {
      for (const headers of [auth(), {}]) {
        const r = await send(s.url, path, { method, headers })
        expect(r.headers.allow).toBe(allow)
        await expectRefused(s, r, 405, 'method_not_allowed')
      }
    })

    it('OPTIONS names the methods; an undeclared path stays 404', async () => {
      const o = await send(s.url, '/infer/tabr-demo', { method: 'OPTIONS' })
      expect([o.status, o.headers.allow]).toEqual([204, 'POST'])
      await expectRefused(s, await send(s.url, '/nope', { method: 'DELETE', headers: auth() }), 404, 'not_found')
      const app = await send(s.url, '/app/index.html', { method: 'OPTIONS' })
      expect([app.status, app.headers.allow]).toEqual([204, 'GET, HEAD'])
    })
  })

  describe('the token', () => {
    it('is taken from the Authorization header only', async () => {
      const m = multipart([
        { name: 'access_token', data: TOKEN },
        { name: 'video', filename: 'a.mp4', data: smallVideo },
      ])
      const inQuery = `access_token=${encodeURIComponent(TOKEN)}`
      await expectRefused(s, await send(s.url, `/models?${inQuery}`), 400, 'bad_request')
      await expectRefused(s, await send(s.url, `/infer/tabr-demo?${inQuery}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: features }), 400, 'bad_request')
      // In the query beside a valid header: refused too (it was written to logs and URLs).
      await expectRefused(s, await send(s.url, `/models?${inQuery}`, { headers: auth() }), 400, 'bad_request')
      await expectRefused(
        s,
        await send(s.url, '/infer/tabr-demo', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ access_token: TOKEN, features: new Array(90).fill(0) }) }),
        401,
        'unauthorized',
      )
      await expectRefused(s, await send(s.url, '/infer/tabr-demo', { method: 'POST', headers: { 'Content-Type': m.type }, body: m.body }), 401, 'unauthorized')
      expect((await send(s.url, '/models', { headers: { ...auth(), 'User-Agent': 'hostile-test', Cookie: `session=${TOKEN}` } })).status).toBe(200)
    })

    // Last: it reads the log of every request above.
    it('never reaches the log, which is JSON only and holds no error-level record', async () => {
      await sleep(200)
      const log = s.output.join('\n')
      expect(log).not.toContain(TOKEN)
      expect(log).not.toContain(encodeURIComponent(TOKEN))
      expect(log).not.toContain('access_token')
      const { notJson, errors } = badLines(s.output)
      expect(notJson).toEqual([])
      expect(errors).toEqual([])
      // Requests are logged by path (no query) with allow-listed headers only.
      const logged = s.output.map((l) => JSON.parse(l) as { req?: { url: string; headers: Record<string, string> } }).filter((l) => l.req)
      expect(logged.length).toBeGreaterThan(30)
      for (const l of logged) {
        expect(l.req!.url).not.toContain('?')
        expect(Object.keys(l.req!.headers)).not.toContain('authorization')
        expect(Object.keys(l.req!.headers)).not.toContain('cookie')
      }
      expect(logged.some((l) => l.req!.headers['user-agent'] === 'hostile-test')).toBe(true)
    })
  })
})

// Media that asks the decoder for more than one clip's honest work. These depend on the
// native core (FFmpeg-based demuxing and its limits).
describe('hostile media', () => {
  let s: ServiceProcess
  let dir: string
  const ffmpeg = (...args: string[]) => execFileSync('ffmpeg', ['-v', 'error', '-y', ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
  const x264 = ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p']
  const post = (body: Buffer | string, type = 'application/octet-stream') => send(s.url, '/infer/tabr-demo', { method: 'POST', headers: { ...auth(), 'Content-Type': type }, body, giveUpMs: 60_000 })

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tabr-hostile-media-'))
    // The face clip as MPEG-TS: a servable file on the server's disk for playlists to name.
    ffmpeg('-i', clips.face, ...x264, '-f', 'mpegts', join(dir, 'face.ts'))
    // A resolution change: 480×480, then 1920×1088 (above MAX_FRAME_PIXELS below).
    ffmpeg('-i', clips.face, '-vf', 'scale=480:480', ...x264, '-f', 'mpegts', join(dir, 'small.ts'))
    ffmpeg('-i', clips.face, '-vf', 'scale=1920:1088', '-frames:v', '30', ...x264, '-f', 'mpegts', join(dir, 'large.ts'))
    writeFileSync(join(dir, 'switch.ts'), Buffer.concat([readFileSync(join(dir, 'small.ts')), readFileSync(join(dir, 'large.ts'))]))
    // 1000 black frames at 1000 fps: a few KB, 307 megapixels to decode.
    ffmpeg('-f', 'lavfi', '-i', 'color=black:s=640x480:r=1000', '-t', '1', ...x264, join(dir, 'black1000.mp4'))
    // DASH: ffmpeg's own manifest and segments, the manifest rewritten to absolute paths.
    mkdirSync(join(dir, 'dash'))
    ffmpeg('-i', clips.face, ...x264, '-f', 'dash', join(dir, 'dash', 'x.mpd'))
    s = await spawnService({ MAX_FRAME_PIXELS: '400000', MAX_DECODED_MEGAPIXELS: '100', REQUEST_TIMEOUT_S: '60' })
  })
  afterAll(async () => {
    await s?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('serves the honest clips the hostile ones are made from (control)', async () => {
    for (const f of [clips.face, join(dir, 'face.ts'), join(dir, 'small.ts')]) {
      const r = await post(readFileSync(f))
      expect([f, r.status], r.text).toEqual([f, 200])
    }
    await stillServing(s)
  })

  // A playlist naming a server file that exists and one naming a file that does not: the same
  // refusal, word for word, so no answer tells whether a path exists.
  const playlists: [string, (target: string) => string][] = [
    ['HLS', (t) => `#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:3.0,\n${t}\n#EXT-X-ENDLIST\n`],
    ['ffconcat', (t) => `ffconcat version 1.0\nfile ${t}\n`],
    ['ffconcat (file: URL)', (t) => `ffconcat version 1.0\nfile file:${t}\n`],
  ]
  it.each(playlists)('%s playlist: 422 invalid_video, the same whether the file exists or not', async (_kind, make) => {
    const there = await post(make(join(dir, 'face.ts')), 'video/mp4')
    const missing = await post(make(join(dir, 'missing.ts')), 'video/mp4')
    await expectRefused(s, there, 422, 'invalid_video')
    await expectRefused(s, missing, 422, 'invalid_video')
    expect(there.json!.error.message).toBe(missing.json!.error.message)
  })

  it('DASH manifest: 422 invalid_video, the same whether its segments exist or not', async () => {
    const mpd = readFileSync(join(dir, 'dash', 'x.mpd'), 'utf8')
    const absolute = (base: string) => mpd.replace(/(initialization|media)="/g, `$1="${base}/`)
    const there = await post(absolute(join(dir, 'dash')))
    const missing = await post(absolute(join(dir, 'nowhere')))
    await expectRefused(s, there, 422, 'invalid_video')
    await expectRefused(s, missing, 422, 'invalid_video')
    expect(there.json!.error.message).toBe(missing.json!.error.message)
    // As a multipart upload named like a video, too.
    const m = multipart([{ name: 'video', filename: 'clip.mp4', data: absolute(join(dir, 'dash')) }])
    await expectRefused(s, await send(s.url, '/infer/tabr-demo', { method: 'POST', headers: { ...auth(), 'Content-Type': m.type }, body: m.body, giveUpMs: 60_000 }), 422, 'invalid_video')
  })

  it('a resolution change above MAX_FRAME_PIXELS mid-stream: 422', async () => {
    const r = await post(readFileSync(join(dir, 'switch.ts')), 'video/mp2t')
    assertNoLeak(r.text)
    expect(r.status, r.text).toBe(422)
    expect(['frame_too_large', 'invalid_video']).toContain(r.json?.error?.code)
    await stillServing(s)
  })

  it('a tiny 1000-fps black clip over MAX_DECODED_MEGAPIXELS: 422 video_too_large', async () => {
    const bytes = readFileSync(join(dir, 'black1000.mp4'))
    expect(bytes.length).toBeLessThan(200 * 1024)
    await expectRefused(s, await post(bytes, 'video/mp4'), 422, 'video_too_large')
  })

  // Uploads under 2 MB that cost gigabytes or tens of seconds before (issue "Hardening, round
  // two"): the service's peak RSS over the request (VmHWM, reset through clear_refs) must stay
  // within 64 MB of its resident size before it, and the refusal come quickly.
  describe('what an upload may cost', () => {
    const hostileMedia = resolve(__dirname, '../../../tests/media/hostile_media.py')
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${s.proc.pid}/status`, 'utf8'))?.[1])
    // The set the core's test and `make bench --hostile` use, made by hostile_media.py cost-set
    // (before: 16 tracks 2.6 GB and 11 s; stsz 1.9 GB and 5 s; trun 5.1 GB and 21 s; 1000 fps
    // decoded to the end, 15–30 s).
    // Made while the tests are collected: it.each needs the list.
    const costDir = mkdtempSync(join(tmpdir(), 'tabr-hostile-cost-'))
    afterAll(() => rmSync(costDir, { recursive: true, force: true }))
    const made: { what: string; file: string; code: string }[] = JSON.parse(execFileSync('python3', [hostileMedia, 'cost-set', costDir, '--tracks', '16', '--fast', 'mp4'], { encoding: 'utf8' }))
    const cases = made.map((c) => [c.what, c.file, c.code] as const)
    it.each(cases)('%s: refused, within 64 MB and seconds', async (_what, file, code) => {
      const bytes = readFileSync(file)
      expect(bytes.length).toBeLessThan(2_000_000)
      writeFileSync(`/proc/${s.proc.pid}/clear_refs`, '5')
      const before = kb('VmRSS')
      const t = Date.now()
      const r = await post(bytes, 'video/mp4')
      const took = (Date.now() - t) / 1000
      const grew = (kb('VmHWM') - before) / 1024
      await expectRefused(s, r, 422, code)
      expect(grew, `the peak RSS grew ${grew.toFixed(0)} MB`).toBeLessThanOrEqual(64)
      expect(took).toBeLessThan(5)
    })
  })

  it('a corrupt stream: whatever the answer, the log stays JSON (FFmpeg never writes raw lines)', async () => {
    const good = readFileSync(join(dir, 'face.ts'))
    const corrupt = Buffer.from(good)
    for (let i = Math.floor(corrupt.length / 3); i < corrupt.length / 2; i += 997) corrupt[i] = corrupt[i]! ^ 0xff
    const r = await post(corrupt, 'video/mp2t')
    assertNoLeak(r.text)
    expect([200, 422]).toContain(r.status)
    await stillServing(s)
    await sleep(200)
    const { notJson, errors } = badLines(s.output)
    expect(notJson).toEqual([])
    expect(errors).toEqual([])
  })
})
