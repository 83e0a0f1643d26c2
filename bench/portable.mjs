// The release build against the development build, on this machine, in the same run: the
// portable addon (make portable: Zig toward glibc 2.28, its own FFmpeg and OpenCV linked in,
// ONNX Runtime beside it) and the development addon (Debian 12's libraries, onnxruntime-node's
// runtime) each extract and predict the d18 clip of ../shared, for v1 and v2, in child
// processes started in alternating order, 7 rounds. Each child warms up once and reports the
// median of 3 predictVideo calls (extraction + TabR); the table shows the medians over
// rounds and the ratio. Also the files' sizes. Tables, never pass/fail.
//
// usage: node bench/portable.mjs   (after make build and make portable)
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { median } from './lib.mjs'

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const clip = resolve(repo, '../shared/fixtures/faces/face_lp_d18_man_neutral_480_liveportrait.mp4')
const portable = join(repo, 'dist/portable')
const builds = {
  development: { env: {}, addon: join(repo, 'packages/tabr-native/tabr-native.linux-x64-gnu.node') },
  portable: {
    env: { NAPI_RS_NATIVE_LIBRARY_PATH: join(portable, 'tabr-native.linux-x64-gnu.node'), ORT_DYLIB_PATH: join(portable, 'cpu/libonnxruntime.so.1') },
    addon: join(portable, 'tabr-native.linux-x64-gnu.node'),
  },
}
for (const f of [clip, builds.portable.addon, builds.development.addon]) {
  if (!existsSync(f)) throw new Error(`${f} is missing (make build, make portable, ../shared)`)
}
const ROUNDS = 7
const child = `
const t = require(${JSON.stringify(join(repo, 'packages/tabr-native'))})
const median = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1]
;(async () => {
  const out = {}
  for (const [spec, dir] of [['v1', 'models/tabr-demo'], ['v2', 'models/tabr-demo-v2']]) {
    const m = await t.loadModel(${JSON.stringify(repo)} + '/' + dir, { sessions: 1 })
    await m.predictVideo(process.argv[1])
    const ms = []
    for (let i = 0; i < 3; i++) { const t0 = performance.now(); await m.predictVideo(process.argv[1]); ms.push(performance.now() - t0) }
    out[spec] = median(ms)
  }
  console.log(JSON.stringify(out))
})()
`
const times = { development: { v1: [], v2: [] }, portable: { v1: [], v2: [] } }
for (let r = 0; r < ROUNDS; r++) {
  const order = r % 2 ? ['portable', 'development'] : ['development', 'portable']
  for (const b of order) {
    const p = spawnSync(process.execPath, ['-e', child, clip], { encoding: 'utf8', env: { ...process.env, ...builds[b].env } })
    if (p.status !== 0) throw new Error(`${b}: ${p.stderr}`)
    const o = JSON.parse(p.stdout)
    times[b].v1.push(o.v1)
    times[b].v2.push(o.v2)
  }
}
console.log(`\nportable vs development build, d18 (216 frames, 480²), predictVideo ms, medians of ${ROUNDS} alternated rounds\n`)
console.log('| spec | development ms | portable ms | portable / development |')
console.log('|---|---|---|---|')
for (const spec of ['v1', 'v2']) {
  const [d, p] = [median(times.development[spec]), median(times.portable[spec])]
  console.log(`| poc-abs/${spec.slice(1)} | ${d.toFixed(0)} | ${p.toFixed(0)} | ${(p / d).toFixed(3)} |`)
}
const mb = (n) => `${(n / 1e6).toFixed(1)} MB`
const gz = (f) => gzipSync(readFileSync(f), { level: 9 }).length
console.log('\n| file | size | gzip -9 |')
console.log('|---|---|---|')
for (const [name, f] of [
  ['development addon (links Debian 12 FFmpeg + OpenCV)', builds.development.addon],
  ['portable addon (FFmpeg + OpenCV inside, unstripped)', builds.portable.addon],
  ['ONNX Runtime CPU library', join(portable, 'cpu/libonnxruntime.so.1')],
])
  console.log(`| ${name} | ${mb(statSync(f).size)} | ${mb(gz(f))} |`)
