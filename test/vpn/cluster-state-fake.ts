import type { ClusterState, ClusterStateEvents, JsonValue, Liveness, Member, StateEntry } from '../../p2p/types.ts'

/**
 * An in-memory site: every node's `ClusterState` view reads one shared map, so a put
 * is visible everywhere at once (events are delivered on a microtask, like a merge).
 * Each test creates its own site; nothing is shared between tests.
 */
export interface FakeSite {
  /** The view of node `peerId` (joins the site on first call). */
  node(peerId: string): FakeClusterState
  /** Sets a member's liveness as every other node sees it and fires `member:leave` for `dead`. */
  setLiveness(peerId: string, liveness: Liveness): void
  /** Writes an entry as if it came from `owner` (tests of foreign or malformed adverts). */
  inject(owner: string, key: string, value: JsonValue): StateEntry
  /**
   * Holds every put until the returned function is called, as a slow network would:
   * nodes that boot together then decide before they see each other's entries.
   */
  hold(): { waiting: () => number, release: () => void }
}

export interface FakeClusterState extends ClusterState {
  /** Number of `put` calls by this node. */
  readonly puts: number
}

export function createFakeSite (): FakeSite {
  const entries = new Map<string, StateEntry>()
  const views = new Map<string, { events: EventTarget, state: FakeClusterState }>()
  const liveness = new Map<string, Liveness>()
  let clock = 0
  let gate: { promise: Promise<void>, waiting: number } | undefined

  const member = (peerId: string): Member => ({
    peerId, liveness: liveness.get(peerId) ?? 'alive', lastSeen: clock, addresses: [], discoveredBy: 'mdns'
  })
  const emit = (target: string | undefined, type: keyof ClusterStateEvents, detail: unknown): void => {
    for (const [id, v] of views) {
      if (target !== undefined && id === target) continue
      queueMicrotask(() => { v.events.dispatchEvent(new CustomEvent(type, { detail: typeof detail === 'function' ? (detail as (id: string) => unknown)(id) : detail })) })
    }
  }
  const write = (owner: string, key: string, value: JsonValue): StateEntry => {
    const id = `${owner}\0${key}`
    const previous = entries.get(id)
    const entry: StateEntry = { owner, key, version: (previous?.version ?? 0) + 1, writtenAt: ++clock, value }
    entries.set(id, entry)
    emit(undefined, 'change', (viewer: string) => ({ entry, ...(previous === undefined ? {} : { previous }), origin: viewer === owner ? 'local' : 'remote' }))
    return entry
  }

  return {
    node: (peerId) => {
      const existing = views.get(peerId)
      if (existing !== undefined) return existing.state
      const events = new EventTarget()
      let puts = 0
      const state: FakeClusterState = {
        self: peerId,
        get puts () { return puts },
        get: (owner, key) => entries.get(`${owner}\0${key}`),
        list: (prefix = '') => [...entries.values()].filter((e) => e.key.startsWith(prefix))
          .sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0),
        put: async (key, value) => {
          puts++
          const held = gate
          if (held !== undefined) {
            held.waiting++
            await held.promise
          }
          return write(peerId, key, value)
        },
        members: () => [...views.keys()].filter((id) => id !== peerId).map(member),
        addEventListener: (type, listener) => { events.addEventListener(type, listener as (evt: Event) => void) },
        removeEventListener: (type, listener) => { events.removeEventListener(type, listener as (evt: Event) => void) }
      }
      emit(undefined, 'member:join', member(peerId))
      views.set(peerId, { events, state })
      return state
    },
    setLiveness: (peerId, l) => {
      liveness.set(peerId, l)
      if (l === 'dead') emit(peerId, 'member:leave', member(peerId))
    },
    inject: (owner, key, value) => write(owner, key, value),
    hold: () => {
      let release = (): void => {}
      const held = { promise: new Promise<void>((resolve) => { release = resolve }), waiting: 0 }
      gate = held
      return { waiting: () => held.waiting, release: () => { if (gate === held) gate = undefined; release() } }
    }
  }
}

/** Polls `check` on every macrotask until it returns true or `timeoutMs` passes. */
export async function waitFor (check: () => boolean | Promise<boolean>, timeoutMs = 5_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise<void>((resolve) => { setTimeout(resolve, 5) })
  }
}
