// Private temp folders named after the process that owns them, and the clean-up of those left
// behind. A process killed with SIGKILL cannot remove its folder, which may hold a copy of an
// upload; the next process of the same kind removes the folders whose owner is gone.
//
// A folder is `<prefix><ns>-<pid>-XXXXXX` (mode 0700): `ns` is the owner's pid namespace (the
// inode of /proc/self/ns/pid), because a pid means nothing outside its namespace. Containers
// sharing a /tmp volume, or a container restarted onto its old volume, see each other's
// folders with pids that are not theirs: a live worker's folder was once removed that way (two
// containers, both pid 6). So:
//   - a folder of this namespace goes when `kill(pid, 0)` says ESRCH (EPERM is someone else's
//     live process), never otherwise;
//   - any other folder (another namespace, or a name without one) goes only when it has not
//     been touched for STALE_MS: every owner touches its folder each HEARTBEAT_MS, and sweeps
//     again then, so what a dead container left is removed by the next one within STALE_MS.
import { mkdtempSync, readdirSync, readlinkSync, rmSync, statSync, utimesSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const HEARTBEAT_MS = 60_000
export const STALE_MS = 15 * 60_000

/** This process's pid namespace as digits ('0' where /proc does not tell). */
export function pidNamespace(): string {
  try {
    return /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))?.[1] ?? '0'
  } catch {
    return '0'
  }
}
const NS = pidNamespace()

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH'
  }
}

function untouchedFor(path: string, now: number): number {
  try {
    return now - statSync(path).mtimeMs
  } catch {
    return 0
  }
}

/** The folders a sweep removed, and those it could not (e.g. another user's). */
export interface SweepResult {
  removed: string[]
  failed: string[]
}

/** Removes the folders of `prefix` in `base` whose owner is gone (see the header). */
export function removeStaleDirs(prefix: string, base = tmpdir(), now = Date.now()): SweepResult {
  const p = prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  const named = new RegExp(`^${p}(\\d+)-(\\d+)-[^/]+$`)
  const legacy = new RegExp(`^${p}\\d+-[^/]+$`)
  const out: SweepResult = { removed: [], failed: [] }
  for (const name of readdirSync(base)) {
    const m = named.exec(name)
    let gone: boolean
    if (m && m[1] === NS) {
      const pid = Number(m[2])
      gone = Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && !alive(pid)
    } else if (m || legacy.test(name)) {
      gone = untouchedFor(join(base, name), now) > STALE_MS
    } else continue
    if (!gone) continue
    try {
      rmSync(join(base, name), { recursive: true, force: true })
      out.removed.push(name)
    } catch {
      out.failed.push(name)
    }
  }
  return out
}

export interface PrivateDir {
  path: string
  /** Stops the heartbeat and removes the folder with what it holds. */
  release(): void
}

/**
 * A new private folder `<prefix><ns>-<pid>-XXXXXX` in `base`, touched every HEARTBEAT_MS; each
 * beat also sweeps `prefix`'s stale folders and reports what it removed to `onSweep`.
 */
export function makePrivateDir(prefix: string, opts: { base?: string; onSweep?: (r: SweepResult) => void } = {}): PrivateDir {
  const base = opts.base ?? tmpdir()
  const path = mkdtempSync(join(base, `${prefix}${NS}-${process.pid}-`))
  const beat = setInterval(() => {
    try {
      const now = new Date()
      utimesSync(path, now, now)
      const r = removeStaleDirs(prefix, base)
      if (r.removed.length || r.failed.length) opts.onSweep?.(r)
    } catch {
      // The folder or its base went away: nothing to keep alive; the owner's own use reports it.
    }
  }, HEARTBEAT_MS)
  beat.unref()
  return {
    path,
    release() {
      clearInterval(beat)
      rmSync(path, { recursive: true, force: true })
    },
  }
}
