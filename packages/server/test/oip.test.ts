// The Open Inference Protocol routes: first through a standard client nobody here wrote
// (tritonclient, run with uv from PyPI: test/oip_client.py), then as an attacker writes
// requests by hand (header lengths, binary sizes, shapes, datatypes, outputs, sizes), and in
// queue mode with Redis away. Every error is the protocol's `{"error": "…"}`, without paths.
import { execFile } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Running } from '../src/server.js'
import { assertNoLeak, auth, serve, TOKEN } from './helpers.js'

const N = 90
/** Every committed model directory. */
const MODELS_DIR = resolve(__dirname, '../../../models')
const HEADER = 'Inference-Header-Content-Length'

/** A request body: the JSON header, then the binary tensors (when any). */
function body(header: object, binary?: Buffer): { body: Buffer; headers: Record<string, string> } {
  const json = Buffer.from(JSON.stringify(header))
  return binary ? { body: Buffer.concat([json, binary]), headers: { [HEADER]: String(json.length) } } : { body: json, headers: {} }
}

const f32 = (values: number[]) => {
  const b = Buffer.alloc(values.length * 4)
  values.forEach((v, i) => b.writeFloatLE(v, i * 4))
  return b
}

/** A row of the demo model's spread (deterministic). */
const row = (seed: number) => Array.from({ length: N }, (_, i) => Math.sin(seed * 97 + i * 13) * 0.4)

const jsonInput = (rows: number[][], extra: object = {}) => ({ inputs: [{ name: 'features', datatype: 'FP32', shape: [rows.length, N], data: rows.flat() }], ...extra })
const binaryInput = (rows: number[][], extra: object = {}) =>
  body({ inputs: [{ name: 'features', datatype: 'FP32', shape: [rows.length, N], parameters: { binary_data_size: rows.length * N * 4 } }], ...extra }, f32(rows.flat()))

async function send(s: Running, path: string, init: { method?: string; body?: Buffer | string; headers?: Record<string, string>; token?: string | null } = {}) {
  const headers = { ...(init.token === null ? {} : auth(init.token)), ...init.headers }
  const r = await fetch(s.url + path, { method: init.method ?? (init.body === undefined ? 'GET' : 'POST'), body: init.body, headers })
  const bytes = Buffer.from(await r.arrayBuffer())
  const headerLength = r.headers.get(HEADER)
  const text = bytes.subarray(0, headerLength === null ? bytes.length : Number(headerLength)).toString('utf8')
  assertNoLeak(text)
  return { status: r.status, headers: r.headers, json: JSON.parse(text) as Record<string, any>, binary: headerLength === null ? undefined : bytes.subarray(Number(headerLength)) }
}

const post = (s: Running, b: { body: Buffer; headers: Record<string, string> } | object, path = '/v2/models/tabr-demo/infer') =>
  'body' in b && Buffer.isBuffer(b.body) ? send(s, path, { body: b.body, headers: (b as { headers: Record<string, string> }).headers }) : send(s, path, { body: JSON.stringify(b) })

describe('Open Inference Protocol v2', () => {
  let s: Running
  beforeAll(async () => {
    s = await serve({ MAX_BATCH_ROWS: '64' })
  })
  afterAll(async () => {
    await s.shutdown()
  })

  it('works with tritonclient[http]: metadata, readiness, binary and JSON tensors of 1 and 64 rows equal POST /infer within 1e-6, refusals', async () => {
    // Asynchronously: the service answers from this process's event loop.
    const script = resolve(__dirname, 'oip_client.py')
    const r = await new Promise<{ code: number | string | null; stdout: string; stderr: string }>((done) =>
      execFile(
        process.env.UV ?? 'uv',
        ['run', '--quiet', script, s.url.replace('http://', '')],
        { env: { ...process.env, TABR_TOKEN: TOKEN }, timeout: 240_000, maxBuffer: 1 << 22 },
        (err, stdout, stderr) => done({ code: err ? (err.code ?? 'killed') : 0, stdout, stderr }),
      ),
    )
    if (r.code === 'ENOENT') throw new Error('uv is not installed: `make uv` installs it')
    expect(r.code, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { checks: number; rows_compared: number; worst_abs_diff: number }
    expect(out.rows_compared).toBe(128)
    expect(out.worst_abs_diff).toBeLessThanOrEqual(1e-6)
    expect(out.checks).toBeGreaterThan(300)
  }, 300_000)

  it('serves health without a token, everything else with one, in the protocol’s error form', async () => {
    expect((await send(s, '/v2/health/live', { token: null })).json).toEqual({ live: true })
    expect((await send(s, '/v2/health/ready', { token: null })).json).toEqual({ ready: true })
    const no = await send(s, '/v2', { token: null })
    expect(no.status).toBe(401)
    expect(no.headers.get('www-authenticate')).toMatch(/^Bearer/)
    expect(no.json).toEqual({ error: 'a valid bearer token is required' })
    for (const path of ['/v2/models/tabr-demo', '/v2/models/tabr-demo/ready', '/v2/models/tabr-demo/versions/1.0.0']) {
      expect((await send(s, path, { token: 'x'.repeat(48) })).status).toBe(401)
    }
    expect((await send(s, '/v2/models/tabr-demo/infer', { body: JSON.stringify(jsonInput([row(1)])), token: null })).status).toBe(401)
    expect((await send(s, '/v2')).json).toEqual({ name: 'tabr-serve', version: '0.1.0', extensions: ['binary_tensor_data'] })
    expect((await send(s, '/v2/models/tabr-demo/ready')).json).toEqual({ name: 'tabr-demo', ready: true })
    const unknown = await send(s, '/v2/models/nope')
    expect(unknown).toMatchObject({ status: 404, json: { error: 'no model named "nope"' } })
    expect((await send(s, '/v2/models/tabr-demo/versions/2')).status).toBe(404)
    expect((await send(s, '/v2/repository/index')).json).toEqual({ error: 'no route GET /v2/repository/index' })
    const wrong = await send(s, '/v2/models/tabr-demo/infer', { method: 'DELETE' })
    expect(wrong.status).toBe(405)
    expect(wrong.headers.get('allow')).toBe('POST')
    expect(typeof wrong.json.error).toBe('string')
    // Routes match in any case (Express's default), and so does the protocol's error form:
    // /V2/MODELS/nope answered in the service's form before.
    expect(await send(s, '/V2/MODELS/nope')).toMatchObject({ status: 404, json: { error: 'no model named "nope"' } })
    expect((await send(s, '/V2/Repository/Index')).json).toEqual({ error: 'no route GET /V2/Repository/Index' })
    // The rest of the service keeps its own form.
    expect((await send(s, '/models/nope')).json.error.code).toBe('model_not_found')
  })

  it('gives JSON null (missing) the same answer as a binary NaN, and nested rows the same as flat ones', async () => {
    const rows = [row(1), row(2), row(3)]
    rows[1]![5] = Number.NaN
    rows[2]![80] = Number.NaN
    const asJson = { inputs: [{ name: 'features', datatype: 'FP32', shape: [3, N], data: rows.map((r) => r.map((v) => (Number.isNaN(v) ? null : v))) }] }
    const a = await post(s, asJson)
    expect(a.status).toBe(200)
    const b = await post(s, binaryInput(rows, { parameters: { binary_data_output: false } }))
    expect(b.json.outputs).toEqual(a.json.outputs)
    const flat = await post(s, { ...asJson, inputs: [{ ...asJson.inputs[0], data: asJson.inputs[0]!.data.flat() }] })
    expect(flat.json.outputs).toEqual(a.json.outputs)
    expect(a.json.outputs[0]).toMatchObject({ name: 'probabilities', datatype: 'FP32', shape: [3, 2] })
    expect(a.json.outputs[1]).toMatchObject({ name: 'label', datatype: 'BYTES', shape: [3] })
  })

  it('answers binary outputs as Triton defines them: FP32 little-endian, BYTES with 4-byte lengths', async () => {
    const rows = [row(4), row(5)]
    const asJson = await post(s, jsonInput(rows))
    const r = await post(s, jsonInput(rows, { id: 'abc', parameters: { binary_data_output: true }, outputs: [{ name: 'label' }, { name: 'probabilities', parameters: { binary_data: false } }] }))
    expect(r.headers.get('content-type')).toBe('application/octet-stream')
    expect(r.json.id).toBe('abc')
    expect(r.json.outputs.map((o: { name: string }) => o.name)).toEqual(['label', 'probabilities'])
    expect(r.json.outputs[1].data).toEqual(asJson.json.outputs[0].data)
    const labels: string[] = []
    const bin = r.binary!
    expect(bin.length).toBe(r.json.outputs[0].parameters.binary_data_size)
    for (let o = 0; o < bin.length; ) {
      const n = bin.readUInt32LE(o)
      labels.push(bin.subarray(o + 4, o + 4 + n).toString('utf8'))
      o += 4 + n
    }
    expect(labels).toEqual(asJson.json.outputs[1].data)
  })

  it('refuses hostile and malformed requests with 400 and a sentence, before any model work', async () => {
    const one = binaryInput([row(1)])
    const cases: [string, { body: Buffer; headers: Record<string, string> }][] = [
      ['header length not a number', { body: one.body, headers: { [HEADER]: 'abc' } }],
      ['header length negative', { body: one.body, headers: { [HEADER]: '-1' } }],
      ['header length past the body', { body: one.body, headers: { [HEADER]: String(one.body.length + 1) } }],
      ['header length zero', { body: one.body, headers: { [HEADER]: '0' } }],
      ['header length cutting the JSON', { body: one.body, headers: { [HEADER]: '10' } }],
      ['binary shorter than declared', { body: one.body.subarray(0, one.body.length - 1), headers: one.headers }],
      ['binary longer than declared', { body: Buffer.concat([one.body, Buffer.alloc(4)]), headers: one.headers }],
      ['binary without binary_data_size', body(jsonInput([row(1)]), f32([1]))],
      ['binary size not rows × n × 4', body({ inputs: [{ name: 'features', datatype: 'FP32', shape: [1, N], parameters: { binary_data_size: 356 } }] }, f32(row(1).slice(1)))],
      ['data and binary both', body({ inputs: [{ ...jsonInput([row(1)]).inputs[0], parameters: { binary_data_size: 360 } }] }, f32(row(1)))],
      ['not JSON', { body: Buffer.from('{"inputs": ['), headers: {} }],
      ['an array', { body: Buffer.from('[1,2]'), headers: {} }],
      ['empty', { body: Buffer.alloc(0), headers: {} }],
      ['no inputs', body({})],
      ['two inputs', body({ inputs: [jsonInput([row(1)]).inputs[0], jsonInput([row(1)]).inputs[0]] })],
      ['unknown input', body({ inputs: [{ ...jsonInput([row(1)]).inputs[0], name: 'x'.repeat(10_000) }] })],
      ['FP64', body({ inputs: [{ ...jsonInput([row(1)]).inputs[0], datatype: 'FP64' }] })],
      ['BYTES', body({ inputs: [{ ...jsonInput([row(1)]).inputs[0], datatype: 'BYTES' }] })],
      ['shape [90]', body({ inputs: [{ ...jsonInput([row(1)]).inputs[0], shape: [N] }] })],
      ['shape [1, 89]', body({ inputs: [{ ...jsonInput([row(1)]).inputs[0], shape: [1, 89] }] })],
      ['shape [0, 90]', body({ inputs: [{ ...jsonInput([row(1)]).inputs[0], shape: [0, N], data: [] }] })],
      ['shape [-1, 90]', body({ inputs: [{ ...jsonInput([row(1)]).inputs[0], shape: [-1, N] }] })],
      ['shape [1.5, 90]', body({ inputs: [{ ...jsonInput([row(1)]).inputs[0], shape: [1.5, N] }] })],
      ['more rows than MAX_BATCH_ROWS', body(jsonInput(Array.from({ length: 65 }, (_, i) => row(i))))],
      ['data too short', body({ inputs: [{ ...jsonInput([row(1)]).inputs[0], data: row(1).slice(1) }] })],
      ['data too long', body({ inputs: [{ ...jsonInput([row(1)]).inputs[0], data: [...row(1), 0] }] })],
      ['a string in data', body({ inputs: [{ ...jsonInput([row(1)]).inputs[0], data: ['0.1', ...row(1).slice(1)] }] })],
      ['data nested too deep', body({ inputs: [{ ...jsonInput([row(1)]).inputs[0], data: [[row(1)]] }] })],
      ['a row of the wrong width', body({ inputs: [{ ...jsonInput([row(1), row(2)]).inputs[0], data: [row(1).slice(1), [...row(2), 0]] }] })],
      ['unknown output', body(jsonInput([row(1)], { outputs: [{ name: 'logits' }] }))],
      ['an output twice', body(jsonInput([row(1)], { outputs: [{ name: 'label' }, { name: 'label' }] }))],
      ['classification', body(jsonInput([row(1)], { outputs: [{ name: 'label', parameters: { classification: 2 } }] }))],
      ['binary_data not a boolean', body(jsonInput([row(1)], { outputs: [{ name: 'label', parameters: { binary_data: 'yes' } }] }))],
      ['an id of 10 kB', body(jsonInput([row(1)], { id: 'i'.repeat(10_000) }))],
    ]
    for (const [what, b] of cases) {
      const r = await post(s, b)
      expect(r.status, what).toBe(400)
      expect(Object.keys(r.json), what).toEqual(['error'])
      expect(r.json.error.length, what).toBeLessThan(200)
    }
    // Values the model cannot take are the service's 422, as on POST /infer.
    const inf = await post(s, binaryInput([row(1).map(() => Number.POSITIVE_INFINITY)]))
    expect(inf.status).toBe(422)
    expect(inf.json.error).toMatch(/^feature 0 is infinite/)
  })

  it('bounds the body at 8 MiB, also after gzip is undone, and the service stays up', async () => {
    const big = await send(s, '/v2/models/tabr-demo/infer', { body: Buffer.alloc(8 * 1024 * 1024 + 1, 0x20) })
    expect(big.status).toBe(413)
    expect(Object.keys(big.json)).toEqual(['error'])
    const bomb = await send(s, '/v2/models/tabr-demo/infer', { body: gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x20)), headers: { 'Content-Encoding': 'gzip' } })
    expect(bomb.status).toBe(413)
    const ok = await send(s, '/v2/models/tabr-demo/infer', { body: gzipSync(JSON.stringify(jsonInput([row(1)]))), headers: { 'Content-Encoding': 'gzip' } })
    expect(ok.status).toBe(200)
    const unknownModel = await send(s, '/v2/models/nope/infer', { body: JSON.stringify(jsonInput([row(1)])) })
    expect(unknownModel.status).toBe(404)
  })

  it('is counted in /metrics by route and documented in OpenAPI', async () => {
    await post(s, jsonInput([row(1)]))
    const metrics = await (await fetch(`${s.url}/metrics`, { headers: auth() })).text()
    expect(metrics).toMatch(/tabr_http_request_duration_seconds_count\{[^}]*route="\/v2\/models\/:name\/infer"[^}]*status="200"/)
    expect(metrics).toMatch(/tabr_stage_duration_seconds_count\{model="tabr-demo",stage="predict"\}/)
    const api = (await (await fetch(`${s.url}/openapi.json`)).json()) as { paths: Record<string, unknown> }
    for (const p of ['/v2', '/v2/health/live', '/v2/health/ready', '/v2/models/{name}', '/v2/models/{name}/ready', '/v2/models/{name}/infer', '/v2/models/{name}/versions/{version}/infer']) {
      expect(api.paths, p).toHaveProperty([p])
    }
  })
})

describe('Open Inference Protocol v2 in queue mode', () => {
  it('is served by the API itself, and stays up while Redis is away', async () => {
    const s = await serve({ EXECUTION_MODE: 'queue', REDIS_URL: 'redis://127.0.0.1:1' })
    try {
      expect((await fetch(`${s.url}/readyz`)).status).toBe(503)
      expect((await send(s, '/v2/health/ready', { token: null })).status).toBe(200)
      const r = await post(s, jsonInput([row(1), row(2)]))
      expect(r.status).toBe(200)
      expect(r.json.outputs[1].shape).toEqual([2])
    } finally {
      // With Redis away the shutdown still ends (it used to wait for Redis forever).
      const t = performance.now()
      await s.shutdown()
      expect(performance.now() - t).toBeLessThan(10_000)
    }
  }, 30_000)
})

// Values far out of range that are still finite (issue "Hardening, round two", item 4): one
// feature at 1e21 answered 200 with `[null, null]` and the first label, on every model and
// route. Now each answer is finite probabilities summing to 1, or 422 invalid_features.
describe('feature values at the extremes, on every model and every route', () => {
  const FLT_MAX = 3.4028234663852886e38
  const EXTREMES = [1e21, -1e21, FLT_MAX, -FLT_MAX, 1e-310, 1e-40, -1e-45]
  const MODELS = readdirSync(MODELS_DIR)
    .filter((m) => existsSync(join(MODELS_DIR, m, 'manifest.json')))
    .sort()
  let s: Running
  beforeAll(async () => {
    s = await serve({ MODEL_REGISTRY: MODELS.map((m) => `${m}:tabr:${join(MODELS_DIR, m)}`).join(',') })
  })
  afterAll(async () => {
    await s.shutdown()
  })

  type Outcome = { status: number; probabilities?: number[][]; refusal?: string }
  const routes: [string, (model: string, rows: number[][]) => Promise<Outcome>][] = [
    [
      'POST /infer (JSON)',
      async (model, rows) => {
        const r = await send(s, `/infer/${model}`, { body: JSON.stringify({ features: rows[0]!.map((v) => (Number.isNaN(v) ? null : v)) }), headers: { 'Content-Type': 'application/json' } })
        return r.status === 200 ? { status: 200, probabilities: [r.json.prediction.probabilities] } : { status: r.status, refusal: r.json.error?.code }
      },
    ],
    [
      'OIP JSON',
      async (model, rows) => {
        const r = await post(s, { inputs: [{ name: 'features', datatype: 'FP32', shape: [rows.length, N], data: rows.flat().map((v) => (Number.isNaN(v) ? null : v)) }] }, `/v2/models/${model}/infer`)
        return r.status === 200 ? { status: 200, probabilities: rowsOf(r.json.outputs[0].data, r.json.outputs[0].shape[1]) } : { status: r.status, refusal: r.json.error }
      },
    ],
    [
      'OIP binary',
      async (model, rows) => {
        const r = await post(s, binaryInput(rows, { parameters: { binary_data_output: true } }), `/v2/models/${model}/infer`)
        if (r.status !== 200) return { status: r.status, refusal: r.json.error }
        const out = r.json.outputs[0]
        const values = Array.from({ length: out.parameters.binary_data_size / 4 }, (_, i) => r.binary!.readFloatLE(i * 4))
        return { status: 200, probabilities: rowsOf(values, out.shape[1]) }
      },
    ],
  ]
  const rowsOf = (flat: number[], width: number) => Array.from({ length: flat.length / width }, (_, i) => flat.slice(i * width, (i + 1) * width))

  it('answers finite probabilities summing to 1, or 422 invalid_features naming the feature or row', async () => {
    expect(MODELS.length).toBeGreaterThanOrEqual(2)
    const counts = { answered: 0, refused: 0 }
    for (const model of MODELS) {
      for (const x of EXTREMES) {
        // One feature at x (the rest missing, filled by the imputer), and every feature at x.
        const one = Array.from({ length: N }, (_, i) => (i === 7 ? x : Number.NaN))
        const all = new Array<number>(N).fill(x)
        for (const [name, route] of routes) {
          for (const [which, row] of [
            ['one', one],
            ['all', all],
          ] as const) {
            const what = `${model} ${name} ${which} = ${x}`
            const o = await route(model, [row])
            if (o.status === 200) {
              for (const p of o.probabilities!) {
                expect(
                  p.every((v) => Number.isFinite(v) && v >= 0 && v <= 1),
                  `${what}: ${JSON.stringify(p)}`,
                ).toBe(true)
                expect(Math.abs(p.reduce((a, b) => a + b, 0) - 1), what).toBeLessThan(1e-6)
              }
              counts.answered++
            } else {
              expect(o.status, `${what}: ${o.refusal}`).toBe(422)
              if (name === 'POST /infer (JSON)') expect(o.refusal, what).toBe('invalid_features')
              else expect(o.refusal, what).toMatch(which === 'one' ? /feature 7 \(|output overflows/ : /feature \d+ \(|output overflows/)
              counts.refused++
            }
            // Far out on every feature, no model has an answer.
            if (which === 'all' && Math.abs(x) >= 1e21) expect(o.status, what).toBe(422)
          }
        }
      }
      // In a batch, the refusal names the row.
      const r = await post(s, jsonInput([row(1), new Array<number>(N).fill(1e21)]), `/v2/models/${model}/infer`)
      expect([r.status, r.json.error]).toEqual([422, expect.stringMatching(/^row 1: /)])
    }
    expect(counts.answered).toBeGreaterThan(0)
    expect(counts.refused).toBeGreaterThan(0)
  })
})
