// Private temp folders named after the process that owns them, and the clean-up of those left
// behind. A process killed with SIGKILL cannot remove its folder, which may hold a copy of an
// upload; the processes of the same kind remove the folders whose owner is gone, at start-up
// and then once a minute.
//
// A folder is `<prefix><id>-<pid>-XXXXXX` (mode 0700). `id` names the pid namespace the pid
// belongs to: the inode of /proc/self/ns/pid and a short hash of the boot id (the root
// namespace's inode is the same on every host), because a pid means nothing outside its
// namespace. Containers sharing a /tmp volume, a container restarted onto its old volume, or
// hosts sharing a TMPDIR see each other's folders with pids that are not theirs: a live
// worker's folder was once removed that way (two containers, both pid 6). So:
//   - a folder of this namespace goes when `kill(pid, 0)` says ESRCH (EPERM is someone else's
//     live process); one with this process's own pid goes unless this process made it (a
//     predecessor in a recycled namespace);
//   - any other folder (another namespace, a name without one, or any folder when /proc does
//     not tell the namespace) goes only once untouched for STALE_MS, and, for a name carrying
//     a pid of an unknown namespace, only when no process here has that pid either. Every
//     owner touches its folder each HEARTBEAT_MS, and makes it again if it was removed (a
//     paused container, a clock that jumped) so that its next upload still has a home.
import { createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, utimesSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Logger } from 'pino'

export const HEARTBEAT_MS = 60_000
export const STALE_MS = 15 * 60_000

/** This process's pid namespace, as `<inode>b<boot hash>`; '' where /proc does not tell. */
export function pidNamespace(): string {
  try {
    const inode = /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))?.[1]
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
    return inode && boot ? `${inode}b${createHash('sha256').update(boot).digest('hex').slice(0, 8)}` : ''
  } catch {
    return ''
  }
}
const NS = pidNamespace()
/** The folders this process made and has not released (a namespace's pids are recycled). */
const mine = new Set<string>()

/** Whether a process of this pid namespace has `pid` (only ESRCH means no; EPERM is alive). */
export function alive(pid: number): boolean {
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
  const named = new RegExp(`^${p}(\\d+b[0-9a-f]{8})-(\\d+)-[^/]+$`)
  const legacy = new RegExp(`^${p}(\\d+)-[^/]+$`)
  const out: SweepResult = { removed: [], failed: [] }
  for (const name of readdirSync(base)) {
    const path = join(base, name)
    if (mine.has(path)) continue
    const m = named.exec(name)
    let gone: boolean
    if (m && NS && m[1] === NS) {
      const pid = Number(m[2])
      gone = Number.isSafeInteger(pid) && pid > 0 && (pid === process.pid || !alive(pid))
    } else if (m) {
      gone = untouchedFor(path, now) > STALE_MS
    } else {
      const l = legacy.exec(name)
      if (!l) continue
      // Named by an earlier version: a pid of an unknown namespace, and possibly of this one.
      const pid = Number(l[1])
      gone = untouchedFor(path, now) > STALE_MS && !(Number.isSafeInteger(pid) && pid > 0 && alive(pid))
    }
    if (!gone) continue
    try {
      rmSync(path, { recursive: true, force: true })
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

/** What a folder's owner is told: the sweeps' outcomes, and that its own folder had gone. */
export interface SweepReport {
  onSweep?: (r: SweepResult) => void
  onRemade?: () => void
}

/**
 * Reports to `logger`, by the folders' kind (e.g. 'upload folders of services') and the
 * owner's own ('upload folder'): removals as info, failures and a remade folder as warnings.
 */
export function logSweeps(logger: Logger, folders: string, own: string): SweepReport {
  return {
    onSweep(r) {
      if (r.removed.length) logger.info({ folders: r.removed }, `removed the ${folders} that no longer run`)
      if (r.failed.length) logger.warn({ folders: r.failed }, `cannot remove the ${folders} that no longer run`)
    },
    onRemade: () => logger.warn(`the ${own} had been removed from outside; made again`),
  }
}

/**
 * Sweeps `prefix`'s stale folders in `base`, then makes a new private folder
 * `<prefix><id>-<pid>-XXXXXX` there, touched every HEARTBEAT_MS; each beat sweeps again. The
 * sweeps report to `onSweep` what they removed and what they newly failed to remove (each name
 * once); `onRemade` hears when the folder itself had gone.
 */
export function makePrivateDir(prefix: string, opts: { base?: string } & SweepReport = {}): PrivateDir {
  const base = opts.base ?? tmpdir()
  const reported = new Set<string>()
  const sweep = () => {
    const r = removeStaleDirs(prefix, base)
    const failed = r.failed.filter((n) => !reported.has(n))
    for (const n of failed) reported.add(n)
    if (r.removed.length || failed.length) opts.onSweep?.({ removed: r.removed, failed })
  }
  sweep()
  const path = mkdtempSync(join(base, `${prefix}${NS || '0b00000000'}-${process.pid}-`))
  mine.add(path)
  const beat = setInterval(() => {
    try {
      const now = new Date()
      try {
        utimesSync(path, now, now)
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
        mkdirSync(path, { recursive: true, mode: 0o700 })
        opts.onRemade?.()
      }
      sweep()
    } catch {
      // The base itself is gone or unreadable: the owner's own use of the folder reports it.
    }
  }, HEARTBEAT_MS)
  beat.unref()
  return {
    path,
    release() {
      clearInterval(beat)
      mine.delete(path)
      rmSync(path, { recursive: true, force: true })
    },
  }
}
