// Starting the real service on an ephemeral port for a test.
import { resolve } from 'node:path'
import { loadConfig } from '../src/core/config.js'
import { start, type Running } from '../src/server.js'

export const TOKEN = 'test-token-0123456789abcdefghijklmnopqrstuvwxyz'
export const OLD_TOKEN = 'old-token-0123456789abcdefghijklmnopqrstuvwxyz!'
export const DEMO = resolve(__dirname, '../../../models/tabr-demo')
export const SHARED = resolve(__dirname, '../../../../shared')

export function config(env: Record<string, string> = {}) {
  return loadConfig(
    { AI_API_TOKEN: TOKEN, MODEL_REGISTRY: `tabr-demo:tabr:${DEMO}`, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'silent', ...env },
    { dotenv: false },
  )
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
