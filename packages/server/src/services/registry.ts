// The model registry: MODEL_REGISTRY entries → handler instances, loaded eagerly at start-up
// or lazily on first use. It knows handler keys, not model internals, and is the same object
// in sync and queue modes. A bad entry stops start-up with one line naming the entry.
import { existsSync, statSync } from 'node:fs'
import { resolve } from 'node:path'
import { ConfigError, type RegistryEntry } from '../core/config.js'
import { ApiError, modelNotFound } from '../core/errors.js'
import type { HandlerFactory, HandlerOptions, ModelHandler, ModelInfo } from './handler.js'
import { tabrHandler } from './handlers/tabr.js'

export const HANDLERS: Record<string, HandlerFactory> = { tabr: tabrHandler }

interface Slot {
  entry: RegistryEntry
  handler: ModelHandler
  loading?: Promise<void>
  ready: boolean
}

export class Registry {
  private readonly closing = new AbortController()
  private readonly slots = new Map<string, Slot>()

  constructor(
    entries: RegistryEntry[],
    private readonly opts: HandlerOptions & { lazy: boolean },
  ) {
    entries.forEach((entry, i) => {
      const where = `MODEL_REGISTRY entry ${i + 1} (${entry.name})`
      const factory = HANDLERS[entry.handler]
      if (!factory) throw new ConfigError(`${where}: unknown handler ${JSON.stringify(entry.handler)} (known: ${Object.keys(HANDLERS).join(', ')})`)
      const dir = resolve(entry.dir)
      if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new ConfigError(`${where}: the model directory does not exist`)
      this.slots.set(entry.name, { entry: { ...entry, dir }, handler: factory(entry.name, opts), ready: false })
    })
  }

  /** Loads every model (eager mode); rejects with a ConfigError naming the first bad entry. */
  async loadAll(): Promise<void> {
    let i = 0
    for (const slot of this.slots.values()) {
      i++
      try {
        await this.ensure(slot)
      } catch (e) {
        throw new ConfigError(`MODEL_REGISTRY entry ${i} (${slot.entry.name}): ${(e as Error).message}`)
      }
    }
  }

  private ensure(slot: Slot): Promise<void> {
    slot.loading ??= slot.handler.load(slot.entry.dir, this.closing.signal).then(
      () => void (slot.ready = true),
      (e) => {
        slot.loading = undefined
        throw e
      },
    )
    return slot.loading
  }

  /** Stops loading: a load not started yet never starts, one under way is dropped when done
   * (its promise rejects with `aborted`). Called when the service shuts down. */
  close(): void {
    this.closing.abort()
  }

  /** Whether every model that must be loaded before serving is loaded. */
  ready(): boolean {
    return this.opts.lazy || [...this.slots.values()].every((s) => s.ready)
  }

  /** Refuses (404 model_not_found) a name the registry does not hold, without loading it. */
  assertKnown(name: string): void {
    if (!this.slots.has(name)) throw modelNotFound(name)
  }

  /** The loaded handler of a model (loading it first in lazy mode); 404 when unknown. */
  async get(name: string): Promise<ModelHandler> {
    const slot = this.slots.get(name)
    if (!slot) throw modelNotFound(name)
    if (!slot.ready) {
      if (!this.opts.lazy) throw new ApiError('not_ready', 'the model is still loading', { 'Retry-After': '1' })
      await this.ensure(slot).catch(() => {
        throw new ApiError('model_error', 'the model cannot be loaded')
      })
    }
    return slot.handler
  }

  /** Metadata of every loaded model (unloaded lazy ones give their name only). */
  list(): (ModelInfo | { name: string; loaded: false })[] {
    return [...this.slots.values()].map((s) => (s.ready ? s.handler.describe() : { name: s.entry.name, loaded: false as const }))
  }
}
