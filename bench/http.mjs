// `make bench` (HTTP part): load against the real service with autocannon, started as
// `tabr-serve serve` in a child process on a free loopback port. Prints tables; never fails.
//   features JSON: req/s, p50, p99 at c = 1, 8, 32
//   the d18 clip:  clips/s, p50, p99 at c = 1, 2, 4, and clips/s and CPU-s per clip at c = 4
//                  with each flow (FLOW=rust, our Farnebäck, and FLOW=opencv) and each demo
//                  model (tabr-demo: poc-abs v1, tabr-demo-v2: v2), alternated
//   RSS at idle and at peak (VmRSS / VmHWM of the service process)
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { freePort, N_FEATURES } from './lib.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(join(root, 'packages/server/package.json'))
const autocannon = require('autocannon')

const memMb = (pid, key) => {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(key))
  return Number(line.split(/\s+/)[1]) / 1024
}
const run = (opts) => new Promise((resolve, reject) => autocannon(opts, (err, res) => (err ? reject(err) : resolve(res))))

const token = randomBytes(36).toString('base64url')
const headers = { authorization: `Bearer ${token}` }

/** Starts the service with extra environment; resolves once /readyz answers. */
async function startService(env = {}) {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const child = spawn(process.execPath, [join(root, 'packages/server/dist/bin/tabr-serve.cjs'), 'serve'], {
    cwd: root,
    env: { ...process.env, AI_API_TOKEN: token, PORT: String(port), LOG_LEVEL: 'warn', MAX_PENDING: '64', REQUEST_TIMEOUT_S: '120', ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  for (let i = 0; i < 200; i++) {
    const ok = await fetch(`${url}/readyz`).then(
      (r) => r.ok,
      () => false,
    )
    if (ok) break
    await new Promise((r) => setTimeout(r, 100))
  }
  return { url, child }
}

/** User + system CPU seconds of a process so far (/proc/PID/stat, USER_HZ = 100). */
const cpuSeconds = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(f[11]) + Number(f[12])) / 100
}

/** `amount` d18 uploads at concurrency c to `model`: clips/s, latencies, and service CPU-s per clip. */
async function clipRun(svc, body, c, amount, model = 'tabr-demo') {
  const cpu0 = cpuSeconds(svc.child.pid)
  const t = performance.now()
  const r = await run({ url: `${svc.url}/infer/${model}`, method: 'POST', headers: { ...headers, 'content-type': 'video/mp4' }, body, connections: c, amount, timeout: 120 })
  const done = r.requests.total || amount
  return { rate: done / ((performance.now() - t) / 1000), cpu: (cpuSeconds(svc.child.pid) - cpu0) / done, r }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

const svc = await startService()
const d18 = join(root, '../shared/fixtures/faces/face_lp_d18_man_neutral_480_liveportrait.mp4')
try {
  const url = svc.url
  const features = JSON.stringify({ features: Array.from({ length: N_FEATURES }, (_, i) => Math.abs(Math.sin(i))) })
  await run({ url: `${url}/infer/tabr-demo`, method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: features, connections: 8, duration: 2 })
  const idle = memMb(svc.child.pid, 'VmRSS:')

  console.log('\n## HTTP: features JSON (POST /infer/tabr-demo)\n')
  console.log('| c | req/s | p50 ms | p99 ms | non-2xx |\n|---|---|---|---|---|')
  for (const c of [1, 8, 32]) {
    const r = await run({ url: `${url}/infer/tabr-demo`, method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: features, connections: c, duration: 6 })
    console.log(`| ${c} | ${r.requests.average.toFixed(0)} | ${r.latency.p50} | ${r.latency.p99} | ${r.non2xx} |`)
  }

  // The Open Inference Protocol's batches against one vector per request, same service.
  const rows = 64
  const header = Buffer.from(
    JSON.stringify({ inputs: [{ name: 'features', datatype: 'FP32', shape: [rows, N_FEATURES], parameters: { binary_data_size: rows * N_FEATURES * 4 } }], parameters: { binary_data_output: true } }),
  )
  const tensor = Buffer.alloc(rows * N_FEATURES * 4)
  for (let i = 0; i < rows * N_FEATURES; i++) tensor.writeFloatLE(Math.abs(Math.sin(i)), i * 4)
  const oipBody = Buffer.concat([header, tensor])
  const oipHeaders = { ...headers, 'inference-header-content-length': String(header.length) }
  await run({ url: `${url}/v2/models/tabr-demo/infer`, method: 'POST', headers: oipHeaders, body: oipBody, connections: 4, duration: 2 })
  console.log(`\n## HTTP: feature vectors per second, one per POST /infer (JSON) vs ${rows} per Open Inference Protocol request (binary), c = 4\n`)
  console.log('| route | requests/s | vectors/s | p50 ms | non-2xx |\n|---|---|---|---|---|')
  const one = await run({ url: `${url}/infer/tabr-demo`, method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: features, connections: 4, duration: 6 })
  const batch = await run({ url: `${url}/v2/models/tabr-demo/infer`, method: 'POST', headers: oipHeaders, body: oipBody, connections: 4, duration: 6 })
  console.log(`| POST /infer/tabr-demo | ${one.requests.average.toFixed(0)} | ${one.requests.average.toFixed(0)} | ${one.latency.p50} | ${one.non2xx} |`)
  console.log(`| POST /v2/models/tabr-demo/infer, ${rows} rows | ${batch.requests.average.toFixed(0)} | ${(batch.requests.average * rows).toFixed(0)} | ${batch.latency.p50} | ${batch.non2xx} |`)
  console.log(`| ratio (vectors/s) | | ${((batch.requests.average * rows) / one.requests.average).toFixed(1)}× | | |`)

  if (existsSync(d18)) {
    const body = readFileSync(d18)
    console.log('\n## HTTP: the d18 clip (raw video/mp4, FLOW=rust)\n')
    console.log('| c | clips/s | p50 ms | p99 ms | p99 / p50 | non-2xx |\n|---|---|---|---|---|---|')
    for (const c of [1, 2, 4]) {
      const { rate, r } = await clipRun(svc, body, c, Math.max(10, 6 * c))
      console.log(`| ${c} | ${rate.toFixed(2)} | ${r.latency.p50} | ${r.latency.p99} | ${(r.latency.p99 / r.latency.p50).toFixed(2)} | ${r.non2xx} |`)
    }
  } else {
    console.log('\nSKIPPED the d18 HTTP benchmarks: ../shared/fixtures not found')
  }
  console.log(`\n| RSS idle (after warm-up) | RSS peak |\n|---|---|\n| ${idle.toFixed(0)} MB | ${memMb(svc.child.pid, 'VmHWM:').toFixed(0)} MB |`)
} finally {
  svc.child.kill('SIGTERM')
}

if (existsSync(d18)) {
  // Both flows in one run, each with both demo models (poc-abs v1 and v2): a service per
  // flow, rounds alternated, 16 clips at c = 4 each.
  const body = readFileSync(d18)
  const flows = { rust: await startService({ FLOW: 'rust' }), opencv: await startService({ FLOW: 'opencv' }) }
  const models = ['tabr-demo', 'tabr-demo-v2']
  try {
    const got = {}
    for (const [flow, s] of Object.entries(flows)) {
      for (const model of models) {
        got[`${model} ${flow}`] = []
        await clipRun(s, body, 4, 4, model)
      }
    }
    for (let round = 0; round < 3; round++) {
      for (const model of models) {
        for (const [flow, s] of Object.entries(flows)) got[`${model} ${flow}`].push(await clipRun(s, body, 4, 16, model))
      }
    }
    const row = (key) => ({ rate: median(got[key].map((g) => g.rate)), cpu: median(got[key].map((g) => g.cpu)), p50: median(got[key].map((g) => g.r.latency.p50)) })
    console.log('\n## HTTP: d18 at c = 4 with each model and flow (16 clips per round, 3 alternated rounds, medians)\n')
    console.log('| model (spec) | FLOW | clips/s | service CPU-s per clip | p50 ms |\n|---|---|---|---|---|')
    for (const model of models) {
      const [ours, cv] = [row(`${model} rust`), row(`${model} opencv`)]
      console.log(`| ${model} | rust | ${ours.rate.toFixed(2)} | ${ours.cpu.toFixed(3)} | ${ours.p50} |`)
      console.log(`| ${model} | opencv | ${cv.rate.toFixed(2)} | ${cv.cpu.toFixed(3)} | ${cv.p50} |`)
      console.log(`| ${model} | rust / opencv | ${(ours.rate / cv.rate).toFixed(2)}× | ${(ours.cpu / cv.cpu).toFixed(2)} | ${(ours.p50 / cv.p50).toFixed(2)} |`)
    }
  } finally {
    for (const s of Object.values(flows)) s.child.kill('SIGTERM')
  }
}
