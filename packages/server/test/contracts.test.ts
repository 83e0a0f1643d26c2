// The contracts generated from the native core (src/core/native.generated.ts, written by
// scripts/contracts.mjs) match the addon this service runs on: a code or spec added to the core
// without `make contracts` fails here, and a code without a row in ERROR_TABLE fails the
// type check of core/errors.ts. The binding's camelCase ExtractMeta is a hand-written mirror of
// the core's Meta (napi needs a struct of its own): checked here against the core's schema.
import { execFileSync } from 'node:child_process'
import { resolve } from 'node:path'
import { errorCodes, extractFeatures, specs } from '@org/tabr-native'
import { describe, expect, it } from 'vitest'
import { ERROR_CODES } from '../src/core/errors.js'
import { FEATURE_SPECS, METADATA_SCHEMAS, NATIVE_ERROR_CODES } from '../src/core/native.generated.js'
import { requireShared, SHARED } from './helpers.js'

describe('contracts generated from the native core', () => {
  it('are fresh: regenerating them changes nothing', () => {
    const script = resolve(__dirname, '../scripts/contracts.mjs')
    expect(() => execFileSync(process.execPath, [script, '--check'], { stdio: 'pipe' })).not.toThrow()
  })

  it('hold the addon’s codes and specs, and every code has a status', () => {
    expect([...NATIVE_ERROR_CODES]).toEqual(errorCodes())
    expect(FEATURE_SPECS.map((s) => s.id)).toEqual(specs().map((s) => s.id))
    for (const c of NATIVE_ERROR_CODES) expect(ERROR_CODES).toContain(c)
  })

  it('the binding’s ExtractMeta mirrors the core’s Meta, field for field', async () => {
    const clip = resolve(SHARED, 'fixtures/faces/face_lp_d18_man_neutral_480_liveportrait.mp4')
    requireShared(clip)
    // v2: every quality measure is present (v1 has no head pose).
    const { meta } = await extractFeatures(clip, { spec: 'poc-abs/2' })
    const camel = (k: string) => k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())
    const sorted = (o: object) => Object.keys(o).sort()
    expect(sorted(meta)).toEqual(Object.keys(METADATA_SCHEMAS.Meta.properties).map(camel).sort())
    expect(sorted(meta.timingsMs)).toEqual(sorted(METADATA_SCHEMAS.StageTimings.properties))
    expect(meta.boxes.length).toBeGreaterThan(0)
    expect(sorted(meta.boxes[0] ?? {})).toEqual(sorted(METADATA_SCHEMAS.Meta.properties.boxes.items.properties))
    // The quality keeps the core's own (snake_case) names, so it crosses to an answer as it is.
    expect(sorted(meta.quality)).toEqual(sorted(METADATA_SCHEMAS.Quality.properties))
    expect(sorted(meta.quality.warnings[0] ?? { code: '', message: '' })).toEqual(sorted(METADATA_SCHEMAS.Quality.properties.warnings.items.properties))
  })
})
