// The release installed as a user on another Linux would install it: for each of Debian 11,
// 12 and 13, a bare root file system (debootstrap --variant=minbase, made once and cached by
// scripts/portable/rootfs.sh) gets Node 20 and npm copied in and nothing else: no OpenCV, no
// FFmpeg, no compiler. An overlay keeps the cached root bare. In it, with no network at all
// (a fresh network namespace, so nothing can be fetched), plain `npm install` of the release
// tarballs, then probe.cjs: every fixture's decoded frames, v1 and v2 features and both demo
// models' predictions. They must equal, as JSON, what the development build gives on this
// machine (the oracle, the same probe). Needs root (chroot, mount); prints a table.
//
// usage: node tests/install/chroot.mjs DIST_NPM [SUITE...]   (default: bullseye bookworm trixie)
import { spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const repo = resolve(here, '../..')
const [distArg, ...suiteArgs] = process.argv.slice(2)
if (!distArg) throw new Error('usage: chroot.mjs DIST_NPM [SUITE...]')
const dist = resolve(distArg)
const suites = suiteArgs.length ? suiteArgs : ['bullseye', 'bookworm', 'trixie']
const fixtures = resolve(repo, '../shared/fixtures')
if (!existsSync(fixtures)) throw new Error(`the shared fixtures are missing: ${fixtures}`)
if (process.getuid?.() !== 0) throw new Error('the install tests need root (debootstrap, chroot, mount)')

/** Every media file of the shared fixtures (all kinds: faces, odd, derived, hostile). */
function media(dir) {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? (e.name === 'licenses' ? [] : media(join(dir, e.name))) : [join(dir, e.name)]))
    .filter((f) => /\.(mp4|mov|mkv|webm|avi|m4v|3gp|ts|mpg|flv|ogv)$/i.test(f))
    .sort()
}
const videos = media(fixtures)
if (videos.length === 0) throw new Error(`no media in ${fixtures}`)
const tarballs = ['org-tabr-native-', 'org-tabr-native-linux-x64-gnu-'].map((prefix) => {
  const t = readdirSync(dist).find((f) => f.startsWith(prefix) && /^[0-9]/.test(f.slice(prefix.length)))
  if (!t) throw new Error(`${dist} has no ${prefix}*.tgz: run make pack`)
  return join(dist, t)
})
const demo = { v1: join(repo, 'models/tabr-demo'), v2: join(repo, 'models/tabr-demo-v2') }

const sh = (cmd, args, opts = {}) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 << 20, ...opts })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stderr}\n${r.stdout}`)
  return r.stdout
}
const seconds = (t0) => ((performance.now() - t0) / 1000).toFixed(1)

// The oracle: the development build of this tree, on this machine.
let t0 = performance.now()
// Nothing of the caller's environment may steer the oracle's runtime or addon.
const oracleEnv = { ...process.env }
for (const k of ['ORT_DYLIB_PATH', 'ORT_PROVIDER', 'NAPI_RS_NATIVE_LIBRARY_PATH', 'TABR_CUDA_LIBS']) delete oracleEnv[k]
const oracle = JSON.parse(sh(process.execPath, [join(here, 'probe.cjs'), join(repo, 'packages/tabr-native'), demo.v1, demo.v2, ...videos], { env: oracleEnv }))
console.log(`oracle: the development build on ${videos.length} fixtures in ${seconds(t0)} s (glibc ${oracle.glibc})`)

const nodeBin = process.execPath
const npmDir = resolve(dirname(nodeBin), '../lib/node_modules/npm')
if (!existsSync(join(npmDir, 'bin/npm-cli.js'))) throw new Error(`npm is not beside node (${npmDir})`)

const rows = []
let failed = false
for (const suite of suites) {
  const base = sh(join(repo, 'scripts/portable/rootfs.sh'), [suite]).trim()
  const work = mkdtempSync(join(tmpdir(), `tabr-install-${suite}-`))
  const root = join(work, 'root')
  const mounts = []
  try {
    for (const d of ['upper', 'ovl', 'root']) mkdirSync(join(work, d))
    sh('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${base},upperdir=${work}/upper,workdir=${work}/ovl`, root])
    mounts.push(root)
    // Node 20 and npm, nothing else.
    cpSync(nodeBin, join(root, 'usr/local/bin/node'))
    cpSync(npmDir, join(root, 'usr/local/lib/node_modules/npm'), { recursive: true })
    sh('ln', ['-s', '../lib/node_modules/npm/bin/npm-cli.js', join(root, 'usr/local/bin/npm')])
    // The tarballs, the probe, the demo models and the fixtures, under /work.
    for (const [from, to] of [
      [dist, 'work/dist'],
      [here, 'work/probe'],
      [demo.v1, 'work/models/tabr-demo'],
      [demo.v2, 'work/models/tabr-demo-v2'],
      [fixtures, 'work/fixtures'],
    ])
      cpSync(from, join(root, to), { recursive: true })
    mkdirSync(join(root, 'work/app'))
    writeFileSync(join(root, 'work/app/package.json'), '{ "name": "tabr-install-test", "private": true }\n')
    for (const [src, kind] of [
      ['/proc', 'proc'],
      ['/dev', 'dev'],
    ]) {
      const at = join(root, src)
      sh('mount', kind === 'proc' ? ['-t', 'proc', 'proc', at] : ['--bind', src, at])
      mounts.push(at)
    }
    const inRoot = (command) =>
      // npm still asks the registry for the platform package's metadata (an optional
      // dependency, then taken from its tarball) and for its own newest version; with no
      // network those only fail, so they are told not to retry and wait.
      spawnSync(
        'unshare',
        ['--net', 'chroot', root, '/usr/bin/env', '-i', 'PATH=/usr/local/bin:/usr/bin:/bin', 'HOME=/root', 'npm_config_fetch_retries=0', 'npm_config_update_notifier=false', '/bin/sh', '-c', command],
        {
          encoding: 'utf8',
          maxBuffer: 256 << 20,
        },
      )
    const os = inRoot('. /etc/os-release && echo "$PRETTY_NAME"').stdout.trim()
    const absent = inRoot('ls /usr/lib/x86_64-linux-gnu | grep -E "libopencv|libavcodec|libonnxruntime" || true').stdout.trim()
    if (absent) throw new Error(`${suite}'s root is not bare: ${absent}`)

    t0 = performance.now()
    const install = inRoot(`cd /work/app && npm install ${tarballs.map((t) => `/work/dist/${basename(t)}`).join(' ')}`)
    const installS = seconds(t0)
    if (install.status !== 0) throw new Error(`npm install failed in ${suite}:\n${install.stderr}\n${install.stdout}`)

    t0 = performance.now()
    const probeCmd = ['node /work/probe/probe.cjs @org/tabr-native /work/models/tabr-demo /work/models/tabr-demo-v2', ...videos.map((v) => `/work/fixtures/${v.slice(fixtures.length + 1)}`)].join(' ')
    const probe = inRoot(`cd /work/app && ${probeCmd}`)
    if (probe.status !== 0) throw new Error(`the probe failed in ${suite}:\n${probe.stderr}`)
    const got = JSON.parse(probe.stdout)
    const probeS = seconds(t0)

    const differ = got.results.filter((r, i) => JSON.stringify(r) !== JSON.stringify(oracle.results[i])).map((r) => r.video)
    if (JSON.stringify(got.predictVideo) !== JSON.stringify(oracle.predictVideo)) differ.push('predictVideo')
    const answered = got.results.filter((r) => !r.v1.error).length
    const ok =
      differ.length === 0 &&
      answered > 0 &&
      got.results.length === videos.length &&
      got.addon === '/work/app/node_modules/@org/tabr-native-linux-x64-gnu/tabr-native.linux-x64-gnu.node' &&
      got.runtime === '/work/app/node_modules/@org/tabr-native-linux-x64-gnu/libonnxruntime.so.1'
    if (!ok) failed = true
    rows.push({ suite, os, glibc: got.glibc, node: got.node, installS, probeS, answered, differ, addon: got.addon, runtime: got.runtime, ok })
  } catch (e) {
    failed = true
    rows.push({ suite, error: e.message })
  } finally {
    // A mount left in place (the bind of /dev above all) must never be walked by the removal.
    const stuck = mounts.reverse().filter((m) => spawnSync('umount', ['-l', m]).status !== 0)
    if (stuck.length) {
      failed = true
      console.error(`left mounted, so ${work} is kept: ${stuck.join(', ')}`)
    } else rmSync(work, { recursive: true, force: true })
  }
}

console.log(`\n| Debian | glibc | Node | npm install s | probe s | fixtures answered | equal to the development build |`)
console.log('|---|---|---|---|---|---|---|')
for (const r of rows) {
  if (r.error) {
    console.log(`| ${r.suite} | | | | | | FAILED: ${r.error.split('\n')[0]} |`)
    console.error(r.error)
    continue
  }
  const verdict = r.ok ? `yes, all ${videos.length} (frames, features, predictions)` : `NO: ${r.differ.join(', ') || `addon ${r.addon}, runtime ${r.runtime}`}`
  console.log(`| ${r.os} | ${r.glibc} | ${r.node} | ${r.installS} | ${r.probeS} | ${r.answered}/${videos.length} | ${verdict} |`)
}
process.exit(failed ? 1 : 0)
