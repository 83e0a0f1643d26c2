// The contract stays true to the code: every route and method is documented, every error code
// the service or the native core can answer is in the Error schema's enum, and each execution
// mode is offered only what it takes (callback_url, Prefer and 202 in queue mode only).
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { errorCodes } from '@org/tabr-native'
import { createService } from '../src/app.js'
import { openapiFor } from '../src/api/openapi.js'
import { SERVICE_VERSION } from '../src/core/config.js'
import { config, serve } from './helpers.js'

const files = (dir: string): string[] => readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? files(join(dir, f)) : [join(dir, f)]))

describe('OpenAPI', () => {
  it('names the service by package.json, as GET /v2 does', () => {
    const pkg = JSON.parse(readFileSync(resolve(__dirname, '../package.json'), 'utf8')) as { version: string }
    expect(SERVICE_VERSION).toBe(pkg.version)
    expect(openapiFor('sync').info).toMatchObject({ title: 'tabr-serve', version: pkg.version })
  })

  it('documents every route with exactly its methods, in each mode (GET /jobs/{id} in queue mode only)', async () => {
    for (const mode of ['sync', 'queue'] as const) {
      // The queue mode's service is built, not started: its Redis connection is never used.
      const s = createService(config({ EXECUTION_MODE: mode, REDIS_URL: 'redis://127.0.0.1:1' }))
      try {
        const stack = (s.app as unknown as { router: { stack: { route?: { path: string; methods: Record<string, boolean> } }[] } }).router.stack
        const served = new Map<string, Set<string>>()
        for (const { route } of stack) {
          if (!route) continue
          const methods = served.get(route.path.replace(/:(\w+)/g, '{$1}')) ?? new Set()
          // `_all`: the 405 answer every declared path gets for the methods it does not list.
          for (const m of Object.keys(route.methods)) if (m !== '_all') methods.add(m)
          served.set(route.path.replace(/:(\w+)/g, '{$1}'), methods)
        }
        const documented = new Map(Object.entries(openapiFor(mode).paths).map(([p, ops]) => [p, new Set(Object.keys(ops))]))
        expect(documented).toEqual(served)
        expect(served.has('/jobs/{id}')).toBe(mode === 'queue')
      } finally {
        await s.dispose()
      }
    }
  })

  it('describes what a body must be where a schema can say it: video media, shapes of at least 1', () => {
    const infer = openapiFor('sync').paths['/infer/{model}'].post.requestBody.content
    expect(infer['multipart/form-data'].encoding.video.contentType).toMatch(/^video\/\*/)
    expect(infer['multipart/form-data'].schema.properties.video.contentMediaType).toBe('video/*')
    const shape = openapiFor('sync').components.schemas.OipInferRequest.properties.inputs.items.properties.shape
    expect(shape.items.minimum).toBe(1)
  })

  it('lists every error code the service and the native core answer with', () => {
    const src = files(resolve(__dirname, '../src'))
      .map((f) => readFileSync(f, 'utf8'))
      .join('\n')
    const ours = [...src.matchAll(/new ApiError\('([a-z_]+)'/g)].map((m) => m[1]!)
    expect(ours.length).toBeGreaterThan(20)
    for (const mode of ['sync', 'queue'] as const) {
      const documented = new Set<string>(openapiFor(mode).components.schemas.Error.properties.error.properties.code.enum)
      for (const code of new Set([...ours, ...errorCodes(), 'video_too_large', 'request_timeout', 'method_not_allowed'])) expect(documented, code).toContain(code)
    }
  })

  it('offers callback_url, Prefer and 202 in queue mode only; the service serves its own mode', async () => {
    const sync = JSON.stringify(openapiFor('sync'))
    const queue = JSON.stringify(openapiFor('queue'))
    for (const word of ['callback_url', 'respond-async', '"202"']) {
      expect(sync).not.toContain(word)
      expect(queue).toContain(word)
    }
    const s = await serve()
    try {
      expect(await (await fetch(`${s.url}/openapi.json`)).json()).toEqual(openapiFor('sync'))
    } finally {
      await s.shutdown()
    }
  })

  it('documents 405, 408 and the new 422 on POST /infer/{model}', () => {
    const responses = openapiFor('sync').paths['/infer/{model}'].post.responses as Record<string, { description: string }>
    expect(responses['408']?.description).toMatch(/request_timeout/)
    expect(responses['422']?.description).toMatch(/video_too_large/)
    expect(openapiFor('sync').info.description).toMatch(/405 `method_not_allowed` with `Allow`/)
  })
})
