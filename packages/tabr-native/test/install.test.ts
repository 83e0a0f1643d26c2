// The release as a user gets it on this machine. `make pack`'s script writes the tarballs (the
// portable build of `make portable`), plain `npm install` puts them into an empty project
// outside the workspace (nothing else is fetched: the platform package holds its own ONNX
// Runtime), and plain Node loads the package through `require` and through `import`, extracts
// and predicts. The installed build must give the numbers the workspace build gives. The GPU
// package is installed beside it in a second project: this machine has no GPU and no CUDA, so
// what is tested is what a user without them sees (the contents, the two messages naming the
// missing library, the fallback); scripts/gpu-check.sh is the run for a GPU machine. Other
// Linux systems: tests/install/chroot.mjs (make test-install).
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { extractFeatures, loadModel, VERSION } from '../index.js'
import { demoDir, pkgDir, plainEnv, repoRoot, run, sharedFixture } from './helpers.js'

const clips = inject('clips')
// Read inside its test: a missing ../shared fails that test alone.
const sharedClip = () => sharedFixture('faces/face_lp_d18_man_neutral_480_liveportrait.mp4')
const platformName = '@org/tabr-native-linux-x64-gnu'
const gpuName = '@org/tabr-native-linux-x64-gpu'
const binary = 'tabr-native.linux-x64-gnu.node'
const runtime = 'libonnxruntime.so.1'

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
 * applies). No install flag: the release needs none.
 */
function npmEnv(): NodeJS.ProcessEnv {
  const env = plainEnv()
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
    const npm = run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', ...tarballs.slice(0, 2)], { cwd: app, env })
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

  it('packs the loader and the binaries into separate packages, as napi-rs lays them out, the runtime beside the addon', () => {
    expect(tarballs.map((t) => t.split('/').pop())).toEqual([`org-tabr-native-${VERSION}.tgz`, `org-tabr-native-linux-x64-gnu-${VERSION}.tgz`, `org-tabr-native-linux-x64-gpu-${VERSION}.tgz`])
    const list = (t: string) => execFileSync('tar', ['-tzf', t], { encoding: 'utf8' }).trim().split('\n').sort()
    const [main, platform, gpu] = tarballs.map(list)
    const pkg = (files: string[]) => files.map((f) => `package/${f}`).sort()
    expect(main).toEqual(pkg(['binding.js', 'index.d.ts', 'index.js', 'package.json', 'README.md', 'THIRD-PARTY-NOTICES.txt']))
    expect(platform).toEqual(pkg([binary, runtime, 'package.json', 'README.md', 'THIRD-PARTY-NOTICES.txt']))
    expect(gpu).toEqual(pkg([binary, runtime, 'libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so', 'package.json', 'README.md', 'THIRD-PARTY-NOTICES.txt']))
    // The CPU package within the size promised (packed).
    expect(lstatSync(tarballs[1]!).size).toBeLessThanOrEqual(40e6)
  })

  it('installs from the tarballs alone: real files, the platform package through optionalDependencies', () => {
    const installed = (p: string) => join(app, 'node_modules', p)
    const main = JSON.parse(readFileSync(installed('@org/tabr-native/package.json'), 'utf8')) as Record<string, unknown>
    expect(main.optionalDependencies).toEqual({ [platformName]: VERSION })
    expect(main.dependencies).toBeUndefined()
    expect(main.scripts).toBeUndefined()
    for (const p of ['@org/tabr-native', platformName]) {
      expect(lstatSync(installed(p)).isSymbolicLink(), p).toBe(false)
    }
    // Nothing else was installed: no onnxruntime-node, no install script ran.
    expect(readdirSync(installed('')).sort()).toEqual(['.package-lock.json', '@org'])
    expect(existsSync(installed(`${platformName}/${binary}`))).toBe(true)
    const notices = readFileSync(installed(`${platformName}/THIRD-PARTY-NOTICES.txt`), 'utf8')
    for (const part of ['Intel License Agreement', 'GNU LESSER GENERAL PUBLIC LICENSE', 'dav1d', 'Apache License', 'zlib', 'LLVM Exceptions', 'ONNX Runtime', 'rustfft']) {
      expect(notices, part).toContain(part)
    }
  })

  it('reads only what the decoder allows: the release FFmpeg holds the allow-listed demuxers and the chosen decoders, nothing else', () => {
    const r = run(process.execPath, ['-e', "console.log(JSON.stringify(require('@org/tabr-native').buildInfo()))"], { cwd: app, env: plainEnv() })
    expect(r.status, r.stderr).toBe(0)
    const info = JSON.parse(r.stdout) as { demuxers: string[]; decoders: string[]; allowedDemuxers: string[] }
    // FFmpeg names a demuxer by all its formats (mov,mp4,m4a,...): the union is the allow-list.
    expect(info.demuxers.flatMap((d) => d.split(',')).sort()).toEqual([...info.allowedDemuxers].sort())
    const script = readFileSync(join(repoRoot, 'scripts/portable/ffmpeg.sh'), 'utf8')
    const chosen = /^DECODERS=(\S+)$/m.exec(script)?.[1]?.split(',') ?? []
    // configure adds one decoder by itself: MPEG-4 part 2's is built on H.263's.
    expect(info.decoders).toEqual([...chosen, 'h263'].sort())
  })

  it('needs nothing outside the package but glibc, libgcc_s and libstdc++ (ldd)', () => {
    const ldd = run('ldd', [join(app, 'node_modules', platformName, binary)])
    expect(ldd.status).toBe(0)
    const libs = [...ldd.stdout.matchAll(/^\s*(\S+)/gm)].map((m) => m[1]!).filter((l) => !l.startsWith('linux-vdso'))
    for (const l of libs) expect(l).toMatch(/^(\/lib64\/ld-linux-x86-64\.so\.2|lib(c|m|pthread|dl|rt|gcc_s|stdc\+\+)\.so\.\d+)$/)
    expect(ldd.stdout).not.toMatch(/not found/)
  })

  it('runs extractFeatures and predictVideo through require and import, with the workspace numbers', async () => {
    const videos = [clips.face]
    const [oracle, viaRequire, viaImport] = [await workspaceAnswers(videos), probeOk('require', videos), probeOk('import', videos)]
    for (const out of [viaRequire, viaImport]) {
      expect(out.version).toBe(VERSION)
      expect(out.featureSpecs).toEqual(['poc-abs/1', 'poc-abs/2'])
      expect(out.provider).toBe('cpu')
      // The addon of the installed platform package, and the ONNX Runtime beside it.
      expect(out.addon).toBe(join(app, 'node_modules', platformName, binary))
      expect(out.runtime).toBe(join(app, 'node_modules', platformName, runtime))
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

  it('takes ONNX Runtime from ORT_DYLIB_PATH over the bundled one', () => {
    const r = probe('require', [], { ORT_DYLIB_PATH: join(work, 'no-such-libonnxruntime.so') })
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/^model_error the ONNX Runtime library named by ORT_DYLIB_PATH does not exist/m)
  })

  it('says what cuda lacks with the CPU package: a CPU build of ONNX Runtime', () => {
    const r = run(process.execPath, ['-e', `require('@org/tabr-native').loadModel(process.argv[1], { provider: 'cuda' }).catch((e) => { console.log(e.code, e.message) })`, demoDir], {
      cwd: app,
      env: plainEnv(),
    })
    expect(r.stdout).toMatch(/^model_error provider cuda: the loaded ONNX Runtime is a CPU build \(libonnxruntime_providers_cuda\.so is not beside it/)
  })

  describe('with the GPU package installed beside it (this machine: no GPU, no CUDA)', () => {
    let gpuApp: string
    const missing = (lib: string, what: string) => `${lib} (${what}) cannot be loaded: install CUDA 12 and cuDNN 9, or NVIDIA's wheels and name their folder in TABR_CUDA_LIBS`

    beforeAll(() => {
      gpuApp = join(work, 'gpu-app')
      mkdirSync(gpuApp)
      writeFileSync(join(gpuApp, 'package.json'), '{ "name": "tabr-install-gpu", "private": true }\n')
      const npm = run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', ...tarballs], { cwd: gpuApp, env: npmEnv() })
      if (npm.status !== 0) throw new Error(`npm install failed:\n${npm.stderr}`)
    }, 600_000)

    it("loads the GPU package's addon, ONNX Runtime's CUDA build beside it, and on the CPU gives the workspace numbers", async () => {
      const [oracle] = await workspaceAnswers([clips.face])
      const out = run(
        process.execPath,
        [
          '-e',
          `const t = require('@org/tabr-native'); (async () => { const m = await t.loadModel(process.argv[1]); const p = await m.predictVideo(process.argv[2]); const maps = require('fs').readFileSync('/proc/self/maps', 'utf8'); console.log(JSON.stringify({ provider: m.info.provider, prediction: p.prediction, addon: maps.includes('${gpuName}/${binary}'), runtime: maps.includes('${gpuName}/${runtime}') })) })()`,
          demoDir,
          clips.face,
        ],
        { cwd: gpuApp, env: plainEnv() },
      )
      expect(out.status, out.stderr).toBe(0)
      expect(JSON.parse(out.stdout)).toEqual({ provider: 'cpu', prediction: oracle?.prediction, addon: true, runtime: true })
    })

    it('provider cuda fails the load naming the first CUDA library missing', () => {
      const r = run(process.execPath, ['-e', `require('@org/tabr-native').loadModel(process.argv[1], { provider: 'cuda' }).catch((e) => console.log(e.code, e.message))`, demoDir], {
        cwd: gpuApp,
        env: plainEnv(),
      })
      expect(r.stdout.trim()).toBe(`model_error provider cuda: ${missing('libcudart.so.12', 'CUDA 12')}`)
    })

    it('provider auto falls back to the CPU with a warning naming it, and answers', () => {
      const r = run(
        process.execPath,
        [
          '-e',
          `const t = require('@org/tabr-native'); t.loadModel(process.argv[1], { provider: 'auto' }).then(async (m) => console.log(JSON.stringify({ provider: m.info.provider, warnings: m.warnings, label: (await m.predictVideo(process.argv[2])).prediction.label })))`,
          demoDir,
          clips.face,
        ],
        { cwd: gpuApp, env: plainEnv() },
      )
      expect(r.status, r.stderr).toBe(0)
      const out = JSON.parse(r.stdout) as { provider: string; warnings: string[]; label: unknown }
      expect(out.provider).toBe('cpu')
      expect(out.warnings).toContain(`provider auto: ${missing('libcudart.so.12', 'CUDA 12')}; running on the CPU`)
      expect(typeof out.label).toBe('string')
    })

    it("runs v2's face networks on the provider asked: cuda fails extractFeatures the same way, auto extracts on the CPU", () => {
      const r = run(
        process.execPath,
        [
          '-e',
          `const t = require('@org/tabr-native'); (async () => { await (async () => t.extractFeatures(process.argv[1], { spec: 'poc-abs/2', provider: 'cuda' }))().catch((e) => console.log(e.code, e.message)); const f = await t.extractFeatures(process.argv[1], { spec: 'poc-abs/2', provider: 'auto' }); console.log(f.values.length) })()`,
          clips.face,
        ],
        { cwd: gpuApp, env: plainEnv() },
      )
      expect(r.status, r.stderr).toBe(0)
      expect(r.stdout.trim().split('\n')).toEqual([`model_error provider cuda: ${missing('libcudart.so.12', 'CUDA 12')}`, '90'])
    })

    it("finds CUDA libraries in the folder TABR_CUDA_LIBS names (NVIDIA's wheels), then names the next one missing", () => {
      // The CUDA runtime's wheel from PyPI (1 MB; cached): its libcudart.so.12 is found under
      // nvidia/cuda_runtime/lib, so the first library missing becomes cuBLAS's.
      const wheels = join(homedir(), '.cache/tabr-serve/portable/src/wheels')
      const wheel = 'nvidia_cuda_runtime_cu12-12.8.90-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl'
      if (!existsSync(join(wheels, wheel))) {
        const pip = run('python3', ['-m', 'pip', 'download', '-q', '--no-deps', '--only-binary', ':all:', 'nvidia-cuda-runtime-cu12==12.8.90', '-d', wheels])
        expect(pip.status, pip.stderr).toBe(0)
      }
      // The library is loaded into a test process: only the file its pinned hash names.
      expect(
        createHash('sha256')
          .update(readFileSync(join(wheels, wheel)))
          .digest('hex'),
      ).toBe('adade8dcbd0edf427b7204d480d6066d33902cab2a4707dcfc48a2d0fd44ab90')
      const site = join(work, 'site-packages')
      const unzip = run('unzip', ['-q', '-o', join(wheels, wheel), '-d', site])
      expect(unzip.status, unzip.stderr).toBe(0)
      const r = run(process.execPath, ['-e', `require('@org/tabr-native').loadModel(process.argv[1], { provider: 'cuda' }).catch((e) => console.log(e.code, e.message))`, demoDir], {
        cwd: gpuApp,
        env: plainEnv({ TABR_CUDA_LIBS: join(site, 'nvidia') }),
      })
      expect(r.stdout.trim()).toBe(`model_error provider cuda: ${missing('libcublasLt.so.12', 'CUDA 12')}`)
    })
  })
})
