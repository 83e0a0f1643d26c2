// Shared test helpers.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'

/** The package folder, the repository root and the demo model. */
export const pkgDir = resolve(__dirname, '..')
export const repoRoot = resolve(pkgDir, '../..')
export const demoDir = resolve(repoRoot, 'models/tabr-demo')

/** A file of ../shared/fixtures (or of `TABR_SHARED`). The shared fixtures are the tests'
 * input: a missing one fails the test that needs it, in every mode, never a silent pass. */
export function sharedFixture(rel: string): string {
  const path = join(process.env.TABR_SHARED ?? resolve(repoRoot, '../shared'), 'fixtures', rel)
  if (!existsSync(path)) throw new Error(`${path} is missing: put ../shared beside the checkout or set TABR_SHARED`)
  return path
}

/** The `code` a promise rejects with ('resolved' when it does not reject). */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (e) {
    return (e as { code?: string }).code ?? `no code: ${String(e)}`
  }
  return 'resolved'
}

/** The environment without what would steer the runtime or the loader of a child process. */
export function plainEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env }
  for (const k of ['ORT_DYLIB_PATH', 'ORT_PROVIDER', 'NAPI_RS_NATIVE_LIBRARY_PATH', 'TABR_CUDA_LIBS']) delete env[k]
  return { ...env, ...extra }
}

/** A command's exit status and output (never throws on a failing status). */
export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, encoding: 'utf8', maxBuffer: 64 << 20 })
  if (r.error) throw r.error
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}
