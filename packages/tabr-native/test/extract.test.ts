// The public entry of @org/tabr-native, exercised as a user would: real addon, real clips.
import { readFileSync } from 'node:fs'
import { describe, expect, inject, it } from 'vitest'
import { channelNames, errorCodes, extractFeatures, FEATURE_SPECS, featureNames, specs } from '../index.js'
import { codeOf, sharedFixture } from './helpers.js'

const clips = inject('clips')

describe('extractFeatures', () => {
  it('returns 90 named float32 values and the metadata', async () => {
    const r = await extractFeatures(clips.face)
    expect(r.values).toBeInstanceOf(Float32Array)
    expect(r.values.length).toBe(90)
    expect(r.names).toEqual(featureNames())
    expect(r.names[73]).toBe('mouth.abs.p95')
    expect(r.values.every(Number.isFinite)).toBe(true)
    expect(r.meta).toMatchObject({ frames: 90, pairs: 89, fps: 30, width: 640, height: 480 })
    expect(r.meta.detectHits).toBe(r.meta.detectTries)
    expect(r.meta.boxes.length).toBeGreaterThanOrEqual(1)
    expect(r.meta.timingsMs.total).toBeGreaterThan(0)
  })

  it('returns the 18 channels of every pair on request, the values the statistics summarise', async () => {
    const plain = await extractFeatures(clips.face)
    expect(plain.series).toBeUndefined()
    const r = await extractFeatures(clips.face, { series: true })
    const s = r.series!
    expect(s.channels).toEqual(channelNames())
    expect(s.channels).toHaveLength(18)
    expect(s.tS).toBeInstanceOf(Float64Array)
    expect(s.tS).toHaveLength(r.meta.pairs)
    expect(s.tS[0]).toBeCloseTo(1 / 30, 12)
    expect(s.values).toHaveLength(r.meta.pairs * 18)
    expect(r.values).toEqual(plain.values)
    // Each channel's max over the pairs is its `max` feature.
    s.channels.forEach((c, i) => {
      let max = -Infinity
      for (let k = 0; k < r.meta.pairs; k++) max = Math.max(max, s.values[k * 18 + i]!)
      expect(max, c).toBeCloseTo(r.values[r.names.indexOf(`${c}.max`)]!, 5)
    })
  })

  // Read inside the test: a missing ../shared fails this test alone.
  const d18 = () => sharedFixture('faces/face_lp_d18_man_neutral_480_liveportrait.mp4')
  // The core's test-only spec (v2's face method, grown regions), registered in its spec table
  // alone: listed by specs() and computed by extractFeatures once TABR_TEST_SPECS=1, with no
  // change to this package.
  it('serves a spec registered in the core alone: specs() lists it and extractFeatures computes it', async () => {
    expect(specs().map((s) => s.id)).toEqual([...FEATURE_SPECS])
    expect(await codeOf((async () => extractFeatures(d18(), { spec: 'poc-abs/99' as 'poc-abs/2' }))())).toBe('model_error')
    process.env.TABR_TEST_SPECS = '1'
    try {
      const listed = specs().find((s) => s.id === 'poc-abs/99')
      expect(listed).toMatchObject({ version: 99, faceMethod: 'landmark-aligned', nFeatures: 90, needs: ['onnxruntime'] })
      const v99 = await extractFeatures(d18(), { spec: 'poc-abs/99' as 'poc-abs/2' })
      const v2 = await extractFeatures(d18(), { spec: 'poc-abs/2' })
      expect(v99.names).toEqual(v2.names)
      expect(Array.from(v99.values)).not.toEqual(Array.from(v2.values))
    } finally {
      delete process.env.TABR_TEST_SPECS
    }
  })

  it('computes poc-abs/2 on request: the same 90 names, other numbers, a face placed by landmarks', async () => {
    const v1 = await extractFeatures(d18())
    const v2 = await extractFeatures(d18(), { spec: 'poc-abs/2', series: true })
    expect(v2.names).toEqual(v1.names)
    expect(v2.values.every(Number.isFinite)).toBe(true)
    expect(v2.meta.frames).toBe(v1.meta.frames)
    expect(v2.meta.detectHits).toBe(v2.meta.detectTries)
    expect(Array.from(v2.values)).not.toEqual(Array.from(v1.values))
    expect(v2.series!.values).toHaveLength(v2.meta.pairs * 18)
    expect((await extractFeatures(d18(), { spec: 'poc-abs/1' })).values).toEqual(v1.values)
    // Bad options throw at the call; the async wrapper turns that into a rejection to read.
    expect(await codeOf((async () => extractFeatures(d18(), { spec: 'poc-abs/3' as 'poc-abs/2' }))())).toBe('model_error')
    // A cascade is v1's: refused for v2, not silently ignored.
    expect(await codeOf((async () => extractFeatures(d18(), { spec: 'poc-abs/2', cascade: '/nonexistent.xml' }))())).toBe('model_error')
  })

  it('keeps the event loop ticking during an extraction', async () => {
    let ticks = 0
    let last = performance.now()
    let maxGap = 0
    const timer = setInterval(() => {
      const now = performance.now()
      maxGap = Math.max(maxGap, now - last)
      last = now
      ticks++
    }, 5)
    const started = performance.now()
    await extractFeatures(clips.long)
    const elapsed = performance.now() - started
    clearInterval(timer)
    // The extraction takes hundreds of ms; a blocked loop would tick once at the end.
    expect(elapsed).toBeGreaterThan(50)
    expect(ticks).toBeGreaterThan(elapsed / 5 / 4)
    expect(maxGap).toBeLessThan(Math.max(100, elapsed / 2))
  })

  it('rejects with stable codes', async () => {
    expect(errorCodes()).toEqual(expect.arrayContaining(['invalid_video', 'video_too_long', 'video_too_short', 'frame_too_large', 'no_face']))
    expect(await codeOf(extractFeatures(Buffer.from('not a video at all')))).toBe('invalid_video')
    expect(await codeOf(extractFeatures('/nonexistent/clip.mp4'))).toBe('invalid_video')
    expect(await codeOf(extractFeatures(clips.noFace))).toBe('no_face')
    expect(await codeOf(extractFeatures(clips.oneFrame))).toBe('video_too_short')
    expect(await codeOf(extractFeatures(clips.face, { maxSeconds: 1 }))).toBe('video_too_long')
    expect(await codeOf(extractFeatures(clips.face, { maxPixels: 320 * 240 }))).toBe('frame_too_large')
  })

  it('rejects bad options with a code too (thrown at the call), naming no path', () => {
    const thrown = (f: () => unknown) => {
      try {
        f()
      } catch (e) {
        return e as Error & { code?: string }
      }
      throw new Error('did not throw')
    }
    expect(thrown(() => extractFeatures(clips.face, { maxSeconds: -1 })).code).toBe('model_error')
    const e = thrown(() => extractFeatures(clips.face, { cascade: '/secret/place/cascade.xml' }))
    expect(e.code).toBe('model_error')
    expect(e.message).not.toContain('/secret')
    const f = thrown(() => extractFeatures(clips.face, { flow: 'fastest' as 'rust' }))
    expect(f.code).toBe('model_error')
    expect(f.message).toContain('rust')
  })

  it("gives the spec's numbers with either flow: ours (the default) and OpenCV's agree within the conformance tolerance", async () => {
    const [ours, opencv, byDefault] = await Promise.all([extractFeatures(clips.face, { flow: 'rust' }), extractFeatures(clips.face, { flow: 'opencv' }), extractFeatures(clips.face)])
    expect(Array.from(byDefault.values)).toEqual(Array.from(ours.values))
    const worst = Math.max(...Array.from(ours.values, (v, i) => Math.abs(v - opencv.values[i]) / Math.max(1e-1, Math.abs(opencv.values[i]))))
    expect(worst).toBeLessThan(1e-2)
    expect(ours.meta.timingsMs.flow).toBeGreaterThan(0)
  })

  it('names no path in messages', async () => {
    const err = await extractFeatures('/secret/place/clip.mp4').catch((e: Error) => e)
    expect(err).toBeInstanceOf(Error)
    expect((err as Error).message).not.toContain('/secret')
  })

  it('accepts a Buffer and gives the same numbers as the path', async () => {
    const [fromPath, fromBuffer] = await Promise.all([extractFeatures(clips.face), extractFeatures(readFileSync(clips.face))])
    expect(Array.from(fromBuffer.values)).toEqual(Array.from(fromPath.values))
  })

  it('gives the same results for 8 concurrent calls as for sequential ones', async () => {
    const inputs = [clips.face, clips.long]
    const sequential: number[][] = []
    for (const c of inputs) sequential.push(Array.from((await extractFeatures(c)).values))
    const concurrent = await Promise.all(Array.from({ length: 8 }, (_, i) => extractFeatures(inputs[i % 2])))
    concurrent.forEach((r, i) => expect(Array.from(r.values)).toEqual(sequential[i % 2]))
  })

  it('stops a running extraction when aborted', async () => {
    const ac = new AbortController()
    const started = performance.now()
    const p = extractFeatures(clips.long, undefined, ac.signal)
    setTimeout(() => ac.abort(), 30)
    const err = (await p.catch((e: unknown) => e)) as { code?: string; name?: string }
    expect(err.code === 'aborted' || err.name === 'AbortError').toBe(true)
    const full = await (async () => {
      const t = performance.now()
      await extractFeatures(clips.long)
      return performance.now() - t
    })()
    expect(performance.now() - started - full).toBeLessThan(full)
  })

  it('rejects at once with an already aborted signal', async () => {
    const ac = new AbortController()
    ac.abort()
    const err = (await extractFeatures(clips.face, undefined, ac.signal).catch((e: unknown) => e)) as { code?: string; name?: string }
    expect(err.code === 'aborted' || err.name === 'AbortError').toBe(true)
  })
})
