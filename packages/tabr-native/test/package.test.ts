// The package's promises about itself: one version list, a platform package that matches the
// napi targets, and a README whose error codes are the real ones.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { readNapiConfig } from '@napi-rs/cli'
import { describe, expect, it } from 'vitest'
import { errorCodes, FEATURE_SPECS, loadModel, MODEL_FORMATS, VERSION } from '../index.js'
import { demoDir, pkgDir, repoRoot, run } from './helpers.js'

const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>
const pkg = readJson(join(pkgDir, 'package.json'))
const readme = readFileSync(join(pkgDir, 'README.md'), 'utf8')

/** The rows of the first table under a `## title` heading of the README, as cells. */
function readmeTable(title: string): string[][] {
  const section = readme.split(/^## /m).find((s) => s.startsWith(`${title}\n`))
  if (!section) throw new Error(`README has no '## ${title}' section`)
  const rows = section.split('\n').filter((l) => l.startsWith('| '))
  return rows.slice(2).map((r) =>
    r
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim().replace(/^`(.*)`$/, '$1')),
  )
}

describe('one version list', () => {
  it('gives every package the Rust workspace version', () => {
    const cargo = readFileSync(join(repoRoot, 'Cargo.toml'), 'utf8')
    const workspace = /\[workspace\.package\][^[]*?\nversion = "([^"]+)"/.exec(cargo)
    expect(workspace?.[1]).toBe(VERSION)
    expect(pkg.version).toBe(VERSION)
    expect(readJson(join(pkgDir, 'npm/linux-x64-gnu/package.json')).version).toBe(VERSION)
    expect(readJson(join(pkgDir, 'npm/linux-x64-gpu/package.json')).version).toBe(VERSION)
    // The generated loader checks the platform package against the version it was built for.
    const expected = [...readFileSync(join(pkgDir, 'binding.js'), 'utf8').matchAll(/bindingPackageVersion !== '([^']+)'/g)]
    expect(expected.length).toBeGreaterThan(0)
    expect(new Set(expected.map((m) => m[1]))).toEqual(new Set([VERSION]))
  })

  it('lists the feature specs and model formats the loader accepts', async () => {
    expect(FEATURE_SPECS).toEqual(['poc-abs/1', 'poc-abs/2'])
    expect(MODEL_FORMATS).toEqual(['tabr-model/1'])
    const manifest = readJson(join(demoDir, 'manifest.json'))
    expect(MODEL_FORMATS).toContain(manifest.format)
    const { features } = (await loadModel(demoDir, { sessions: 1 })).info
    expect(FEATURE_SPECS).toContain(`${features.name}/${features.version}`)
  })
})

describe('platform packages', () => {
  it('has one npm/<platform> package per napi target, named and constrained as napi-rs expects', async () => {
    const { targets, binaryName, packageName } = await readNapiConfig(join(pkgDir, 'package.json'))
    expect(targets.map((t) => t.platformArchABI)).toEqual(['linux-x64-gnu'])
    for (const t of targets) {
      const m = readJson(join(pkgDir, 'npm', t.platformArchABI, 'package.json'))
      const binary = `${binaryName}.${t.platformArchABI}.node`
      expect(m).toMatchObject({ name: `${packageName}-${t.platformArchABI}`, main: binary, os: [t.platform], cpu: [t.arch] })
      expect(m.files).toContain(binary)
      expect(m.libc).toEqual(t.abi === 'gnu' ? ['glibc'] : undefined)
    }
    // Each is listed in optionalDependencies (a workspace link here; make pack pins the version).
    expect(pkg.optionalDependencies).toEqual(Object.fromEntries(targets.map((t) => [`${packageName}-${t.platformArchABI}`, 'workspace:*'])))
    expect(pkg.files).not.toContain('*.node')
  })
})

describe('README', () => {
  it('documents exactly the error codes the addon uses', () => {
    expect(
      readmeTable('Errors')
        .map(([code]) => code)
        .sort(),
    ).toEqual([...errorCodes()].sort())
  })

  it('documents the GPU variable the core reads', () => {
    expect(readme).toContain('TABR_CUDA_LIBS')
  })
})

describe('the development build', () => {
  // The release build (make portable) links FFmpeg and OpenCV in; this one takes the system's.
  it('resolves every library, transitively (ldd)', () => {
    const ldd = run('ldd', [join(pkgDir, 'tabr-native.linux-x64-gnu.node')])
    expect(ldd.status).toBe(0)
    expect(ldd.stdout).not.toMatch(/not found/)
  })
})
