// loadModel / Model through the public entry, on the committed demo model.
import { mkdtempSync, readFileSync, rmSync, cpSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { extractFeatures, featureNames, loadModel, type Model } from '../index.js'
import { codeOf, demoDir, pkgDir, plainEnv, run } from './helpers.js'

const clips = inject('clips')

describe('loadModel', () => {
  let model: Model
  beforeAll(async () => {
    model = await loadModel(demoDir)
  })

  it('describes the model without paths', () => {
    expect(model.info).toEqual({
      name: 'tabr-demo',
      version: '1.0.0',
      task: 'binclass',
      labels: ['none', 'micro_movement'],
      nFeatures: 90,
      features: { name: 'poc-abs', version: 1 },
      provider: 'cpu',
      evidenceK: 5,
    })
    expect(JSON.stringify(model.info)).not.toContain('/')
  })

  it('gives each prediction its evidence: the nearest training clips, nearest first, and a novelty in 0–1', async () => {
    const p = await model.predict(new Float32Array(90).fill(0.1))
    expect(p.evidence?.neighbours).toHaveLength(5)
    const d = p.evidence!.neighbours.map((n) => n.distance)
    expect(d).toEqual([...d].sort((a, b) => a - b))
    expect(p.evidence!.novelty).toBeGreaterThanOrEqual(0)
    expect(p.evidence!.novelty).toBeLessThanOrEqual(1)
    // A batch gives it only when asked, one per row, equal to the single-row answer.
    const rows = new Float32Array(180).fill(0.1)
    expect((await model.predictBatch(rows, 2)).evidence).toBeUndefined()
    const b = await model.predictBatch(rows, 2, undefined, { evidence: true })
    expect(b.evidence).toHaveLength(2)
    expect(b.evidence![1]!.neighbours.map((n) => n.id)).toEqual(p.evidence!.neighbours.map((n) => n.id))
  })

  it('matches the exporter golden outputs within 1e-5', async () => {
    const golden = JSON.parse(readFileSync(join(demoDir, 'golden.json'), 'utf8')) as {
      rows: (number | null)[][]
      outputs: { label: string; probabilities: number[] }[]
    }
    expect(golden.rows.length).toBeGreaterThanOrEqual(16)
    let worst = 0
    for (const [i, row] of golden.rows.entries()) {
      const p = await model.predict(row)
      expect(p.label).toBe(golden.outputs[i].label)
      p.probabilities!.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - golden.outputs[i].probabilities[j]))))
    }
    expect(worst).toBeLessThanOrEqual(1e-5)
  })

  it('takes a Float32Array with NaN as missing, like null', async () => {
    const row = new Float32Array(90).fill(NaN)
    const a = await model.predict(row)
    const b = await model.predict(Array.from({ length: 90 }, () => null))
    expect(a).toEqual(b)
    expect(a.probabilities!.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 9)
  })

  it('rejects bad vectors with invalid_features', async () => {
    expect(await codeOf(model.predict(new Float32Array(10)))).toBe('invalid_features')
    expect(await codeOf(model.predict(new Float32Array(90).fill(Infinity)))).toBe('invalid_features')
  })

  it('predicts a batch in one call: each row as predict gives it alone; a bad row or shape refuses the batch', async () => {
    const golden = JSON.parse(readFileSync(join(demoDir, 'golden.json'), 'utf8')) as { rows: (number | null)[][] }
    const rows = golden.rows.length
    const flat = Float32Array.from(golden.rows.flat(), (v: number | null) => (v === null ? NaN : v))
    const b = await model.predictBatch(flat, rows)
    expect(b.rows).toBe(rows)
    expect(b.values).toBeUndefined()
    expect(b.labels).toHaveLength(rows)
    expect(b.probabilities).toBeInstanceOf(Float64Array)
    expect(b.probabilities).toHaveLength(rows * model.info.labels.length)
    const d = model.info.labels.length
    let worst = 0
    for (let i = 0; i < rows; i++) {
      const alone = await model.predict(flat.subarray(i * 90, (i + 1) * 90))
      expect(b.labels![i]).toBe(alone.label)
      alone.probabilities!.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - b.probabilities![i * d + j]))))
    }
    expect(worst).toBeLessThanOrEqual(1e-6)
    expect(await codeOf(model.predictBatch(flat, rows + 1))).toBe('invalid_features')
    expect(await codeOf(model.predictBatch(new Float32Array(0), 0))).toBe('invalid_features')
    const inf = flat.slice()
    inf[2 * 90 + 7] = Infinity
    await expect(model.predictBatch(inf, rows)).rejects.toMatchObject({ code: 'invalid_features', message: expect.stringMatching(/^row 2: feature 7/) })
  })

  it('rejects a prediction whose signal was aborted before it ran with aborted', async () => {
    const ac = new AbortController()
    ac.abort()
    expect(await codeOf(model.predict(new Float32Array(90), ac.signal))).toBe('aborted')
    expect(await codeOf(model.predict(new Float32Array(90), new AbortController().signal))).toBe('resolved')
  })

  it('predicts a video in one call, from a path and from bytes: a mouth micro-movement is micro_movement, a still face none', async () => {
    const fromPath = await model.predictVideo(clips.demoMouth)
    expect(fromPath.prediction.label).toBe('micro_movement')
    expect((await model.predictVideo(clips.demoStill)).prediction.label).toBe('none')
    expect(fromPath.meta.faceDetectRate).toBe(1)
    expect(fromPath.features, 'the values stay native unless asked for').toBeUndefined()
    expect(fromPath.series, 'so does the series').toBeUndefined()
    const withSeries = await model.predictVideo(clips.demoMouth, { series: true })
    expect(withSeries.series!.tS).toHaveLength(withSeries.meta.pairs)
    expect(withSeries.prediction).toEqual(fromPath.prediction)
    expect(fromPath.predictMs).toBeGreaterThan(0)
    const fromBytes = await model.predictVideo(readFileSync(clips.demoMouth))
    expect(fromBytes.prediction).toEqual(fromPath.prediction)
    expect(await codeOf(model.predictVideo(clips.noFace))).toBe('no_face')
  })

  it('returns the feature values with a video prediction when asked, equal to extractFeatures with the same spec', async () => {
    const asked = await model.predictVideo(clips.demoMouth, { features: true })
    expect(asked.features).toBeInstanceOf(Float32Array)
    expect(Array.from(asked.features!)).toEqual(Array.from((await extractFeatures(clips.demoMouth, { cascade: join(demoDir, 'face_cascade.xml') })).values))
    expect(featureNames()).toHaveLength(asked.features!.length)
  })
})

describe('loadModel refusals', () => {
  let dir: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tabr-model-test-'))
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('refuses a missing directory and a bad manifest with model_error, naming no path', async () => {
    const missing = join(dir, 'nope')
    const err = (await loadModel(missing).catch((e: unknown) => e)) as Error & { code: string }
    expect(err.code).toBe('model_error')
    expect(err.message).not.toContain(dir)
    const bad = join(dir, 'bad')
    cpSync(demoDir, bad, { recursive: true })
    const m = JSON.parse(readFileSync(join(bad, 'manifest.json'), 'utf8'))
    m.n_features = 12
    writeFileSync(join(bad, 'manifest.json'), JSON.stringify(m))
    const err2 = (await loadModel(bad).catch((e: unknown) => e)) as Error & { code: string }
    expect(err2.code).toBe('model_error')
    expect(err2.message).toMatch(/n_features is 12/)
  })

  it('takes an AbortSignal: aborted before, it never loads; aborted during, it rejects when done', async () => {
    expect(await codeOf(loadModel(demoDir, {}, AbortSignal.abort()))).toBe('aborted')
    const during = new AbortController()
    const loading = loadModel(demoDir, {}, during.signal)
    during.abort()
    // Still queued, napi cancels the task itself (AbortError); already running, it ends `aborted`.
    const err = (await loading.catch((e: unknown) => e)) as Error & { code?: string }
    expect(err.code === 'aborted' || err.name === 'AbortError', String(err)).toBe(true)
    // An unaborted signal changes nothing.
    expect((await loadModel(demoDir, {}, new AbortController().signal)).info.name).toBe('tabr-demo')
  })

  it('refuses cuda on a CPU-only runtime and falls back with auto', async () => {
    expect(await codeOf(loadModel(demoDir, { provider: 'cuda' }))).toBe('model_error')
    expect((await loadModel(demoDir, { provider: 'auto' })).info.provider).toBe('cpu')
  })
})

describe('ORT_PROVIDER', () => {
  // A fresh process per value (the variable is read by loadModel). Prints [no option,
  // provider: 'cpu'], each the provider (with its warnings) or the code.
  const loadBoth = (provider: string) =>
    run(
      process.execPath,
      [
        '-e',
        `const { loadModel } = require('./index.js')
         const attempt = (o) => loadModel(process.argv[1], o).then((m) => [m.info.provider, ...m.warnings].join(' | '), (e) => e.code)
         Promise.all([attempt(), attempt({ provider: 'cpu' })]).then((r) => console.log(JSON.stringify(r)))`,
        demoDir,
      ],
      { cwd: pkgDir, env: plainEnv({ ORT_PROVIDER: provider }) },
    )

  it('asks for CUDA when set to cuda, and the option overrides it', () => {
    const r = loadBoth('cuda')
    expect(r.status).toBe(0)
    expect(JSON.parse(r.stdout)).toEqual(['model_error', 'cpu'])
  })

  it('falls back to the CPU with a warning when set to auto', () => {
    const r = loadBoth('auto')
    expect(r.status).toBe(0)
    const [auto, cpu] = JSON.parse(r.stdout) as string[]
    expect(auto).toBe(
      'cpu | provider auto: the loaded ONNX Runtime is a CPU build (libonnxruntime_providers_cuda.so is not beside it; ' +
        'the @org/tabr-native-linux-x64-gpu package brings a CUDA build); running on the CPU',
    )
    expect(cpu).toBe('cpu')
    // The library prints nothing: the caller logs the warning.
    expect(r.stderr).not.toMatch(/CUDA/)
  })

  it('rejects an unknown value with model_error', () => {
    const r = loadBoth('tpu')
    expect(JSON.parse(r.stdout)).toEqual(['model_error', 'cpu'])
  })
})
