// `make bench` (HTTP part): load against the real service with autocannon, started as
// `tabr-serve serve` in a child process on a free loopback port. Prints tables; never fails.
//   features JSON: req/s, p50, p99 at c = 1, 8, 32
//   the d18 clip:  clips/s, p50, p99 at c = 1, 2, 4
//   RSS at idle and at peak (VmRSS / VmHWM of the service process)
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { freePort } from './lib.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(join(root, 'packages/server/package.json'))
const autocannon = require('autocannon')

const memMb = (pid, key) => {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(key))
  return Number(line.split(/\s+/)[1]) / 1024
}
const run = (opts) => new Promise((resolve, reject) => autocannon(opts, (err, res) => (err ? reject(err) : resolve(res))))

const token = randomBytes(36).toString('base64url')
const port = await freePort()
const url = `http://127.0.0.1:${port}`
const child = spawn(process.execPath, [join(root, 'packages/server/dist/bin/tabr-serve.cjs'), 'serve'], {
  cwd: root,
  env: { ...process.env, AI_API_TOKEN: token, PORT: String(port), LOG_LEVEL: 'warn', MAX_PENDING: '64', REQUEST_TIMEOUT_S: '120' },
  stdio: ['ignore', 'ignore', 'inherit'],
})
try {
  for (let i = 0; i < 200; i++) {
    const ok = await fetch(`${url}/readyz`).then((r) => r.ok, () => false)
    if (ok) break
    await new Promise((r) => setTimeout(r, 100))
  }
  const headers = { authorization: `Bearer ${token}` }
  const features = JSON.stringify({ features: Array.from({ length: 90 }, (_, i) => Math.abs(Math.sin(i))) })
  await run({ url: `${url}/infer/tabr-demo`, method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: features, connections: 8, duration: 2 })
  const idle = memMb(child.pid, 'VmRSS:')

  console.log('\n## HTTP: features JSON (POST /infer/tabr-demo)\n')
  console.log('| c | req/s | p50 ms | p99 ms | non-2xx |\n|---|---|---|---|---|')
  for (const c of [1, 8, 32]) {
    const r = await run({ url: `${url}/infer/tabr-demo`, method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: features, connections: c, duration: 6 })
    console.log(`| ${c} | ${r.requests.average.toFixed(0)} | ${r.latency.p50} | ${r.latency.p99} | ${r.non2xx} |`)
  }

  const d18 = join(root, '../shared/fixtures/faces/face_lp_d18_man_neutral_480_liveportrait.mp4')
  if (existsSync(d18)) {
    const body = readFileSync(d18)
    console.log('\n## HTTP: the d18 clip (raw video/mp4)\n')
    console.log('| c | clips/s | p50 ms | p99 ms | p99 / p50 | non-2xx |\n|---|---|---|---|---|---|')
    for (const c of [1, 2, 4]) {
      const amount = Math.max(10, 6 * c)
      const t = performance.now()
      const r = await run({ url: `${url}/infer/tabr-demo`, method: 'POST', headers: { ...headers, 'content-type': 'video/mp4' }, body, connections: c, amount, timeout: 120 })
      const rate = (r.requests.total || amount) / ((performance.now() - t) / 1000)
      console.log(`| ${c} | ${rate.toFixed(2)} | ${r.latency.p50} | ${r.latency.p99} | ${(r.latency.p99 / r.latency.p50).toFixed(2)} | ${r.non2xx} |`)
    }
  } else {
    console.log('\nSKIPPED the d18 HTTP benchmark: ../shared/fixtures not found')
  }
  console.log(`\n| RSS idle (after warm-up) | RSS peak |\n|---|---|\n| ${idle.toFixed(0)} MB | ${memMb(child.pid, 'VmHWM:').toFixed(0)} MB |`)
} finally {
  child.kill('SIGTERM')
}
