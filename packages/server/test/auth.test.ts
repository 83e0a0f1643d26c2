import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConfigError, loadConfig, PLACEHOLDER_TOKEN } from '../src/core/config.js'
import type { Running } from '../src/server.js'
import { auth, DEMO, OLD_TOKEN, serve, TOKEN } from './helpers.js'

const protectedRoutes: [string, string][] = [
  ['POST', '/infer/tabr-demo'],
  ['GET', '/models'],
  ['GET', '/models/tabr-demo'],
  ['GET', '/metrics'],
]

describe('bearer auth', () => {
  let s: Running
  beforeAll(async () => {
    s = await serve({ AI_API_TOKEN: `${TOKEN},${OLD_TOKEN}` })
  })
  afterAll(() => s.shutdown())

  it.each(protectedRoutes)('%s %s needs a valid token', async (method, path) => {
    for (const headers of [{}, auth('wrong-token-0123456789abcdefghijklmnopqrstuvw'), { Authorization: 'Basic Zm9vOmJhcg==' }]) {
      const r = await fetch(s.url + path, { method, headers })
      expect(r.status).toBe(401)
      expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/)
      expect((await r.json()).error.code).toBe('unauthorized')
    }
  })

  it('accepts every configured token (rotation) and rejects a rotated-out one', async () => {
    for (const t of [TOKEN, OLD_TOKEN]) expect((await fetch(`${s.url}/models`, { headers: auth(t) })).status).toBe(200)
    const rotated = await serve({ AI_API_TOKEN: TOKEN })
    try {
      expect((await fetch(`${rotated.url}/models`, { headers: auth(OLD_TOKEN) })).status).toBe(401)
      expect((await fetch(`${rotated.url}/models`, { headers: auth(TOKEN) })).status).toBe(200)
    } finally {
      await rotated.shutdown()
    }
  })

  it('leaves health, readiness and docs open', async () => {
    for (const p of ['/healthz', '/readyz', '/openapi.json', '/docs']) expect((await fetch(s.url + p)).status).toBe(200)
  })

  it('refuses the placeholder, short tokens, a missing token and unsigned callbacks at start-up, in one line', () => {
    const load = (token?: string) => () => loadConfig(token === undefined ? {} : { AI_API_TOKEN: token }, { dotenv: false })
    expect(load(PLACEHOLDER_TOKEN)).toThrow(ConfigError)
    expect(load(PLACEHOLDER_TOKEN)).toThrow(/placeholder/)
    expect(load('short')).toThrow(/at least 32 characters/)
    expect(load(`${TOKEN},short`)).toThrow(/token 2/)
    expect(load()).toThrow(/AI_API_TOKEN: is required/)
    const queue = (env: Record<string, string>) => () => loadConfig({ AI_API_TOKEN: TOKEN, EXECUTION_MODE: 'queue', ...env }, { dotenv: false })
    expect(queue({})()).toMatchObject({ executionMode: 'queue', callbackHosts: [] })
    expect(queue({ CALLBACK_ALLOWED_HOSTS: 'hooks.example.org' })).toThrow(/CALLBACK_SECRET: .* at least 32 characters/)
    expect(queue({ CALLBACK_ALLOWED_HOSTS: 'a.example, http://b', CALLBACK_SECRET: TOKEN })).toThrow(/CALLBACK_ALLOWED_HOSTS entry 2/)
    expect(queue({ CALLBACK_ALLOWED_HOSTS: 'A.example,b.example:8443', CALLBACK_SECRET: TOKEN })()).toMatchObject({ callbackHosts: ['a.example', 'b.example:8443'] })
  })

  it('reads the tokens from AI_API_TOKEN_FILE (a container secret), never both, never echoing the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tabr-token-'))
    try {
      const file = join(dir, 'token')
      const other = `${TOKEN.slice(0, -1)}X`
      writeFileSync(file, `${TOKEN}\n${other}\n`)
      const load = (env: Record<string, string>) => () => loadConfig({ MODEL_REGISTRY: `tabr-demo:tabr:${DEMO}`, ...env }, { dotenv: false })
      expect(load({ AI_API_TOKEN_FILE: file })().tokens).toEqual([TOKEN, other])
      expect(load({ AI_API_TOKEN_FILE: file, AI_API_TOKEN: TOKEN })).toThrow(/set one of them, not both/)
      expect(load({ AI_API_TOKEN_FILE: join(dir, 'missing') })).toThrow(/AI_API_TOKEN_FILE: the file cannot be read/)
      expect(load({ AI_API_TOKEN_FILE: dir })).toThrow(/AI_API_TOKEN_FILE: the file cannot be read/)
      writeFileSync(file, 'a-secret-that-is-too-short\n')
      const short = (() => {
        try {
          load({ AI_API_TOKEN_FILE: file })()
        } catch (e) {
          return (e as Error).message
        }
      })()
      expect(short).toMatch(/token 1: tokens need at least 32 characters/)
      expect(short).not.toContain('a-secret')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('serves /metrics without a token when METRICS_PUBLIC=true', async () => {
    const pub = await serve({ METRICS_PUBLIC: 'true' })
    try {
      const r = await fetch(`${pub.url}/metrics`)
      expect(r.status).toBe(200)
      expect(await r.text()).toContain('tabr_http_request_duration_seconds')
    } finally {
      await pub.shutdown()
    }
  })
})

describe('CORS', () => {
  it('answers preflights for CORS_ORIGINS, allowing the Authorization header', async () => {
    const s = await serve({ CORS_ORIGINS: 'https://app.example' })
    try {
      const r = await fetch(`${s.url}/infer/tabr-demo`, {
        method: 'OPTIONS',
        headers: { Origin: 'https://app.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization,content-type' },
      })
      expect(r.status).toBeLessThan(300)
      expect(r.headers.get('access-control-allow-origin')).toBe('https://app.example')
      expect(r.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization')
      const other = await fetch(`${s.url}/healthz`, { headers: { Origin: 'https://evil.example' } })
      expect(other.headers.get('access-control-allow-origin')).toBeNull()
    } finally {
      await s.shutdown()
    }
  })
})
