/**
 * Runs the replica's garbage collection (`LocalStateStore.collect`) on a ticker and
 * when poked (a member joined, died or left), with the node's view of who is present.
 */
import { systemClock, type Clock } from '../../util/clock.ts'
import { errorMessage } from '../../util/errors.ts'
import { silentLogger, type Logger } from '../../util/log.ts'
import type { Liveness } from '../types.ts'
import type { OwnerPresence, OwnerPresenceView } from './gc.ts'
import type { CollectResult, LocalStateStore } from './store.ts'

/** How often the collector runs without a poke, ms. @default 60000 */
export const DEFAULT_COLLECT_INTERVAL_MS = 60_000
/** Least time between two collections, ms: a booting site pokes on every member change. @default 1000 */
export const DEFAULT_COLLECT_MIN_GAP_MS = 1_000

/**
 * An owner's presence from the node's own facts: admitted by this node (it proved the
 * token to us) or a member the view holds alive or suspect is present; a member held
 * dead (or gone) is gone; anything else is unknown.
 */
export function ownerPresence (facts: { admitted: (peerId: string) => boolean, liveness: (peerId: string) => Liveness | undefined }): OwnerPresenceView {
  return (owner: string): OwnerPresence => {
    if (facts.admitted(owner)) return 'present'
    const l = facts.liveness(owner)
    if (l === undefined) return 'unknown'
    return l === 'dead' ? 'gone' : 'present'
  }
}

/** Options of `createStateCollector`. */
export interface StateCollectorInit {
  store: Pick<LocalStateStore, 'collect'>
  /** Who is present now (see `ownerPresence`). */
  presence: OwnerPresenceView
  /** @default DEFAULT_COLLECT_INTERVAL_MS */
  intervalMs?: number
  /** @default DEFAULT_COLLECT_MIN_GAP_MS */
  minGapMs?: number
  /** Called after a collection that forgot or revived someone (e.g. to wake readers of the state). */
  onCollect?: (result: CollectResult) => void
  /** @default systemClock */
  clock?: Clock
  /** @default silentLogger */
  logger?: Logger
}

/** The collection loop. */
export interface StateCollector {
  /** Runs a first collection and starts the loop. Idempotent. */
  start(): void
  /** Runs a collection soon (coalesced with one already due). */
  poke(): void
  /** Stops the loop; prompt and idempotent. */
  stop(): Promise<void>
}

/**
 * Creates the loop that calls `store.collect(presence)` every `intervalMs` and on
 * `poke()`. A throwing `collect` or `onCollect` is logged and the loop goes on.
 */
export function createStateCollector (init: StateCollectorInit): StateCollector {
  const clock = init.clock ?? systemClock
  const log = init.logger ?? silentLogger
  const intervalMs = init.intervalMs ?? DEFAULT_COLLECT_INTERVAL_MS
  if (!Number.isFinite(intervalMs) || intervalMs <= 0) throw new RangeError(`state collector intervalMs: expected a positive number, got ${intervalMs}`)
  const minGapMs = Math.min(init.minGapMs ?? DEFAULT_COLLECT_MIN_GAP_MS, intervalMs)
  let life: AbortController | undefined
  let done: Promise<void> | undefined
  let nap: AbortController | undefined
  let poked = false

  const once = (): void => {
    try {
      const result = init.store.collect(init.presence)
      if (result.forgotten.length > 0 || result.revived.length > 0) init.onCollect?.(result)
    } catch (err) {
      log.error('state garbage collection failed', { error: errorMessage(err) })
    }
  }

  const loop = async (signal: AbortSignal): Promise<void> => {
    while (!signal.aborted) {
      if (!poked) {
        nap = new AbortController()
        const wake = nap
        const onAbort = (): void => { wake.abort() }
        signal.addEventListener('abort', onAbort, { once: true })
        await clock.sleep(intervalMs, wake.signal).catch(() => {})
        signal.removeEventListener('abort', onAbort)
        nap = undefined
      }
      if (signal.aborted) break
      poked = false
      once()
      await clock.sleep(minGapMs, signal).catch(() => {})
    }
  }

  return {
    start: () => {
      if (life !== undefined) return
      life = new AbortController()
      once()
      done = loop(life.signal)
    },
    poke: () => {
      poked = true
      nap?.abort()
    },
    stop: async () => {
      life?.abort()
      nap?.abort()
      await done
      life = undefined
      done = undefined
    }
  }
}
