// Starting the real service on an ephemeral port for a test: in this process (serve), or as
// a child process of the built bin whose whole output is captured (spawnService).
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { loadConfig } from '../src/core/config.js'
import { pidNamespace } from '../src/core/tempdirs.js'
import { start, type Running } from '../src/server.js'

export const TOKEN = 'test-token-0123456789abcdefghijklmnopqrstuvwxyz'
export const OLD_TOKEN = 'old-token-0123456789abcdefghijklmnopqrstuvwxyz!'
export const DEMO = resolve(__dirname, '../../../models/tabr-demo')
export const DEMO_V2 = resolve(__dirname, '../../../models/tabr-demo-v2')
export const SHARED = resolve(__dirname, '../../../../shared')

/**
 * That a file of the shared fixtures is there. They are the tests' input: a missing one fails
 * the test that needs it, in every mode, never a silent pass or skip.
 */
export function requireShared(path: string): void {
  if (!existsSync(path)) throw new Error(`${path} is missing: put ../shared beside the checkout or set TABR_SHARED`)
}

export function config(env: Record<string, string> = {}) {
  return loadConfig({ AI_API_TOKEN: TOKEN, MODEL_REGISTRY: `tabr-demo:tabr:${DEMO}`, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'silent', ...env }, { dotenv: false })
}

export async function serve(env: Record<string, string> = {}): Promise<Running> {
  const running = await start(config(env))
  await running.ready
  return running
}

export const auth = (token = TOKEN) => ({ Authorization: `Bearer ${token}` })

/** No response body may leak a path or a stack trace. */
export function assertNoLeak(body: string) {
  for (const bad of ['/tmp', '/work', '/root', '/home', 'node_modules', '    at ', '.rs:', 'Error:']) {
    if (body.includes(bad)) throw new Error(`response leaks ${JSON.stringify(bad)}: ${body}`)
  }
}

/** An authenticated request to a running service; the body is checked for leaks and parsed. */
export async function call(s: Running, path: string, init: RequestInit = {}) {
  const r = await fetch(s.url + path, { ...init, headers: { ...auth(), ...(init.headers as Record<string, string>) } })
  const text = await r.text()
  assertNoLeak(text)
  return { status: r.status, headers: r.headers, json: JSON.parse(text) as Record<string, any> }
}

export interface ServiceProcess {
  url: string
  proc: ChildProcess
  /** Everything the process has written, stdout and stderr, line by line. */
  output: string[]
  /** The private temp dir (TMPDIR) the process was given; removed by stop(). */
  tmp: string
  /** The process's upload folder (`tabr-serve-<namespace>-<pid>-*` in tmp). */
  uploadDir(): string
  alive(): boolean
  stop(): Promise<void>
}

/**
 * `tabr-serve serve` (the built dist/) as a child process with its own TMPDIR, PORT=0 and
 * LOG_LEVEL=info: its whole log stream is captured, a crash is seen as an exit, and its
 * upload folder can be inspected. Resolves once /readyz answers 200.
 */
export async function spawnService(env: Record<string, string> = {}, opts: { tmp?: string } = {}): Promise<ServiceProcess> {
  const tmp = opts.tmp ?? mkdtempSync(join(tmpdir(), 'tabr-hostile-'))
  const proc = spawn(process.execPath, [resolve(__dirname, '../dist/bin/tabr-serve.cjs'), 'serve'], {
    cwd: tmp,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: tmp, AI_API_TOKEN: TOKEN, MODEL_REGISTRY: `tabr-demo:tabr:${DEMO}`, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const output: string[] = []
  const collect = (stream: NodeJS.ReadableStream) => {
    let buf = ''
    stream.on('data', (d: Buffer) => {
      buf += d.toString()
      const parts = buf.split('\n')
      buf = parts.pop()!
      output.push(...parts.filter((l) => l !== ''))
    })
    stream.on('end', () => void (buf && output.push(buf)))
  }
  collect(proc.stdout!)
  collect(proc.stderr!)
  const exited = new Promise<void>((r) => proc.once('close', () => r()))
  let url: string | undefined
  const deadline = Date.now() + 60_000
  while (!url) {
    if (proc.exitCode !== null) throw new Error(`tabr-serve exited (${proc.exitCode}) before listening: ${output.join('\n')}`)
    if (Date.now() > deadline) throw new Error(`tabr-serve did not start: ${output.join('\n')}`)
    for (const l of output) if (l.includes('"listening"')) url = (JSON.parse(l) as { url: string }).url
    await new Promise((r) => setTimeout(r, 50))
  }
  while (
    (await fetch(`${url}/readyz`).then(
      (r) => r.status,
      () => 0,
    )) !== 200
  ) {
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`tabr-serve did not get ready: ${output.join('\n')}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    url,
    proc,
    output,
    tmp,
    uploadDir() {
      const dirs = readdirSync(tmp).filter((d) => d.startsWith(`tabr-serve-${pidNamespace()}-${proc.pid}-`))
      if (dirs.length !== 1) throw new Error(`expected one upload folder of ${proc.pid} in ${tmp}, found ${JSON.stringify(dirs)}`)
      return join(tmp, dirs[0]!)
    },
    alive: () => proc.exitCode === null && proc.signalCode === null,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM')
        await exited
      }
      rmSync(tmp, { recursive: true, force: true })
    },
  }
}
