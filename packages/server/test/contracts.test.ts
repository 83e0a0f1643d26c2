// The contracts generated from the native core (src/core/native.generated.ts, written by
// scripts/contracts.mjs) match the addon this service runs on: a code or spec added to the core
// without `make contracts` fails here, and a code without a row in ERROR_TABLE fails the
// type check of core/errors.ts.
import { execFileSync } from 'node:child_process'
import { resolve } from 'node:path'
import { errorCodes, specs } from '@org/tabr-native'
import { describe, expect, it } from 'vitest'
import { ERROR_CODES } from '../src/core/errors.js'
import { FEATURE_SPECS, NATIVE_ERROR_CODES } from '../src/core/native.generated.js'

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
})
