// Release tarballs of @org/tabr-native and its platform packages, offline, never published.
//
// The napi-rs layout: the main package holds the loader (index.js over the generated binding.js,
// index.d.ts) and names one platform package per target of its `napi` block in
// optionalDependencies; each platform package (npm/<platform>/) holds that target's `.node`.
// package.json lists them as `workspace:*` (pnpm links the folders); this script pins them to
// the release version in a staging copy and runs `npm pack` there, so the checkout is left as
// it was and nothing leaves the machine.
//
// What goes in is the portable build (`make portable`, scripts/portable/), never the
// development one: the addon built with Zig toward glibc 2.28 with FFmpeg and OpenCV linked
// in, stripped, and ONNX Runtime beside it: the CPU library in linux-x64-gnu, the CUDA build
// in linux-x64-gpu (not a napi target: the same addon, installed explicitly and preferred by
// index.js when present). THIRD-PARTY-NOTICES.txt lists every bundled library with its licence.
//
// usage: node packages/tabr-native/scripts/pack.mjs [--out DIR] [--portable DIR]
//   defaults <repo>/dist/npm and <repo>/dist/portable; prints the tarball paths: main, gnu, gpu.
import { execFileSync } from 'node:child_process'
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { readNapiConfig } from '@napi-rs/cli'

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const repo = resolve(pkgDir, '../..')
const { values: args } = parseArgs({
  options: {
    out: { type: 'string', default: join(repo, 'dist', 'npm') },
    portable: { type: 'string', default: join(repo, 'dist', 'portable') },
  },
})
const out = resolve(args.out)
const portable = resolve(args.portable)
const GPU = 'linux-x64-gpu'
const NOTICES = 'THIRD-PARTY-NOTICES.txt'

const { packageJson, targets, binaryName, packageName } = await readNapiConfig(join(pkgDir, 'package.json'))

/** The cascade's license, as its own header comment states it. */
function cascadeNotice() {
  const xml = readFileSync(join(repo, 'crates/tabr-core/assets/haarcascade_frontalface_default.xml'), 'utf8')
  const header = /<!--([\s\S]*?)-->/.exec(xml)
  if (!header) throw new Error('the Haar cascade has no license header')
  return (
    `${packageName} compiles OpenCV's haarcascade_frontalface_default.xml (the frontal face\n` +
    `detector, as Debian's opencv-data ships it) into its native addon. Its header and license:\n` +
    `${header[1].replace(/\s+$/, '')}\n`
  )
}

/** A `NAME=value` line of one of the portable build scripts (the one place it is written). */
function scriptValue(script, name) {
  const m = new RegExp(`^${name}=(\\S+)$`, 'm').exec(readFileSync(join(repo, 'scripts/portable', script), 'utf8'))
  if (!m) throw new Error(`scripts/portable/${script} has no ${name}=`)
  return m[1]
}

/** The Rust crates compiled into the addon, with their licences (cargo metadata). */
function crateList() {
  const meta = JSON.parse(
    execFileSync('cargo', ['metadata', '--format-version', '1', '--filter-platform', 'x86_64-unknown-linux-gnu'], {
      cwd: repo,
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    }),
  )
  const byId = new Map(meta.packages.map((p) => [p.id, p]))
  const nodes = new Map(meta.resolve.nodes.map((n) => [n.id, n]))
  const root = meta.packages.find((p) => p.name === 'tabr-node').id
  const seen = new Set()
  const walk = (id) => {
    if (seen.has(id)) return
    seen.add(id)
    for (const d of nodes.get(id).deps) if (d.dep_kinds.some((k) => k.kind === null)) walk(d.pkg)
  }
  walk(root)
  return [...seen]
    .map((id) => byId.get(id))
    .filter((p) => p.source)
    .map((p) => `  ${p.name} ${p.version}: ${p.license ?? p.license_file ?? 'see the crate'}`)
    .sort()
    .join('\n')
}

/** Every bundled library of a platform package, with its licence text. */
function platformNotice(runtimeDir) {
  const lic = (f) => readFileSync(join(portable, 'licenses', f), 'utf8').trim()
  const rt = (f) => readFileSync(join(runtimeDir, f), 'utf8').trim()
  const part = (title, body) => `\n${'='.repeat(78)}\n${title}\n${'='.repeat(78)}\n${body}\n`
  return (
    `Third-party software in this package, and its licences.\n` +
    part('The frontal face Haar cascade (OpenCV)', cascadeNotice()) +
    part(
      `FFmpeg ${scriptValue('ffmpeg.sh', 'FFMPEG_SRC_VERSION')} (libavformat, libavcodec, libavutil, libswscale): LGPL 2.1 or later`,
      `Linked statically into the addon. Built from Debian's source package (apt-get source ffmpeg=${scriptValue('ffmpeg.sh', 'FFMPEG_SRC_VERSION')})\n` +
        `by scripts/portable/ffmpeg.sh of this project's source, LGPL only (no GPL or non-free part), with\n` +
        `  demuxers: ${scriptValue('ffmpeg.sh', 'DEMUXERS')}\n  decoders: ${scriptValue('ffmpeg.sh', 'DECODERS')}\n` +
        `  parsers:  ${scriptValue('ffmpeg.sh', 'PARSERS')}\n` +
        `and nothing else. The complete source of the addon and the script are this project's, so the addon can be\n` +
        `rebuilt against a modified FFmpeg (LGPL 2.1, section 6).\n\n${lic('COPYING.FFmpeg')}`,
    ) +
    part(`dav1d ${scriptValue('ffmpeg.sh', 'DAV1D_SRC_VERSION')} (AV1 decoding): BSD 2-clause`, lic('COPYING.dav1d')) +
    part(
      `OpenCV ${scriptValue('opencv.sh', 'OPENCV_SRC_VERSION')} (core, imgproc, objdetect, video, calib3d, features2d, flann): Apache 2.0`,
      `Linked statically, built from Debian's source package by scripts/portable/opencv.sh.\n\n${lic('LICENSE.OpenCV')}`,
    ) +
    part(`zlib ${scriptValue('opencv.sh', 'ZLIB_SRC_VERSION')}: zlib licence`, lic('LICENSE.zlib')) +
    part('LLVM libc++, libc++abi and libunwind (linked in by Zig): Apache 2.0 with LLVM exceptions', lic('LICENSE.libcxx')) +
    part(`ONNX Runtime ${scriptValue('runtime.sh', 'ORT_VERSION')} (libonnxruntime.so.1 and its providers): MIT`, `${rt('LICENSE.onnxruntime')}\n\n${rt('ThirdPartyNotices.onnxruntime.txt')}`) +
    part('Rust crates compiled into the addon (name, version, licence)', crateList())
  )
}

/** `npm pack` of a staged directory into `out`; returns the tarball's path. */
function npmPack(dir) {
  const json = execFileSync('npm', ['pack', '--json', '--pack-destination', out], {
    cwd: dir,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const [{ filename }] = JSON.parse(json)
  return join(out, filename)
}

/** Copies `from` to `to` with its symbol tables and debug sections stripped. */
function stripped(from, to) {
  execFileSync('strip', ['--strip-unneeded', '-o', to, from])
  chmodSync(to, 0o755)
}

/** A platform package: its manifest and README, the addon, and the runtime of `runtimeDir`. */
function stagePlatform(stage, platform, runtimeDir) {
  const src = join(pkgDir, 'npm', platform)
  const manifest = JSON.parse(readFileSync(join(src, 'package.json'), 'utf8'))
  if (manifest.version !== packageJson.version) {
    const how = platform === GPU ? 'set it by hand (not a napi target)' : "run 'napi version'"
    throw new Error(`${src}/package.json is ${manifest.version}, package.json ${packageJson.version}: ${how}`)
  }
  const addon = join(portable, `${binaryName}.linux-x64-gnu.node`)
  if (!existsSync(addon) || !existsSync(runtimeDir)) {
    throw new Error(`the portable build is missing from ${portable}: run 'make portable' first`)
  }
  const dir = join(stage, platform)
  mkdirSync(dir)
  for (const f of ['package.json', 'README.md']) copyFileSync(join(src, f), join(dir, f))
  writeFileSync(join(dir, NOTICES), platformNotice(runtimeDir))
  for (const f of manifest.files) {
    if (f === NOTICES) continue
    stripped(f.endsWith('.node') ? addon : join(runtimeDir, f), join(dir, f))
  }
  return { dir, name: manifest.name }
}

function stageMain(stage, platforms, notice) {
  const dir = join(stage, 'main')
  mkdirSync(dir)
  for (const f of packageJson.files) {
    if (f === NOTICES) writeFileSync(join(dir, f), notice)
    else copyFileSync(join(pkgDir, f), join(dir, f))
  }
  // What a consumer installs: no build or test scripts, no dev tooling, no dependency (the
  // platform package brings its own runtime).
  const { scripts: _scripts, devDependencies: _dev, ...release } = packageJson
  const listed = Object.keys(packageJson.optionalDependencies ?? {}).sort()
  const built = platforms.map((p) => p.name).sort()
  if (listed.join() !== built.join()) throw new Error(`optionalDependencies (${listed}) must name the platform packages of the napi targets (${built})`)
  // In the workspace they are `workspace:*` links; a release pins them to this version.
  release.optionalDependencies = Object.fromEntries(built.map((name) => [name, packageJson.version]))
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify(release, null, 2)}\n`)
  return dir
}

mkdirSync(out, { recursive: true })
const stage = mkdtempSync(join(tmpdir(), 'tabr-native-pack-'))
try {
  const platforms = targets.map((t) => stagePlatform(stage, t.platformArchABI, join(portable, 'cpu')))
  const gpu = stagePlatform(stage, GPU, join(portable, 'gpu'))
  const tarballs = [npmPack(stageMain(stage, platforms, cascadeNotice())), ...platforms.map((p) => npmPack(p.dir)), npmPack(gpu.dir)]
  console.log(tarballs.join('\n'))
} finally {
  rmSync(stage, { recursive: true, force: true })
}
