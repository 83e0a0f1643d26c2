// The contract stays true to the code: every route is documented, and every error code the
// service or the native core can answer is in the Error schema's enum.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { errorCodes } from '@org/tabr-native'
import { createService } from '../src/app.js'
import { openapi } from '../src/api/openapi.js'
import { config } from './helpers.js'

const files = (dir: string): string[] => readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? files(join(dir, f)) : [join(dir, f)]))

describe('OpenAPI', () => {
  it('documents every route', async () => {
    const s = createService(config())
    try {
      const stack = (s.app as unknown as { router: { stack: { route?: { path: string } }[] } }).router.stack
      const routes = stack.flatMap((l) => (l.route ? [l.route.path.replace(/:(\w+)/g, '{$1}')] : []))
      expect(new Set(routes)).toEqual(new Set(Object.keys(openapi.paths)))
    } finally {
      await s.dispose()
    }
  })

  it('lists every error code the service and the native core answer with', () => {
    const src = files(resolve(__dirname, '../src')).map((f) => readFileSync(f, 'utf8')).join('\n')
    const ours = [...src.matchAll(/new ApiError\(\d+, '([a-z_]+)'/g)].map((m) => m[1]!)
    const documented = new Set<string>(openapi.components.schemas.Error.properties.error.properties.code.enum)
    for (const code of new Set([...ours, ...errorCodes()])) expect(documented, code).toContain(code)
  })
})
