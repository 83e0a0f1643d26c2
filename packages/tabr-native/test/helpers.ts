// Shared test helpers.
import { spawnSync } from 'node:child_process'
import { resolve } from 'node:path'

/** The package folder, the repository root and the demo model. */
export const pkgDir = resolve(__dirname, '..')
export const repoRoot = resolve(pkgDir, '../..')
export const demoDir = resolve(repoRoot, 'models/tabr-demo')

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
  for (const k of ['ORT_DYLIB_PATH', 'ORT_PROVIDER', 'NAPI_RS_NATIVE_LIBRARY_PATH']) delete env[k]
  return { ...env, ...extra }
}

/** A command's exit status and output (never throws on a failing status). */
export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, encoding: 'utf8', maxBuffer: 64 << 20 })
  if (r.error) throw r.error
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}
