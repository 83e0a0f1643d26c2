// Private temp folders named after the process that owns them (`<prefix><pid>-XXXXXX`, mode
// 0700), and the clean-up of those left behind. A process killed with SIGKILL cannot remove
// its folder, which may hold a copy of an upload; the next process of the same kind removes
// the folders whose owner no longer exists. Liveness is `kill(pid, 0)`: only ESRCH means
// gone (EPERM is someone else's live process), so a live process's folder is never touched.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH'
  }
}

/**
 * Removes the `<prefix><pid>-*` folders in `base` whose process is gone. Returns the names
 * removed, and those that could not be (e.g. another user's), for the caller to log.
 */
export function removeStaleDirs(prefix: string, base = tmpdir()): { removed: string[]; failed: string[] } {
  const pattern = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(\\d+)-[^/]+$`)
  const out = { removed: [] as string[], failed: [] as string[] }
  for (const name of readdirSync(base)) {
    const pid = Number(pattern.exec(name)?.[1])
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid || alive(pid)) continue
    try {
      rmSync(join(base, name), { recursive: true, force: true })
      out.removed.push(name)
    } catch {
      out.failed.push(name)
    }
  }
  return out
}

/** A new private folder `<prefix><pid>-XXXXXX` in `base`. */
export function makePrivateDir(prefix: string, base = tmpdir()): string {
  return mkdtempSync(join(base, `${prefix}${process.pid}-`))
}
