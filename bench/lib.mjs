// What the Node benchmark scripts share.
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'

/** The middle value of a sample (the upper one of the two middles for an even count): the
 * benchmarks' medians. */
export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/** A free loopback port (the kernel picks it; the listener is closed before it is used). */
export const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })

/** The feature vector's length, as the core describes its specs (scripts/tabr/specs.json,
 * written by make contracts): the benchmarks' feature requests are this long. */
export const N_FEATURES = JSON.parse(readFileSync(new URL('../scripts/tabr/specs.json', import.meta.url), 'utf8')).specs[0].n_features

/** Polls `ok` (errors count as not yet) every `everyMs` until it gives a truthy value, which
 * it returns; past `timeoutMs` it throws, naming `what`. */
export async function until(what, ok, timeoutMs, everyMs = 200) {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = await ok().catch(() => undefined)
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, everyMs))
  }
}
