// The release as a user gets it. `make pack`'s script writes the tarballs, plain `npm install`
// puts them into an empty project outside the workspace (onnxruntime-node comes from the
// registry, its download step skipped), and plain Node loads the package through `require`
// and through `import`, extracts and predicts. The installed build must give the numbers the
// workspace build gives.
import { execFileSync } from 'node:child_process'
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { extractFeatures, loadModel, VERSION } from '../index.js'
import { demoDir, pkgDir, plainEnv, run, sharedFixture } from './helpers.js'

const clips = inject('clips')
// Read inside its test: a missing ../shared fails that test alone.
const sharedClip = () => sharedFixture('faces/face_lp_d18_man_neutral_480_liveportrait.mp4')
const platformName = '@org/tabr-native-linux-x64-gnu'
const binary = 'tabr-native.linux-x64-gnu.node'

/** What a probe prints: the version list, what it loaded, and per video the results. */
interface ProbeOutput {
  version: string
  featureSpecs: string[]
  addon: string
  runtime: string
  provider: string
  videos: { values: number[]; names: string[]; prediction: unknown; videoValues: number[] }[]
}

// The same program twice: as CommonJS with require, and as an ES module with named imports.
const probeBody = `
const [demo, ...videos] = process.argv.slice(2)
const mapped = (s) => readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/)[5] ?? '').find(s)
const model = await loadModel(demo)
const out = { version: VERSION, featureSpecs: FEATURE_SPECS, provider: model.info.provider, videos: [] }
for (const v of videos) {
  const f = await extractFeatures(v)
  const p = await model.predictVideo(v, { features: true })
  out.videos.push({ values: Array.from(f.values), names: f.names, prediction: p.prediction, videoValues: Array.from(p.features) })
}
out.addon = mapped((p) => p.endsWith('.node') && p.includes('tabr-native'))
out.runtime = mapped((p) => p.includes('libonnxruntime.so'))
console.log(JSON.stringify(out))
`
const probes = {
  require: `const { readFileSync } = require('node:fs')
const { extractFeatures, loadModel, VERSION, FEATURE_SPECS } = require('@org/tabr-native')
;(async () => {${probeBody}})().catch((e) => { console.error(e.code, e.message); process.exit(1) })
`,
  import: `import { readFileSync } from 'node:fs'
import { extractFeatures, loadModel, VERSION, FEATURE_SPECS } from '@org/tabr-native'
${probeBody}`,
}

/**
 * The environment `npm install` runs in: only the variables npm and pnpm set for the script
 * running this test are dropped (a registry or proxy configured in the environment still
 * applies), and onnxruntime-node's download step is skipped.
 */
function npmEnv(): NodeJS.ProcessEnv {
  const env = plainEnv({ ONNXRUNTIME_NODE_INSTALL: 'skip' })
  for (const k of Object.keys(env)) {
    if (/^(npm_(lifecycle|package|command|execpath|node_execpath)|npm_config_user_agent|pnpm_)/i.test(k)) delete env[k]
  }
  return env
}

describe('the packed release, installed with npm', () => {
  let work: string
  let app: string
  let tarballs: string[]

  /** Runs one probe in the installed project. */
  const probe = (kind: keyof typeof probes, videos: string[], env: Record<string, string> = {}) =>
    run(process.execPath, [kind === 'require' ? 'probe.cjs' : 'probe.mjs', demoDir, ...videos], {
      cwd: app,
      env: plainEnv(env),
    })
  const probeOk = (kind: keyof typeof probes, videos: string[]) => {
    const r = probe(kind, videos)
    expect(r.status, r.stderr).toBe(0)
    return JSON.parse(r.stdout) as ProbeOutput
  }

  /** The workspace build's answers for the same videos: the oracle. */
  const workspaceAnswers = async (videos: string[]) => {
    const model = await loadModel(demoDir, { sessions: 1 })
    return Promise.all(
      videos.map(async (v) => ({
        values: Array.from((await extractFeatures(v)).values),
        prediction: (await model.predictVideo(v)).prediction,
      })),
    )
  }

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'tabr-native-install-'))
    const out = join(work, 'dist')
    tarballs = execFileSync(process.execPath, [join(pkgDir, 'scripts/pack.mjs'), '--out', out], { encoding: 'utf8' })
      .trim()
      .split('\n')
    app = join(work, 'app')
    mkdirSync(app)
    writeFileSync(join(app, 'package.json'), '{ "name": "tabr-install-test", "private": true }\n')
    writeFileSync(join(app, 'probe.cjs'), probes.require)
    writeFileSync(join(app, 'probe.mjs'), probes.import)
    const env = npmEnv()
    const npm = run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', ...tarballs], { cwd: app, env })
    if (npm.status !== 0) throw new Error(`npm install failed:\n${npm.stderr}`)
  }, 600_000)

  afterAll(() => rmSync(work, { recursive: true, force: true }))

  it('says what to install when the platform package is missing (the main tarball alone)', () => {
    const alone = join(work, 'alone')
    mkdirSync(alone)
    writeFileSync(join(alone, 'package.json'), '{ "name": "tabr-install-alone", "private": true }\n')
    const env = npmEnv()
    // --omit=optional: exactly what a user who installs the main tarball on its own ends with.
    const npm = run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--omit=optional', tarballs[0]!], { cwd: alone, env })
    expect(npm.status, npm.stderr).toBe(0)
    // Without NODE_PATH (pnpm's shims set it to the workspace's store): a user's plain Node.
    const { NODE_PATH: _, ...userEnv } = plainEnv()
    const r = run(process.execPath, ['-e', "require('@org/tabr-native')"], { cwd: alone, env: userEnv })
    expect(r.status).not.toBe(0)
    expect(r.stderr).toContain(`its addon, the package ${platformName}, is not installed`)
    expect(r.stderr).toContain(`npm install ./org-tabr-native-${VERSION}.tgz ./org-tabr-native-linux-x64-gnu-${VERSION}.tgz`)
    expect(r.stderr).not.toContain('wasm32-wasi\n')
  }, 300_000)

  it('packs the loader and the binary into separate packages, as napi-rs lays them out', () => {
    expect(tarballs.map((t) => t.split('/').pop())).toEqual([`org-tabr-native-${VERSION}.tgz`, `org-tabr-native-linux-x64-gnu-${VERSION}.tgz`])
    const list = (t: string) => execFileSync('tar', ['-tzf', t], { encoding: 'utf8' }).trim().split('\n').sort()
    const [main, platform] = tarballs.map(list)
    expect(main).toEqual(['binding.js', 'index.d.ts', 'index.js', 'package.json', 'README.md', 'THIRD-PARTY-NOTICES.txt'].map((f) => `package/${f}`).sort())
    expect(platform).toEqual([binary, 'package.json', 'README.md', 'THIRD-PARTY-NOTICES.txt'].map((f) => `package/${f}`).sort())
  })

  it('installs from the tarballs alone: real files, the platform package through optionalDependencies', () => {
    const installed = (p: string) => join(app, 'node_modules', p)
    const main = JSON.parse(readFileSync(installed('@org/tabr-native/package.json'), 'utf8')) as Record<string, unknown>
    expect(main.optionalDependencies).toEqual({ [platformName]: VERSION })
    expect(main.dependencies).toEqual({ 'onnxruntime-node': '1.22.0' })
    expect(main.scripts).toBeUndefined()
    for (const p of ['@org/tabr-native', platformName, 'onnxruntime-node']) {
      expect(lstatSync(installed(p)).isSymbolicLink(), p).toBe(false)
    }
    expect(existsSync(installed(`${platformName}/${binary}`))).toBe(true)
    expect(readFileSync(installed(`${platformName}/THIRD-PARTY-NOTICES.txt`), 'utf8')).toContain('Intel License Agreement')
  })

  it('resolves every shared library of the installed addon (ldd)', () => {
    const ldd = run('ldd', [join(app, 'node_modules', platformName, binary)])
    expect(ldd.status).toBe(0)
    expect(ldd.stdout).toMatch(/libopencv_core\.so\.406 => \//)
    expect(ldd.stdout).not.toMatch(/not found/)
  })

  it('runs extractFeatures and predictVideo through require and import, with the workspace numbers', async () => {
    const videos = [clips.face]
    const [oracle, viaRequire, viaImport] = [await workspaceAnswers(videos), probeOk('require', videos), probeOk('import', videos)]
    for (const out of [viaRequire, viaImport]) {
      expect(out.version).toBe(VERSION)
      expect(out.featureSpecs).toEqual(['poc-abs/1', 'poc-abs/2'])
      expect(out.provider).toBe('cpu')
      // The addon of the installed platform package, and ONNX Runtime from onnxruntime-node.
      expect(out.addon).toBe(join(app, 'node_modules', platformName, binary))
      expect(out.runtime).toBe(join(app, 'node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1'))
      expect(out.videos).toHaveLength(oracle.length)
      out.videos.forEach((v, i) => {
        expect(v.names).toHaveLength(90)
        expect(v.values).toEqual(oracle[i]?.values)
        expect(v.videoValues).toEqual(oracle[i]?.values)
        expect(v.prediction).toEqual(oracle[i]?.prediction)
      })
    }
  })

  it('does the same on the d18 clip of ../shared/fixtures', async () => {
    const [oracle] = await workspaceAnswers([sharedClip()])
    const [v] = probeOk('import', [sharedClip()]).videos
    expect(v?.values).toEqual(oracle?.values)
    expect(v?.prediction).toEqual(oracle?.prediction)
    expect(v?.values).toHaveLength(90)
  })

  it('takes ONNX Runtime from ORT_DYLIB_PATH over onnxruntime-node', () => {
    const r = probe('require', [], { ORT_DYLIB_PATH: join(work, 'no-such-libonnxruntime.so') })
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/^model_error the ONNX Runtime library named by ORT_DYLIB_PATH does not exist/m)
  })
})
