// Queue mode across hosts, simulated on this machine with network namespaces: one namespace
// per "host" (Redis, the API, worker A, worker B) on a bridge of their own (10.77.0.0/24), each
// worker pinned to its own core (taskset) with CONCURRENCY=1. The client and a callback
// receiver sit on the bridge's own address. Measured, in one run:
//   - scaling: d18 throughput with worker host A alone and with A and B (alternated rounds);
//   - a worker host dies (its processes SIGKILLed, its link down) with jobs in flight: every
//     job still ends once (one callback per job), and how long the batch took after the kill;
//   - a partition: worker host B cut off for 10 s (`ip link set down`) and healed: no job
//     lost, no callback twice;
//   - added latency between the API and Redis: every reply Redis sends the API 20 ms later,
//     sync p50/p99 against the same path without delay, alternated rounds. The delay is a
//     relay of this script's (see delayRelay), not `tc netem`: this kernel has no netem
//     ("Specified qdisc kind is unknown"), and the relay delays the API's link alone (netem
//     on Redis's interface would delay the workers too) and can be switched per round.
// Only loopback and these namespaces are ever targets. Needs root (ip netns). Bounded:
// every wait has a deadline; everything made is removed at the end. Tables, never pass/fail,
// except that it stops with an error when a job is lost or answered twice.
//
// usage: node bench/scale-out.mjs   (after make build; ../shared's d18 clip)
import { spawn, spawnSync } from 'node:child_process'
import { createHmac, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import { createServer as createTcpServer, connect } from 'node:net'
import { availableParallelism, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { median, until as untilOk } from './lib.mjs'

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const clip = resolve(repo, '../shared/fixtures/faces/face_lp_d18_man_neutral_480_liveportrait.mp4')
const bin = join(repo, 'packages/server/dist/bin/tabr-serve.cjs')
if (process.getuid?.() !== 0) throw new Error('scale-out needs root (ip netns)')
const NET = '10.77.0'
const BRIDGE = 'tabrbr0'
const HOSTS = { redis: 1, api: 2, wa: 3, wb: 4 }
const JOB_LOCK_S = 3
const ROUNDS = 3
const BATCH = 8
const DELAY_MS = 20
const LATENCY_ROUNDS = 4
const RELAY_PORT = 6390
const token = randomBytes(30).toString('base64url')
const secret = randomBytes(30).toString('base64url')
const work = mkdtempSync(join(tmpdir(), 'tabr-scale-'))
const procs = {}
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms))
const sh = (...args) => {
  const r = spawnSync(args[0], args.slice(1), { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`)
  return r.stdout
}
const quiet = (...args) => spawnSync(args[0], args.slice(1), { encoding: 'utf8' })
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]
/** lib's until, polling every 100 ms (the batch times below are read at that resolution). */
const until = (what, ok, ms) => untilOk(what, ok, ms, 100)

function netUp() {
  netDown()
  sh('ip', 'link', 'add', BRIDGE, 'type', 'bridge')
  sh('ip', 'addr', 'add', `${NET}.254/24`, 'dev', BRIDGE)
  sh('ip', 'link', 'set', BRIDGE, 'up')
  for (const [h, n] of Object.entries(HOSTS)) {
    sh('ip', 'netns', 'add', `tabr-${h}`)
    sh('ip', 'link', 'add', `tv-${h}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', `tabr-${h}`)
    sh('ip', 'link', 'set', `tv-${h}`, 'master', BRIDGE, 'up')
    sh('ip', 'netns', 'exec', `tabr-${h}`, 'ip', 'addr', 'add', `${NET}.${n}/24`, 'dev', 'eth0')
    sh('ip', 'netns', 'exec', `tabr-${h}`, 'ip', 'link', 'set', 'eth0', 'up')
    sh('ip', 'netns', 'exec', `tabr-${h}`, 'ip', 'link', 'set', 'lo', 'up')
  }
}
function netDown() {
  for (const h of Object.keys(HOSTS)) {
    killHost(h)
    quiet('ip', 'netns', 'del', `tabr-${h}`)
    quiet('ip', 'link', 'del', `tv-${h}`)
  }
  quiet('ip', 'link', 'del', BRIDGE)
}

/** A process in a host's namespace; resolves once a line of its output matches `ready`. */
function start(host, name, cmd, env, ready, core) {
  const pre = core === undefined ? [] : ['taskset', '-c', String(core)]
  const p = spawn('ip', ['netns', 'exec', `tabr-${host}`, ...pre, ...cmd], { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  procs[name] = p
  let out = ''
  return new Promise((ok, fail) => {
    const look = (c) => {
      out = (out + c).slice(-8000)
      if (ready.test(out)) ok(p)
    }
    p.stdout.on('data', look)
    p.stderr.on('data', look)
    p.on('exit', (code) => fail(new Error(`${name} exited (${code}): ${out.slice(-400)}`)))
    setTimeout(() => fail(new Error(`${name} not ready in 60 s: ${out.slice(-400)}`)), 60_000).unref()
  })
}
const service = {
  EXECUTION_MODE: 'queue',
  REDIS_URL: `redis://${NET}.${HOSTS.redis}:6379`,
  MODEL_REGISTRY: `tabr-demo:tabr:${join(repo, 'models/tabr-demo')}`,
  JOB_LOCK_S: String(JOB_LOCK_S),
  LOG_LEVEL: 'info',
  CALLBACK_ALLOWED_HOSTS: `${NET}.254:9000`,
  CALLBACK_SECRET: secret,
}
/** SIGTERM, then SIGKILL past 15 s; resolves once the process has exited. */
function stop(p) {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve()
  return new Promise((ok) => {
    const hard = setTimeout(() => p.kill('SIGKILL'), 15_000)
    p.once('exit', () => {
      clearTimeout(hard)
      ok()
    })
    p.kill('SIGTERM')
  })
}
/** The API on its host, reaching Redis at `redisUrl`. */
const startApi = (redisUrl) =>
  start('api', 'api', [process.execPath, bin, 'serve'], { ...service, REDIS_URL: redisUrl, AI_API_TOKEN: token, HOST: `${NET}.${HOSTS.api}`, PORT: '8000' }, /"msg":"models ready"/)
const worker = (host, core) => start(host, host, [process.execPath, bin, 'worker'], { ...service, CONCURRENCY: '1' }, /"msg":"(worker ready|ready)/, core)
function killHost(host) {
  quiet('ip', 'netns', 'pids', `tabr-${host}`)
    .stdout.split('\n')
    .filter(Boolean)
    .forEach((pid) => quiet('kill', '-9', pid))
}

/**
 * A TCP relay on the bridge (RELAY_PORT) to Redis that holds every chunk Redis sends back for
 * `delay.ms` before passing it on, in order (one queue per connection); what the client sends
 * goes straight through. The API reaches Redis through it in the latency rounds, so its
 * overhead is in both columns and only the delay differs.
 */
const delay = { ms: 0 }
const relayed = new Set()
function delayRelay(port, target) {
  const server = createTcpServer((client) => {
    const upstream = connect(target)
    for (const s of [client, upstream]) relayed.add(s)
    const queue = []
    let timer
    let ended = false
    const flush = () => {
      timer = undefined
      while (queue.length && queue[0].due <= performance.now()) client.write(queue.shift().chunk)
      if (queue.length) timer = setTimeout(flush, queue[0].due - performance.now())
      else if (ended) client.end()
    }
    upstream.on('data', (chunk) => {
      queue.push({ due: performance.now() + delay.ms, chunk })
      if (!timer) timer = setTimeout(flush, delay.ms)
    })
    // Redis closing its side: what it sent before still arrives, delayed like the rest.
    upstream.on('end', () => {
      ended = true
      if (!timer) client.end()
    })
    client.pipe(upstream)
    const close = () => {
      clearTimeout(timer)
      for (const s of [client, upstream]) {
        s.destroy()
        relayed.delete(s)
      }
    }
    client.on('error', close).on('close', close)
    upstream.on('error', close)
  })
  return new Promise((ok, fail) => {
    server.once('error', fail)
    server.listen(port, `${NET}.254`, () => ok(server))
  })
}

// The client side: submissions, job views, callbacks.
const api = `http://${NET}.${HOSTS.api}:8000`
const auth = { Authorization: `Bearer ${token}` }
const video = readFileSync(clip)
const post = (headers = {}, query = '') => {
  const form = new FormData()
  form.set('video', new Blob([video]), 'd18.mp4')
  return fetch(`${api}/infer/tabr-demo${query}`, { method: 'POST', headers: { ...auth, ...headers }, body: form })
}
const callbacks = []
const receiver = createServer((q, s) => {
  let b = ''
  q.on('data', (c) => (b += c))
  q.on('end', () => {
    callbacks.push({ id: q.headers['x-job-id'], ok: q.headers['x-signature'] === `sha256=${createHmac('sha256', secret).update(b).digest('hex')}` })
    s.end('ok')
  })
})
async function batch(n) {
  const ids = []
  for (let i = 0; i < n; i++) {
    const r = await post({ Prefer: 'respond-async' }, `?callback_url=${encodeURIComponent(`http://${NET}.254:9000/cb`)}`)
    if (r.status !== 202) throw new Error(`submit: ${r.status} ${await r.text()}`)
    ids.push((await r.json()).job_id)
  }
  return ids
}
const views = (ids) => Promise.all(ids.map(async (id) => (await fetch(`${api}/jobs/${id}`, { headers: auth })).json()))
const ended = async (ids) => (await views(ids)).every((v) => v.status === 'succeeded' || v.status === 'failed')
/** Every job of `ids` succeeded, with exactly one good callback each (after a grace period). */
async function once(ids, what) {
  await until(`${what}: callbacks`, async () => ids.every((id) => callbacks.some((c) => c.id === id)), 60_000)
  await sleep(1500)
  const v = await views(ids)
  const lost = v.filter((j) => j.status !== 'succeeded').map((j) => `${j.job_id}:${j.status}`)
  const twice = ids.filter((id) => callbacks.filter((c) => c.id === id).length !== 1)
  const forged = callbacks.filter((c) => !c.ok).length
  if (lost.length || twice.length || forged) throw new Error(`${what}: lost ${lost}, not once ${twice}, bad signatures ${forged}`)
  const again = v.filter((j) => j.attempts > 1)
  return { jobs: ids.length, retried: again.length, restartedAt: again.map((j) => Date.parse(j.started_at)) }
}

const rows = {}
let relay
try {
  netUp()
  await new Promise((ok) => receiver.listen(9000, `${NET}.254`, ok))
  await start(
    'redis',
    'redis',
    ['redis-server', '--bind', `${NET}.${HOSTS.redis}`, '--port', '6379', '--save', '', '--appendonly', 'yes', '--dir', work, '--protected-mode', 'no'],
    {},
    /Ready to accept connections/,
  )
  await startApi(service.REDIS_URL)
  await worker('wa', 0)
  // Warm-up: one job.
  await until('warm-up', async () => (await ended(await batch(1))) || true, 60_000)

  // Scaling: A alone, then A + B, alternated.
  const tput = { 1: [], 2: [] }
  for (let r = 0; r < ROUNDS; r++) {
    for (const hosts of r % 2 ? [2, 1] : [1, 2]) {
      if (hosts === 2 && (!procs.wb || procs.wb.exitCode !== null)) await worker('wb', 1)
      if (hosts === 1 && procs.wb) await stop(procs.wb)
      const t0 = performance.now()
      const ids = await batch(BATCH)
      await until(`scaling round ${r} with ${hosts}`, () => ended(ids), 300_000)
      tput[hosts].push(BATCH / ((performance.now() - t0) / 1000))
    }
  }
  rows.scaling = { one: median(tput[1]), two: median(tput[2]) }

  // A worker host dies with jobs in flight.
  if (!procs.wb || procs.wb.exitCode !== null) await worker('wb', 1)
  let ids = await batch(BATCH)
  await until('two jobs running', async () => (await views(ids)).filter((v) => v.status === 'running').length >= 2, 60_000)
  let t0 = performance.now()
  const killedAt = Date.now()
  killHost('wb')
  sh('ip', 'link', 'set', 'tv-wb', 'down')
  await until('the batch after the host died', () => ended(ids), 300_000)
  rows.death = { afterS: (performance.now() - t0) / 1000, ...(await once(ids, 'host death')) }
  // When the dead host's jobs started again elsewhere (a job's started_at is its last start).
  rows.death.takeoverS = rows.death.restartedAt.length ? (Math.max(...rows.death.restartedAt) - killedAt) / 1000 : undefined

  // A partition: B cut off for 10 s, then healed.
  sh('ip', 'link', 'set', 'tv-wb', 'up')
  await worker('wb', 1)
  ids = await batch(BATCH)
  await until('jobs running before the partition', async () => (await views(ids)).filter((v) => v.status === 'running').length >= 2, 60_000)
  t0 = performance.now()
  sh('ip', 'link', 'set', 'tv-wb', 'down')
  await sleep(10_000)
  sh('ip', 'link', 'set', 'tv-wb', 'up')
  await until('the batch after the partition', () => ended(ids), 300_000)
  rows.partition = { afterS: (performance.now() - t0) / 1000, ...(await once(ids, 'partition')) }

  // Added latency between the API and Redis: the API restarted to reach Redis through the
  // relay, then sync requests one at a time, rounds with and without the delay alternated.
  const sync = async (n) => {
    const ms = []
    for (let i = 0; i < n; i++) {
      const t = performance.now()
      const r = await post()
      if (r.status !== 200) throw new Error(`sync ${r.status}`)
      await r.arrayBuffer()
      ms.push(performance.now() - t)
    }
    return ms
  }
  relay = await delayRelay(RELAY_PORT, { host: `${NET}.${HOSTS.redis}`, port: 6379 })
  await stop(procs.api)
  await startApi(`redis://${NET}.254:${RELAY_PORT}`)
  await sync(2)
  rows.latency = { base: [], delayed: [] }
  for (let r = 0; r < 2 * LATENCY_ROUNDS; r++) {
    delay.ms = r % 2 === (r >> 1) % 2 ? 0 : DELAY_MS
    rows.latency[delay.ms ? 'delayed' : 'base'].push(...(await sync(5)))
  }
} finally {
  receiver.close()
  relay?.close()
  for (const sock of relayed) sock.destroy()
  for (const p of Object.values(procs)) if (p.exitCode === null) p.kill('SIGKILL')
  netDown()
  rmSync(work, { recursive: true, force: true })
}

const f = (x, d = 2) => x.toFixed(d)
console.log(`\nqueue mode across simulated hosts (network namespaces; workers CONCURRENCY=1, pinned one core each; d18; JOB_LOCK_S=${JOB_LOCK_S}; ${BATCH} jobs per batch)\n`)
console.log('| what | figure |')
console.log('|---|---|')
console.log(`| throughput, worker host A alone | ${f(rows.scaling.one)} clips/s (median of ${ROUNDS}) |`)
console.log(`| throughput, worker hosts A + B | ${f(rows.scaling.two)} clips/s (median of ${ROUNDS}) |`)
console.log(`| scaling, 2 hosts / 1 | ${f(rows.scaling.two / rows.scaling.one)}× |`)
console.log(
  `| host B killed (SIGKILL, link down) with jobs in flight | all ${rows.death.jobs} ended once; ${rows.death.retried} taken over${rows.death.takeoverS === undefined ? '' : `, restarted on A ${f(rows.death.takeoverS, 1)} s after the kill (2 × JOB_LOCK_S = ${2 * JOB_LOCK_S} s)`}; batch done ${f(rows.death.afterS, 1)} s after the kill |`,
)
console.log(
  `| host B cut from Redis 10 s, healed | all ${rows.partition.jobs} ended once, no callback twice; ${rows.partition.retried} started again; batch done ${f(rows.partition.afterS, 1)} s after the cut |`,
)
const lat = (xs) => `${f(median(xs), 0)} / ${f(pct(xs, 99), 0)} ms`
console.log(`| sync latency via the API's relay to Redis, p50 / p99 (${rows.latency.base.length} requests: p99 is their maximum) | ${lat(rows.latency.base)} |`)
console.log(
  `| … with every Redis reply to the API ${DELAY_MS} ms later (${rows.latency.delayed.length} requests, rounds alternated) | ${lat(rows.latency.delayed)}; p50 +${f(median(rows.latency.delayed) - median(rows.latency.base), 0)} ms |`,
)
console.log(`\nThis machine has ${availableParallelism()} cores: the API, Redis and the client share them with the two pinned workers.`)
