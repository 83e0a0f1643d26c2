// Release tarballs of @org/tabr-native and its platform packages, offline, never published.
//
// The napi-rs layout: the main package holds the loader (index.js over the generated binding.js, index.d.ts) and
// names one platform package per target of its `napi` block in optionalDependencies; each
// platform package (npm/<platform>/, made by `napi create-npm-dirs`) holds that target's
// `.node`. package.json lists them as `workspace:*` (pnpm links the folders); this script
// pins them to the release version in a staging copy and runs `npm pack` there, so the
// checkout is left as it was and nothing leaves the machine. The `.node` is the release build
// of `make build`, with its debug sections stripped. Both packages get THIRD-PARTY-NOTICES.txt,
// the license of the Haar cascade compiled into the addon, taken from the cascade file itself.
//
// usage: node packages/tabr-native/scripts/pack.mjs [--out DIR]   (default <repo>/dist/npm)
// prints the tarball paths, main package first.
import { execFileSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { readNapiConfig } from '@napi-rs/cli'

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const repo = resolve(pkgDir, '../..')
const { values: args } = parseArgs({ options: { out: { type: 'string', default: join(repo, 'dist', 'npm') } } })
const out = resolve(args.out)
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

function stagePlatform(stage, target, notice) {
  const src = join(pkgDir, 'npm', target.platformArchABI)
  const manifest = JSON.parse(readFileSync(join(src, 'package.json'), 'utf8'))
  if (manifest.version !== packageJson.version) {
    throw new Error(`${src}/package.json is ${manifest.version}, package.json ${packageJson.version}: run 'napi version'`)
  }
  const binary = `${binaryName}.${target.platformArchABI}.node`
  if (!existsSync(join(pkgDir, binary))) {
    throw new Error(`${binary} is missing: run 'make build' first`)
  }
  const dir = join(stage, target.platformArchABI)
  mkdirSync(dir)
  for (const f of ['package.json', 'README.md']) copyFileSync(join(src, f), join(dir, f))
  writeFileSync(join(dir, NOTICES), notice)
  execFileSync('strip', ['--strip-debug', '-o', join(dir, binary), join(pkgDir, binary)])
  return { dir, name: manifest.name }
}

function stageMain(stage, platforms, notice) {
  const dir = join(stage, 'main')
  mkdirSync(dir)
  for (const f of packageJson.files) {
    if (f === NOTICES) writeFileSync(join(dir, f), notice)
    else copyFileSync(join(pkgDir, f), join(dir, f))
  }
  // What a consumer installs: no build or test scripts, no dev tooling.
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
  const notice = cascadeNotice()
  const platforms = targets.map((t) => stagePlatform(stage, t, notice))
  const tarballs = [npmPack(stageMain(stage, platforms, notice)), ...platforms.map((p) => npmPack(p.dir))]
  console.log(tarballs.join('\n'))
} finally {
  rmSync(stage, { recursive: true, force: true })
}
