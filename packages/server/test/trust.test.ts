// How far an answer can be trusted, over real HTTP with the real addon and the committed demo
// models: ?include=evidence (the training clips the prediction drew on, and its novelty),
// a clear 400 for a model exported without evidence outputs, `video.quality` with its
// warnings on clips made at test time, and a manifest that refuses a warning as
// 422 poor_recording.
import { execFileSync } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import type { Running } from '../src/server.js'
import { call, DEMO, DEMO_V2, requireShared, serve, SHARED } from './helpers.js'

const clips = inject('clips')
const D18 = join(SHARED, 'fixtures/faces/face_lp_d18_man_neutral_480_liveportrait.mp4')

const post = (s: Running, path: string, body: BodyInit, type = 'video/mp4') => call(s, path, { method: 'POST', body, headers: { 'Content-Type': type } })

describe('evidence and recording quality', () => {
  let s: Running
  let dir: string
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tabr-trust-'))
    // A model exported before evidence: the demo without its evidence outputs' manifest entry.
    cpSync(DEMO, join(dir, 'old'), { recursive: true })
    const old = JSON.parse(readFileSync(join(dir, 'old/manifest.json'), 'utf8'))
    delete old.onnx.evidence
    delete old.files.candidates
    delete old.files.golden
    writeFileSync(join(dir, 'old/manifest.json'), JSON.stringify(old))
    // A strict v2 model: a dark recording is refused.
    cpSync(DEMO_V2, join(dir, 'strict'), { recursive: true })
    const strict = JSON.parse(readFileSync(join(dir, 'strict/manifest.json'), 'utf8'))
    strict.quality = { refuse: ['too_dark'] }
    writeFileSync(join(dir, 'strict/manifest.json'), JSON.stringify(strict))
    requireShared(D18)
    execFileSync('ffmpeg', ['-v', 'error', '-y', '-i', D18, '-t', '3', '-vf', 'lutyuv=y=val*0.2', '-c:v', 'libx264', '-preset', 'ultrafast', join(dir, 'dark.mp4')])
    s = await serve({ MODEL_REGISTRY: `tabr-demo:tabr:${DEMO},tabr-demo-v2:tabr:${DEMO_V2},old:tabr:${join(dir, 'old')},strict:tabr:${join(dir, 'strict')}` })
  })
  afterAll(async () => {
    await s?.shutdown()
    rmSync(dir, { recursive: true, force: true })
  })

  it('?include=evidence gives the five nearest training clips, nearest first, and a novelty', async () => {
    const candidates = JSON.parse(readFileSync(join(DEMO, 'candidates.json'), 'utf8')) as { ids: string[] }
    const r = await post(s, '/infer/tabr-demo?include=evidence', readFileSync(clips.demoMouth), 'video/x-matroska')
    expect(r.status, JSON.stringify(r.json)).toBe(200)
    const e = r.json.evidence as { neighbours: { id: string; label: string; weight: number; distance: number }[]; novelty: number }
    expect(e.neighbours).toHaveLength(5)
    for (const n of e.neighbours) {
      expect(candidates.ids).toContain(n.id)
      expect(['none', 'micro_movement']).toContain(n.label)
    }
    const d = e.neighbours.map((n) => n.distance)
    expect(d).toEqual([...d].sort((a, b) => a - b))
    expect(e.novelty).toBeGreaterThanOrEqual(0)
    expect(e.novelty).toBeLessThanOrEqual(1)
    // Not asked for: not there. A feature vector gets it too.
    expect((await post(s, '/infer/tabr-demo', readFileSync(clips.demoMouth), 'video/x-matroska')).json.evidence).toBeUndefined()
    const f = await call(s, '/infer/tabr-demo?include=evidence', { method: 'POST', body: JSON.stringify({ features: new Array(90).fill(0.1) }), headers: { 'Content-Type': 'application/json' } })
    expect(f.json.evidence.neighbours).toHaveLength(5)
  })

  it('a real face is novel to the demo model trained on drawings (≥ 0.95), and v2 says which real clips it resembles', async () => {
    const v1 = await post(s, '/infer/tabr-demo?include=evidence', readFileSync(D18))
    expect(v1.json.evidence.novelty).toBeGreaterThanOrEqual(0.95)
    const v2 = await post(s, '/infer/tabr-demo-v2?include=evidence', readFileSync(D18))
    expect(v2.status).toBe(200)
    expect(v2.json.evidence.neighbours[0].id).toMatch(/\.mkv$/)
  })

  it('a model exported without evidence answers, and refuses ?include=evidence with 400 evidence_unavailable', async () => {
    expect((await call(s, '/models/old')).json.evidence_k).toBe(0)
    expect((await call(s, '/models/tabr-demo')).json.evidence_k).toBe(5)
    const ok = await post(s, '/infer/old', readFileSync(clips.demoStill), 'video/x-matroska')
    expect(ok.status).toBe(200)
    const r = await post(s, '/infer/old?include=evidence', readFileSync(clips.demoStill), 'video/x-matroska')
    expect(r.status).toBe(400)
    expect(r.json.error.code).toBe('evidence_unavailable')
    const bad = await post(s, '/infer/tabr-demo?include=evidence,nonsense', readFileSync(clips.demoStill), 'video/x-matroska')
    expect(bad.status).toBe(400)
  })

  it('every video answer says how good the recording was; a dark one is warned about, and refused by a strict model', async () => {
    const good = await post(s, '/infer/tabr-demo-v2', readFileSync(D18))
    const q = good.json.video.quality
    expect(q.warnings).toEqual([])
    expect(q.face_px).toBeGreaterThan(200)
    expect(q.yaw_deg).toHaveLength(2)
    expect(q.face_flag).toBeGreaterThan(0.5)
    const dark = await post(s, '/infer/tabr-demo-v2', readFileSync(join(dir, 'dark.mp4')))
    expect(dark.status).toBe(200)
    expect(dark.json.video.quality.warnings.map((w: { code: string }) => w.code)).toContain('too_dark')
    const refused = await post(s, '/infer/strict', readFileSync(join(dir, 'dark.mp4')))
    expect(refused.status).toBe(422)
    expect(refused.json.error.code).toBe('poor_recording')
    expect(refused.json.error.message).toMatch(/too dark/)
    expect((await post(s, '/infer/strict', readFileSync(D18))).status).toBe(200)
  })
})
