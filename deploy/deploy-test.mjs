// The compose deployment as an operator runs it, with podman: the image of make image, the
// API in queue mode, Redis with AOF, workers, and a callback receiver (a test-only service
// from the same image). Through the published port on loopback it sends clips (a sync
// answer; async 202 + polling; a signed callback), scales the workers 1 → 2, kills a worker
// mid-job, restarts Redis with jobs waiting, and asserts that every job succeeded exactly
// once: one `succeeded` view and one callback per job id, with the sync answer's label.
// The project runs under its own name in a temporary folder (its own .env and token), and
// everything it made is removed at the end, whatever the outcome.
//
// usage: node deploy/deploy-test.mjs IMAGE   (make deploy-test builds the image first)
import { spawnSync } from 'node:child_process'
import { createHmac, randomBytes } from 'node:crypto'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort, until } from '../bench/lib.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const repo = resolve(here, '..')
const image = process.argv[2]
if (!image) throw new Error('usage: deploy-test.mjs IMAGE')
const project = 'tabr-deploy-test'
const clip = join(repo, '.samples/face.mkv')
const token = randomBytes(30).toString('base64url')
const secret = randomBytes(30).toString('base64url')
const JOB_LOCK_S = 3
const env = { ...process.env, CONTAINERS_CONF: process.env.CONTAINERS_CONF ?? join(here, 'containers.conf') }

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms))
const run = (cmd, args, opts = {}) => spawnSync(cmd, args, { encoding: 'utf8', env, maxBuffer: 64 << 20, ...opts })
const must = (cmd, args, opts) => {
  const r = run(cmd, args, opts)
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.stdout}`)
  return r.stdout
}
const podman = (...args) => run('podman', ['--runtime', 'runc', ...args])
const containers = (service) =>
  podman('ps', '-a', '--format', '{{.Names}}', '--filter', `label=io.podman.compose.project=${project}`)
    .stdout.split('\n')
    .filter((n) => n && (!service || n.startsWith(`${project}_${service}_`)))
    .sort()

const work = mkdtempSync(join(tmpdir(), 'tabr-deploy-'))
const [apiPort, receiverPort] = [await freePort(), await freePort()]
for (const f of ['compose.yaml', 'redis.Containerfile']) copyFileSync(join(here, f), join(work, f))
mkdirSync(join(work, 'secrets'))
writeFileSync(join(work, 'secrets/api_token'), `${token}\n`, { mode: 0o644 })
writeFileSync(join(work, '.env'), `CONCURRENCY=1\nJOB_LOCK_S=${JOB_LOCK_S}\nLOG_LEVEL=info\nCALLBACK_ALLOWED_HOSTS=receiver:9000\nCALLBACK_SECRET=${secret}\n`)
// The receiver: records every POST with its headers and raw body; GET / lists them.
const receiver = `const got = []; require('http').createServer((q, s) => { let b = ''; q.on('data', (c) => (b += c)); q.on('end', () => { if (q.method === 'POST') got.push({ headers: q.headers, body: b }); s.end(q.method === 'GET' ? JSON.stringify(got) : 'ok') }) }).listen(9000)`
writeFileSync(
  join(work, 'compose.test.yaml'),
  `services:\n  receiver:\n    image: ${image}\n    entrypoint: [node, -e, ${JSON.stringify(receiver)}]\n    ports: ["127.0.0.1:${receiverPort}:9000"]\n    read_only: true\n`,
)
// Redis's image builds from the same local Debian base as the service's (deploy/image.sh).
const composeEnv = { ...env, TABR_IMAGE: image, TABR_PORT: String(apiPort), TABR_BASE: process.env.TABR_BASE ?? 'localhost/tabr-debian:trixie-slim' }
const compose = (...args) => must('podman-compose', ['--podman-args=--runtime runc', '-p', project, '-f', 'compose.yaml', '-f', 'compose.test.yaml', ...args], { cwd: work, env: composeEnv })

/** podman 4.3's `down` cannot remove containers others depend on: dependents first. */
function teardown() {
  // -v: with each container its anonymous volumes (the image's VOLUME /tmp); the named ones
  // are this project's own. Nothing else on the host is touched.
  for (const s of ['worker', 'receiver', 'api', 'redis']) for (const c of containers(s)) podman('rm', '-f', '-v', '-t', '2', c)
  for (const c of containers()) podman('rm', '-f', '-v', '-t', '2', c)
  podman('network', 'rm', '-f', `${project}_default`)
  for (const v of ['redis-data', 'api-tmp']) podman('volume', 'rm', '-f', `${project}_${v}`)
}

const api = `http://127.0.0.1:${apiPort}`
const auth = { Authorization: `Bearer ${token}` }
const post = (headers = {}, query = '') => {
  const form = new FormData()
  form.set('video', new Blob([readFileSync(clip)]), 'face.mkv')
  return fetch(`${api}/infer/tabr-demo${query}`, { method: 'POST', headers: { ...auth, ...headers }, body: form })
}
const submit = async () => {
  const r = await post({ Prefer: 'respond-async' }, `?callback_url=${encodeURIComponent('http://receiver:9000/hook')}`)
  if (r.status !== 202) throw new Error(`async submit: ${r.status} ${await r.text()}`)
  return (await r.json()).job_id
}
const view = async (id) => (await fetch(`${api}/jobs/${id}`, { headers: auth, signal: AbortSignal.timeout(5000) })).json()
const jobs = []
const figures = {}
let failed = false
try {
  teardown()
  let t0 = performance.now()
  compose('up', '-d', '--scale', 'worker=1')
  await until('the API to be ready', async () => (await fetch(`${api}/readyz`, { signal: AbortSignal.timeout(5000) })).ok, 120_000)
  figures.upToReadyS = ((performance.now() - t0) / 1000).toFixed(1)

  // A sync answer through the queue.
  const sync = await post()
  if (sync.status !== 200) throw new Error(`sync: ${sync.status} ${await sync.text()}`)
  const label = (await sync.json()).prediction.label

  // Async: 202, then the job's view until it ends.
  jobs.push(await submit())
  await until('the first async job', async () => (await view(jobs[0])).status === 'succeeded', 60_000)

  // 1 → 2 workers.
  compose('up', '-d', '--scale', 'worker=2')
  await until('two workers', async () => containers('worker').length === 2, 60_000)

  // A worker killed mid-job: the job is taken over once its lock lapses.
  const batch = []
  for (let i = 0; i < 6; i++) batch.push(await submit())
  jobs.push(...batch)
  await until('a running job', async () => (await Promise.all(batch.map(view))).some((v) => v.status === 'running'), 30_000)
  const [victim] = containers('worker')
  t0 = performance.now()
  must('podman', ['--runtime', 'runc', 'kill', victim])
  await until('the batch to end', async () => (await Promise.all(batch.map(view))).every((v) => v.status === 'succeeded' || v.status === 'failed'), 120_000)
  figures.afterKillS = ((performance.now() - t0) / 1000).toFixed(1)
  // The kill did land mid-job: a job of the batch was started again by the other worker.
  figures.retried = (await Promise.all(batch.map(view))).filter((v) => v.attempts > 1).length
  if (figures.retried === 0) throw new Error('no job of the batch was running on the killed worker')
  compose('up', '-d', '--scale', 'worker=2')

  // Redis restarted with jobs waiting (AOF keeps them).
  const waiting = []
  for (let i = 0; i < 4; i++) waiting.push(await submit())
  jobs.push(...waiting)
  must('podman', ['--runtime', 'runc', 'restart', containers('redis')[0]])
  await until('the jobs after the Redis restart', async () => (await Promise.all(waiting.map(view))).every((v) => v.status === 'succeeded'), 120_000)

  // Every job once: succeeded, the sync answer's label, one signed callback per job id.
  const views = await Promise.all(jobs.map(view))
  const bad = views.filter((v) => v.status !== 'succeeded' || v.result?.prediction?.label !== label)
  const received = await until(
    'every callback',
    async () => {
      const got = await (await fetch(`http://127.0.0.1:${receiverPort}/`)).json()
      return got.length >= jobs.length ? got : undefined
    },
    60_000,
  )
  await sleep(2000)
  const all = await (await fetch(`http://127.0.0.1:${receiverPort}/`)).json()
  const perJob = new Map()
  for (const c of all) {
    const sig = `sha256=${createHmac('sha256', secret).update(c.body).digest('hex')}`
    if (c.headers['x-signature'] !== sig) throw new Error('a callback with a wrong signature')
    perJob.set(c.headers['x-job-id'], (perJob.get(c.headers['x-job-id']) ?? 0) + 1)
  }
  const notOnce = jobs.filter((id) => perJob.get(id) !== 1)
  console.log(
    `deploy-test: ${jobs.length} async jobs + 1 sync; ${views.length - bad.length} succeeded; ${received.length} callbacks, ` +
      `${jobs.length - notOnce.length} jobs with exactly one; API ready ${figures.upToReadyS} s after up; ` +
      `the killed worker's batch ended ${figures.afterKillS} s after the kill (JOB_LOCK_S=${JOB_LOCK_S}; ${figures.retried} job(s) taken over)`,
  )
  if (bad.length || notOnce.length) {
    failed = true
    console.error(
      'not succeeded:',
      bad.map((v) => `${v.job_id} ${v.status} ${JSON.stringify(v.error ?? '')}`),
    )
    console.error(
      'not exactly one callback:',
      notOnce.map((id) => `${id}: ${perJob.get(id) ?? 0}`),
    )
  }
} catch (e) {
  failed = true
  console.error(e.message)
  for (const id of jobs) console.error(`job ${id}: ${JSON.stringify(await view(id).catch((err) => String(err)))}`)
  for (const c of containers()) {
    const logs = podman('logs', '--tail', '25', c)
    console.error(`--- ${c}\n${logs.stdout}${logs.stderr}`)
  }
} finally {
  teardown()
  rmSync(work, { recursive: true, force: true })
}
process.exit(failed ? 1 : 0)
