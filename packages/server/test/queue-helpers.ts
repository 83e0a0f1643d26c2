// Real parts for the queue-mode tests: Debian's redis-server on a free loopback port (no
// persistence), `tabr-serve worker` child processes from the built dist/, and a local HTTP
// receiver for callbacks.
import { spawn, type ChildProcess } from 'node:child_process'
import { createHmac, timingSafeEqual } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer as createHttpServer, type Server } from 'node:http'
import { createServer as createNetServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { Redis } from 'ioredis'
import { DEMO } from './helpers.js'

export const CALLBACK_SECRET = 'callback-secret-0123456789abcdefghijklmnop'
const BIN = resolve(__dirname, '../dist/bin/tabr-serve.cjs')

export async function freePort(): Promise<number> {
  const srv = createNetServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()))
  const { port } = srv.address() as AddressInfo
  await new Promise((r) => srv.close(r))
  return port
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Polls `fn` until it returns something truthy (or throws after `ms`). */
export async function until<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, ms = 30_000, what = 'condition'): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

export interface RedisServer {
  url: string
  /** Stops the server (SIGTERM) and waits for it to exit. */
  stop(): Promise<void>
  /** Starts it again on the same port (empty: there is no persistence). */
  start(): Promise<void>
  /** Keys matching a pattern. */
  keys(pattern: string): Promise<string[]>
}

/** redis-server on a free port; `settings` default to no persistence at all (no RDB, no AOF). */
export async function startRedis(settings: string[] = ['--save', '', '--appendonly', 'no']): Promise<RedisServer> {
  const port = await freePort()
  const url = `redis://127.0.0.1:${port}`
  const dir = mkdtempSync(join(tmpdir(), 'tabr-redis-'))
  let proc: ChildProcess | undefined
  const start = async () => {
    mkdirSync(dir, { recursive: true })
    proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, ...settings], { stdio: 'ignore' })
    await until(
      async () => {
        const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
        probe.on('error', () => {})
        try {
          await probe.connect()
          return (await probe.ping()) === 'PONG'
        } catch {
          return false
        } finally {
          probe.disconnect()
        }
      },
      10_000,
      'redis-server',
    )
  }
  /** Stops the server and removes its working folder (what persistence settings wrote there). */
  const stop = async () => {
    const p = proc
    if (p && p.exitCode === null) {
      await new Promise((r) => {
        p.once('exit', r)
        p.kill('SIGTERM')
      })
    }
    rmSync(dir, { recursive: true, force: true })
  }
  await start()
  return {
    url,
    stop,
    start,
    async keys(pattern) {
      const r = new Redis(url)
      try {
        return await r.keys(pattern)
      } finally {
        r.disconnect()
      }
    },
  }
}

export function queueEnv(redisUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    EXECUTION_MODE: 'queue',
    REDIS_URL: redisUrl,
    CALLBACK_ALLOWED_HOSTS: '127.0.0.1',
    CALLBACK_SECRET,
    ...extra,
  }
}

export interface WorkerProcess {
  proc: ChildProcess
  /** Parsed JSON log lines so far. */
  lines: Record<string, unknown>[]
  /** Called with each log line as it arrives (e.g. to act the moment a job starts). */
  onLine?: (line: Record<string, unknown>) => void
  /** Resolves with the exit code once the process has exited and its output is all read. */
  exited: Promise<number | null>
}

/** `tabr-serve worker` as a child process; resolves once it logs "worker ready". */
export async function startWorker(env: Record<string, string>): Promise<WorkerProcess> {
  const cwd = mkdtempSync(join(tmpdir(), 'tabr-worker-test-'))
  const proc = spawn(process.execPath, [BIN, 'worker'], {
    cwd,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, MODEL_REGISTRY: `tabr-demo:tabr:${DEMO}`, LOG_LEVEL: 'info', CONCURRENCY: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const lines: Record<string, unknown>[] = []
  let buf = ''
  let stderr = ''
  let w: WorkerProcess | undefined
  proc.stdout!.on('data', (d: Buffer) => {
    buf += d.toString()
    const parts = buf.split('\n')
    buf = parts.pop()!
    for (const l of parts) {
      if (!l.trim()) continue
      const line = JSON.parse(l) as Record<string, unknown>
      lines.push(line)
      w?.onLine?.(line)
    }
  })
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  // 'close' comes after 'exit' and after the output streams have ended.
  const exited = new Promise<number | null>((r) =>
    proc.once('close', (code) => {
      rmSync(cwd, { recursive: true, force: true })
      r(code)
    }),
  )
  await Promise.race([
    until(() => lines.some((l) => l.msg === 'worker ready'), 60_000, 'worker ready'),
    exited.then((code) => {
      throw new Error(`worker exited (${code}) before it was ready: ${stderr}`)
    }),
  ])
  w = { proc, lines, exited }
  return w
}

export interface Callback {
  jobId: string
  signature: string
  body: string
}

/** A local callback receiver; `fail` makes it answer 500 to the first N deliveries. */
export async function startReceiver(fail = 0): Promise<{ url: string; received: Callback[]; close(): Promise<void> }> {
  const received: Callback[] = []
  let refused = 0
  const server: Server = createHttpServer((req, res) => {
    let body = ''
    req.on('data', (d: Buffer) => (body += d.toString()))
    req.on('end', () => {
      if (refused < fail) {
        refused++
        return void res.writeHead(500).end()
      }
      received.push({ jobId: String(req.headers['x-job-id']), signature: String(req.headers['x-signature']), body })
      res.writeHead(204).end()
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const { port } = server.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}/hook`, received, close: () => new Promise((r) => server.close(() => r())) }
}

/** How a receiver verifies a callback: HMAC-SHA256 over the raw body, compared in constant time. */
export function verifySignature(body: string, header: string, secret = CALLBACK_SECRET): boolean {
  const expected = Buffer.from(`sha256=${createHmac('sha256', secret).update(body).digest('hex')}`)
  const given = Buffer.from(header)
  return given.length === expected.length && timingSafeEqual(given, expected)
}
