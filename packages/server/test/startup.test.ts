// What a process checks and cleans when it starts: the temp folders that killed processes left
// behind (removed, never a live process's), and, in queue mode, whether Redis keeps what the
// queue holds (a warning when it has neither AOF nor RDB persistence).
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { createService } from '../src/app.js'
import { makeLogger } from '../src/core/observability.js'
import { alive, HEARTBEAT_MS, makePrivateDir, pidNamespace, removeStaleDirs, STALE_MS, type SweepResult } from '../src/core/tempdirs.js'
import { checkPersistence, redisConnection } from '../src/services/queue.js'
import { auth, config, DEMO, spawnService } from './helpers.js'
import { queueEnv, startRedis, startWorker, until } from './queue-helpers.js'

/** A pid that was just in use and is not any more. */
const deadPid = () => Number(execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }))

const NS = pidNamespace()

/** A folder `<prefix><ns>-<pid>-<tag>` in base holding a file, as a process would have left it. */
function leftBehind(base: string, prefix: string, pid: number, tag: string, ns: string | null = NS) {
  const dir = join(base, `${prefix}${ns === null ? '' : `${ns}-`}${pid}-${tag}`)
  mkdirSync(dir)
  writeFileSync(join(dir, 'upload'), 'a copy of an upload')
  return dir
}

function logSink() {
  const lines: Record<string, any>[] = []
  const sink = new Writable({
    write: (chunk, _enc, cb) =>
      void (lines.push(
        ...String(chunk)
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l)),
      ),
      cb()),
  })
  return { lines, logger: makeLogger('info', sink) }
}

describe('stale temp folders', () => {
  const bases: string[] = []
  const base = () => {
    const b = mkdtempSync(join(tmpdir(), 'tabr-stale-'))
    bases.push(b)
    return b
  }
  afterAll(() => bases.forEach((b) => rmSync(b, { recursive: true, force: true })))

  it('removes the folders of processes that are gone, and only those', async () => {
    const b = base()
    const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' })
    const own = makePrivateDir('tabr-worker-', { base: b })
    try {
      const dead = leftBehind(b, 'tabr-worker-', deadPid(), 'aaaaaa')
      const living = leftBehind(b, 'tabr-worker-', live.pid!, 'bbbbbb')
      // This process's pid on a folder it did not make: a predecessor in a recycled namespace.
      const recycled = leftBehind(b, 'tabr-worker-', process.pid, 'cccccc')
      const init = leftBehind(b, 'tabr-worker-', 1, 'dddddd')
      const other = leftBehind(b, 'tabr-serve-', deadPid(), 'eeeeee')
      mkdirSync(join(b, 'tabr-worker-test-ffffff'))
      const { removed, failed } = removeStaleDirs('tabr-worker-', b)
      expect([removed.sort(), failed]).toEqual([[dead, recycled].map((d) => d.split('/').pop()).sort(), []])
      for (const gone of [dead, recycled]) expect(existsSync(gone)).toBe(false)
      for (const kept of [own.path, living, init, other, join(b, 'tabr-worker-test-ffffff')]) expect(existsSync(kept), kept).toBe(true)
    } finally {
      own.release()
      live.kill()
    }
  })

  it('an owner touches its folder each beat, makes it again if it was removed, sweeps, and stops when released', () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] })
    const b = base()
    try {
      const sweeps: SweepResult[] = []
      let remade = 0
      const own = makePrivateDir('tabr-worker-', { base: b, onSweep: (r) => sweeps.push(r), onRemade: () => (remade += 1) })
      const dead = leftBehind(b, 'tabr-worker-', deadPid(), 'aaaaaa')
      rmSync(own.path, { recursive: true })
      vi.advanceTimersByTime(HEARTBEAT_MS)
      expect(existsSync(own.path)).toBe(true)
      expect(remade).toBe(1)
      expect(sweeps).toEqual([{ removed: [dead.split('/').pop()], failed: [] }])
      // The next beat touches the folder: its mtime is the (fake) now.
      vi.advanceTimersByTime(HEARTBEAT_MS)
      expect(Math.abs(statSync(own.path).mtimeMs - Date.now())).toBeLessThan(2000)
      own.release()
      expect(existsSync(own.path)).toBe(false)
      vi.advanceTimersByTime(3 * HEARTBEAT_MS)
      expect([existsSync(own.path), remade]).toEqual([false, 1])
    } finally {
      vi.useRealTimers()
    }
  })

  it("never judges another pid namespace's folder by its pid: it goes only once untouched for STALE_MS", () => {
    const b = base()
    // Another container's worker sharing this /tmp: its pid means nothing here (dead here).
    const otherNs = NS.replace(/b[0-9a-f]{8}$/, NS.endsWith('bdeadbeef') ? 'bfeedf00d' : 'bdeadbeef')
    const fresh = leftBehind(b, 'tabr-worker-', deadPid(), 'aaaaaa', otherNs)
    const old = leftBehind(b, 'tabr-worker-', deadPid(), 'bbbbbb', otherNs)
    // A folder named the way earlier versions did (no namespace).
    const legacyFresh = leftBehind(b, 'tabr-worker-', deadPid(), 'cccccc', null)
    const legacyOld = leftBehind(b, 'tabr-worker-', deadPid(), 'dddddd', null)
    // An earlier version's process still running here: its pid is alive.
    const legacyLive = leftBehind(b, 'tabr-worker-', process.pid, 'eeeeee', null)
    const past = new Date(Date.now() - STALE_MS - 60_000)
    for (const d of [old, legacyOld, legacyLive]) utimesSync(d, past, past)
    const { removed } = removeStaleDirs('tabr-worker-', b)
    expect(removed.sort()).toEqual([old, legacyOld].map((d) => d.split('/').pop()).sort())
    for (const kept of [fresh, legacyFresh, legacyLive]) expect(existsSync(kept), kept).toBe(true)
  })

  // The defect deploy-test met: two worker containers sharing a /tmp volume, both pid 6; one
  // restarted and removed the other's live folder. Here the other container is a real pid
  // namespace (unshare, root only) whose process gets a pid that is dead in this namespace.
  const unshare = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true']).status === 0
  it.skipIf(!unshare)('keeps the folder of a live process in another pid namespace whose pid is dead here (needs unshare --pid: root)', async () => {
    const b = base()
    const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8'))
    let pid = Math.floor((pidMax * 3) / 4)
    while (alive(pid)) pid += 1
    const holder = `const { makePrivateDir } = await import(${JSON.stringify(new URL('../dist/core/tempdirs.js', import.meta.url).href)}); const d = makePrivateDir('tabr-worker-', { base: ${JSON.stringify(b)} }); console.log(process.pid, d.path); setInterval(() => {}, 1000)`
    const other = spawn(
      'unshare',
      ['--pid', '--fork', '--kill-child', '--mount-proc', 'sh', '-c', `echo ${pid - 1} > /proc/sys/kernel/ns_last_pid && { "$0" --input-type=module -e "$1" & wait; }`, process.execPath, holder],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    try {
      const line = await new Promise<string>((ok, fail) => {
        let out = ''
        other.stdout!.on('data', (c) => {
          out += c
          if (out.includes('\n')) ok(out.trim())
        })
        other.on('exit', (code) => fail(new Error(`the other namespace's process exited (${code})`)))
      })
      const [innerPid, dir] = line.split(' ')
      expect(Number(innerPid)).toBe(pid)
      expect(alive(pid)).toBe(false)
      expect(removeStaleDirs('tabr-worker-', b).removed).toEqual([])
      expect(existsSync(dir!)).toBe(true)
    } finally {
      other.kill('SIGKILL')
    }
  })

  it('a worker removes the folder a SIGKILLed worker left, at start-up, and names its own by pid', async () => {
    const redis = await startRedis()
    const b = base()
    const first = await startWorker(queueEnv(redis.url, { TMPDIR: b }))
    try {
      const own = (pid: number) => readdirSync(b).filter((d) => d.startsWith(`tabr-worker-${NS}-${pid}-`))
      expect(own(first.proc.pid!)).toHaveLength(1)
      // Killed mid-life: its folder stays, with what it held.
      writeFileSync(join(b, own(first.proc.pid!)[0]!, 'upload'), 'a copy of an upload')
      first.proc.kill('SIGKILL')
      await first.exited
      expect(own(first.proc.pid!)).toHaveLength(1)
      const second = await startWorker(queueEnv(redis.url, { TMPDIR: b }))
      try {
        expect(own(first.proc.pid!)).toEqual([])
        expect(own(second.proc.pid!)).toHaveLength(1)
        expect(second.lines.some((l) => l.msg === 'removed the temp folders of workers that no longer run')).toBe(true)
      } finally {
        second.proc.kill('SIGTERM')
        await second.exited
      }
      // A graceful stop removes the worker's own folder.
      expect(own(second.proc.pid!)).toEqual([])
    } finally {
      if (first.proc.exitCode === null && first.proc.signalCode === null) first.proc.kill('SIGKILL')
      await redis.stop()
    }
  })

  it('the API removes the upload folder a killed API left', async () => {
    const b = base()
    const stale = leftBehind(b, 'tabr-serve-', deadPid(), 'aaaaaa')
    const previous = process.env.TMPDIR
    process.env.TMPDIR = b
    try {
      const s = createService(config())
      try {
        expect(existsSync(stale)).toBe(false)
        expect(s.uploadDir.startsWith(join(b, `tabr-serve-${NS}-${process.pid}-`))).toBe(true)
      } finally {
        await s.dispose()
      }
    } finally {
      if (previous === undefined) delete process.env.TMPDIR
      else process.env.TMPDIR = previous
    }
  })
})

describe('Redis persistence (queue mode)', () => {
  const check = async (settings: string[]) => {
    const redis = await startRedis(settings)
    const conn = redisConnection(redis.url, { blocking: true })
    const { lines, logger } = logSink()
    try {
      return { verdict: await checkPersistence(conn, logger), lines }
    } finally {
      conn.disconnect()
      await redis.stop()
    }
  }

  it('warns when Redis keeps neither AOF nor RDB, and only then', async () => {
    const none = await check(['--save', '', '--appendonly', 'no'])
    expect(none.verdict).toBe('volatile')
    expect(none.lines.filter((l) => l.level === 40).map((l) => l.msg)).toEqual([expect.stringMatching(/no persistence.*restart loses every accepted job/)])
    for (const settings of [
      ['--save', '', '--appendonly', 'yes'],
      ['--save', '3600 1', '--appendonly', 'no'],
    ]) {
      const ok = await check(settings)
      expect([settings, ok.verdict]).toEqual([settings, 'persistent'])
      expect(ok.lines.filter((l) => l.level >= 40)).toEqual([])
    }
  })

  it('logs persistence unknown (info, no warning) when Redis refuses CONFIG', async () => {
    const r = await check(['--save', '', '--appendonly', 'no', '--rename-command', 'CONFIG', ''])
    expect(r.verdict).toBe('unknown')
    expect(r.lines.map((l) => [l.level, l.msg])).toEqual([[30, expect.stringMatching(/persistence unknown/)]])
  })

  it('the API and a worker warn at start-up', async () => {
    const redis = await startRedis()
    const { lines, logger } = logSink()
    const cfg = config(queueEnv(redis.url))
    const s = createService(cfg, { logger })
    const worker = await startWorker(queueEnv(redis.url))
    try {
      await until(() => lines.some((l) => l.level === 40 && /no persistence/.test(l.msg)), 10_000, 'the API warning')
      expect(worker.lines.some((l) => l.level === 40 && /no persistence/.test(String(l.msg)))).toBe(true)
    } finally {
      worker.proc.kill('SIGTERM')
      await worker.exited
      await s.dispose()
      await redis.stop()
    }
  })
})

describe('model load warnings', () => {
  it('ORT_PROVIDER=auto on a CPU-only runtime: the service logs the fallback as one JSON warning naming the model, and nothing raw', async () => {
    const svc = await spawnService({ ORT_PROVIDER: 'auto' })
    try {
      const records = svc.output.map((l) => JSON.parse(l) as { level: number; model?: string; msg?: string })
      const w = records.find((r) => /^provider auto: .*; running on the CPU$/.test(r.msg ?? ''))
      expect(w).toMatchObject({ level: 40, model: 'tabr-demo' })
    } finally {
      await svc.stop()
    }
  })
})

describe('a registry name other than the manifest name', () => {
  it('is served as MODEL_REGISTRY names it, and the difference is logged as one warning', async () => {
    const svc = await spawnService({ MODEL_REGISTRY: `other-name:tabr:${DEMO}` })
    try {
      const records = svc.output.map((l) => JSON.parse(l) as { level: number; model?: string; msg?: string })
      expect(records.find((r) => /manifest names it/.test(r.msg ?? ''))).toMatchObject({
        level: 40,
        model: 'other-name',
        msg: 'the model directory\'s manifest names it "tabr-demo"; it is served as "other-name" (MODEL_REGISTRY)',
      })
      const r = await fetch(`${svc.url}/models/other-name`, { headers: auth() })
      expect(((await r.json()) as { name: string }).name).toBe('other-name')
    } finally {
      await svc.stop()
    }
    const same = await spawnService()
    try {
      expect(same.output.some((l) => /manifest names it/.test(l))).toBe(false)
    } finally {
      await same.stop()
    }
  })
})

describe('the libuv thread pool', () => {
  it('is sized by the launcher from CONCURRENCY and FEATURE_CONCURRENCY, and an explicit smaller UV_THREADPOOL_SIZE is warned about', async () => {
    const warned = (output: string[]) => output.some((l) => /"level":40/.test(l) && /libuv thread pool/.test(l))
    const sized = await spawnService({ CONCURRENCY: '4', FEATURE_CONCURRENCY: '2' })
    try {
      expect(warned(sized.output)).toBe(false)
    } finally {
      await sized.stop()
    }
    const small = await spawnService({ CONCURRENCY: '4', FEATURE_CONCURRENCY: '2', UV_THREADPOOL_SIZE: '4' })
    try {
      expect(warned(small.output)).toBe(true)
      expect(small.output.find((l) => /libuv thread pool/.test(l))).toMatch(/UV_THREADPOOL_SIZE=8/)
    } finally {
      await small.stop()
    }
  })
})
