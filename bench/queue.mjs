// `make bench` (queue part): queue mode on this machine, with real processes. Debian's
// redis-server on a free loopback port, the API as `tabr-serve serve` (EXECUTION_MODE=queue)
// and N `tabr-serve worker` processes (CONCURRENCY=1 each). Prints tables; never fails.
//   throughput: 20 d18 jobs submitted at once, with 1, 2 and 4 workers
//   added latency: one request at a time, sync mode vs queue mode (features JSON and d18)
import { execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort, median, N_FEATURES } from './lib.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const bin = join(root, 'packages/server/dist/bin/tabr-serve.cjs')
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const token = randomBytes(36).toString('base64url')
const headers = { authorization: `Bearer ${token}` }
const redisPort = await freePort()
const redisUrl = `redis://127.0.0.1:${redisPort}`
const procs = []
const cwd = mkdtempSync(join(tmpdir(), 'tabr-bench-queue-'))
const base = {
  PATH: process.env.PATH,
  HOME: process.env.HOME,
  AI_API_TOKEN: token,
  REDIS_URL: redisUrl,
  LOG_LEVEL: 'warn',
  MODEL_REGISTRY: `tabr-demo:tabr:${join(root, 'models/tabr-demo')}`,
  REQUEST_TIMEOUT_S: '300',
  MAX_PENDING: '64',
}

function launch(args, env, readyLine) {
  const p = spawn(args[0], args.slice(1), { cwd, env, stdio: ['ignore', 'pipe', 'inherit'] })
  procs.push(p)
  if (!readyLine) return { p, ready: Promise.resolve() }
  const ready = new Promise((resolve, reject) => {
    let out = ''
    p.stdout.on('data', (d) => {
      out += d
      if (out.includes(readyLine)) resolve()
    })
    p.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)))
  })
  return { p, ready }
}

async function api(mode) {
  const port = await freePort()
  launch([process.execPath, bin, 'serve'], { ...base, PORT: String(port), EXECUTION_MODE: mode }, null)
  const url = `http://127.0.0.1:${port}`
  for (let i = 0; i < 300; i++) {
    const ok = await fetch(`${url}/readyz`).then(
      (r) => r.ok,
      () => false,
    )
    if (ok) return url
    await sleep(100)
  }
  throw new Error(`the ${mode} API did not become ready`)
}

const workers = []
async function setWorkers(n) {
  while (workers.length > n) {
    const w = workers.pop()
    await new Promise((r) => {
      w.once('exit', r)
      w.kill('SIGTERM')
    })
  }
  const starting = []
  while (workers.length + starting.length < n) {
    starting.push(launch([process.execPath, bin, 'worker'], { ...base, LOG_LEVEL: 'info', CONCURRENCY: '1' }, 'worker ready'))
  }
  await Promise.all(starting.map((s) => s.ready))
  for (const s of starting) {
    s.p.stdout.resume()
    workers.push(s.p)
  }
}

const post = async (url, body, type) => {
  const t = performance.now()
  const r = await fetch(`${url}/infer/tabr-demo`, { method: 'POST', body, headers: { ...headers, 'content-type': type } })
  await r.arrayBuffer()
  if (r.status !== 200) throw new Error(`HTTP ${r.status}`)
  return performance.now() - t
}

try {
  launch(['redis-server', '--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], process.env, null)
  let clip = join(root, '../shared/fixtures/faces/face_lp_d18_man_neutral_480_liveportrait.mp4')
  let clipName = 'd18'
  if (!existsSync(clip)) {
    clip = join(cwd, 'synthetic.mkv')
    clipName = 'a synthetic 640×480 3 s clip (../shared absent)'
    execFileSync(join(process.env.TABR_BIN_DIR ?? join(process.env.HOME, '.cache/tabr-serve/target/release'), 'tabr-synth'), [clip, '--frames', '90', '--noise', '0.5'], { stdio: 'ignore' })
  }
  const video = readFileSync(clip)
  const features = JSON.stringify({ features: Array.from({ length: N_FEATURES }, (_, i) => Math.abs(Math.sin(i))) })
  const syncUrl = await api('sync')
  const queueUrl = await api('queue')

  console.log(`\n## Queue mode: 20 jobs (${clipName}) submitted at once, N worker processes (CONCURRENCY=1 each)\n`)
  console.log('| workers | jobs/s | wall s | p50 ms | vs 1 worker |\n|---|---|---|---|---|')
  let one
  for (const n of [1, 2, 4]) {
    await setWorkers(n)
    await post(queueUrl, video, 'video/mp4') // warm-up
    const t = performance.now()
    const lat = await Promise.all(Array.from({ length: 20 }, () => post(queueUrl, video, 'video/mp4')))
    const wall = (performance.now() - t) / 1000
    one ??= 20 / wall
    console.log(`| ${n} | ${(20 / wall).toFixed(2)} | ${wall.toFixed(1)} | ${median(lat).toFixed(0)} | ${(20 / wall / one).toFixed(2)}× |`)
  }

  await setWorkers(1)
  console.log('\n## Added latency of queue mode, one request at a time (medians; 1 worker)\n')
  console.log('| request | sync ms | queue ms | added ms |\n|---|---|---|---|')
  for (const [what, body, type, n] of [
    ['features JSON', features, 'application/json', 41],
    [clipName, video, 'video/mp4', 9],
  ]) {
    const s = []
    const q = []
    for (let i = 0; i < n; i++) {
      s.push(await post(syncUrl, body, type))
      q.push(await post(queueUrl, body, type))
    }
    console.log(`| ${what} | ${median(s).toFixed(1)} | ${median(q).toFixed(1)} | ${(median(q) - median(s)).toFixed(1)} |`)
  }
} finally {
  for (const p of procs.reverse()) p.kill('SIGTERM')
  await sleep(300)
  rmSync(cwd, { recursive: true, force: true })
}
