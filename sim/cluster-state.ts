/**
 * The in-memory cluster state that tests and benchmarks of the layers above p2p
 * (roles, vpn) run on, in place of a p2p node: a site
 * of replicas, one per node, that share entries over links which can be cut, isolated
 * and healed. A put lands in the writer's replica and in every replica it is linked to
 * (per (owner, key) the higher version wins, as in the real state); healing a link runs
 * anti-entropy over it. Events are dispatched on a microtask, as a real merge would.
 * Each test creates its own site; nothing is shared between sites.
 */
import type { ClusterState, ClusterStateEvents, JsonValue, Liveness, Member, StateEntry } from '../p2p/types.ts'
import { systemClock, type Clock } from '../util/clock.ts'

/** One node's view of a fake site. */
export interface FakeClusterState extends ClusterState {
  /** Number of `put` calls by this node. */
  readonly puts: number
  /** Makes `put` reject for matching keys, as the real store does over its quotas. */
  refusePut: (key: string) => boolean
}

/** Options of `createFakeSite`. */
export interface FakeSiteOptions {
  /** Source of `writtenAt` and `lastSeen`. @default systemClock */
  clock?: Clock
}

/** A site of fake replicas. */
export interface FakeSite {
  /** The view of node `peerId`, joining the site on the first call with `entries` (a restart's state file). */
  node: (peerId: string, entries?: readonly StateEntry[]) => FakeClusterState
  /** Removes a node (a crash or a stop) and returns its entries, so a restart can bring them back. */
  leave: (peerId: string) => StateEntry[]
  /** Cuts the link between two nodes: they stop exchanging entries and drop out of each other's members. */
  cut: (a: string, b: string) => void
  /** Cuts every link of a node, also to nodes that join later. */
  isolate: (peerId: string) => void
  /** Restores the cut links of `peerId` (every cut link when omitted) and exchanges what was missed. */
  heal: (peerId?: string) => void
  /** Sets a member's liveness as every other node sees it; fires `member:leave` for `dead`. */
  setLiveness: (peerId: string, liveness: Liveness) => void
  /** Writes an entry as if it came from `owner` (tests of foreign or malformed adverts), reaching every node, also those that join later. */
  inject: (owner: string, key: string, value: JsonValue) => StateEntry
  /**
   * Holds every put until the returned function is called, as a slow network would:
   * nodes that boot together then decide before they see each other's entries.
   */
  hold: () => { waiting: () => number, release: () => void }
}

interface Replica {
  state: FakeClusterState
  entries: Map<string, StateEntry>
  events: EventTarget
}

const slot = (owner: string, key: string): string => `${owner}\u0000${key}`
const linkId = (a: string, b: string): string => (a < b ? `${a}\u0000${b}` : `${b}\u0000${a}`)

/** Creates an empty site. */
export function createFakeSite (options: FakeSiteOptions = {}): FakeSite {
  const clock = options.clock ?? systemClock
  const replicas = new Map<string, Replica>()
  const cutLinks = new Set<string>()
  const isolated = new Set<string>()
  const injected = new Map<string, StateEntry>()
  const liveness = new Map<string, Liveness>()
  let gate: { promise: Promise<void>, waiting: number } | undefined

  const linked = (a: string, b: string): boolean => a !== b && !isolated.has(a) && !isolated.has(b) && !cutLinks.has(linkId(a, b))
  const member = (peerId: string): Member => ({
    peerId, liveness: liveness.get(peerId) ?? 'alive', lastSeen: clock.now(), addresses: [], discoveredBy: 'mdns'
  })
  const dispatch = (to: Replica, type: keyof ClusterStateEvents, detail: unknown): void => {
    queueMicrotask(() => { to.events.dispatchEvent(new CustomEvent(type, { detail })) })
  }
  const merge = (to: Replica, entry: StateEntry, origin: 'local' | 'remote'): void => {
    const id = slot(entry.owner, entry.key)
    const previous = to.entries.get(id)
    if (previous !== undefined && previous.version >= entry.version) return
    to.entries.set(id, entry)
    dispatch(to, 'change', { entry, ...(previous === undefined ? {} : { previous }), origin })
  }
  const deliver = (from: string, entry: StateEntry): void => {
    for (const [id, r] of replicas) if (linked(from, id)) merge(r, entry, 'remote')
  }
  /** Anti-entropy between two linked nodes. */
  const sync = (a: Replica, b: Replica): void => {
    for (const e of [...a.entries.values()]) merge(b, e, 'remote')
    for (const e of [...b.entries.values()]) merge(a, e, 'remote')
  }
  const relink = (a: string, b: string, joined: boolean): void => {
    const ra = replicas.get(a)
    const rb = replicas.get(b)
    if (ra === undefined || rb === undefined) return
    const type = joined ? 'member:join' : 'member:leave'
    dispatch(ra, type, member(b))
    dispatch(rb, type, member(a))
    if (joined) sync(ra, rb)
  }

  const create = (peerId: string, initial: readonly StateEntry[]): Replica => {
    const events = new EventTarget()
    const entries = new Map<string, StateEntry>()
    for (const e of initial) entries.set(slot(e.owner, e.key), e)
    let puts = 0
    const replica: Replica = { entries, events, state: undefined as unknown as FakeClusterState }
    replica.state = {
      self: peerId,
      get puts () { return puts },
      refusePut: () => false,
      get: (owner, key) => entries.get(slot(owner, key)),
      list: (prefix = '') => [...entries.values()].filter((e) => e.key.startsWith(prefix))
        .sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0),
      put: async (key, value) => {
        puts++
        if (replica.state.refusePut(key)) throw new Error(`state key "${key}": owner quota reached`)
        const held = gate
        if (held !== undefined) {
          held.waiting++
          await held.promise
        }
        const previous = entries.get(slot(peerId, key))
        const entry: StateEntry = { owner: peerId, key, version: (previous?.version ?? 0) + 1, writtenAt: clock.now(), value }
        merge(replica, entry, 'local')
        deliver(peerId, entry)
        return entry
      },
      members: () => [...replicas.keys()].filter((id) => linked(peerId, id)).map(member),
      addEventListener: (type, listener) => { events.addEventListener(type, listener as (evt: Event) => void) },
      removeEventListener: (type, listener) => { events.removeEventListener(type, listener as (evt: Event) => void) }
    }
    return replica
  }

  return {
    node: (peerId, entries = []) => {
      const existing = replicas.get(peerId)
      if (existing !== undefined) return existing.state
      const r = create(peerId, entries)
      for (const e of injected.values()) merge(r, e, 'remote')
      replicas.set(peerId, r)
      for (const id of replicas.keys()) if (linked(peerId, id)) relink(peerId, id, true)
      return r.state
    },
    leave: (peerId) => {
      const r = replicas.get(peerId)
      if (r === undefined) throw new Error(`fake site: no node ${peerId}; expected one created with node()`)
      replicas.delete(peerId)
      for (const [id, o] of replicas) if (linked(peerId, id)) dispatch(o, 'member:leave', member(peerId))
      return [...r.entries.values()]
    },
    cut: (a, b) => {
      if (!linked(a, b)) return
      cutLinks.add(linkId(a, b))
      relink(a, b, false)
    },
    isolate: (peerId) => {
      const before = [...replicas.keys()].filter((id) => linked(peerId, id))
      isolated.add(peerId)
      for (const id of before) relink(peerId, id, false)
    },
    heal: (peerId) => {
      const ids = peerId === undefined ? [...replicas.keys()] : [peerId]
      const before = new Set<string>()
      for (const a of ids) for (const b of replicas.keys()) if (linked(a, b)) before.add(linkId(a, b))
      for (const a of ids) {
        isolated.delete(a)
        for (const link of [...cutLinks]) if (peerId === undefined || link.split('\u0000').includes(a)) cutLinks.delete(link)
      }
      for (const a of ids) {
        for (const b of replicas.keys()) {
          if (!linked(a, b) || before.has(linkId(a, b))) continue
          before.add(linkId(a, b))
          relink(a, b, true)
        }
      }
    },
    setLiveness: (peerId, l) => {
      liveness.set(peerId, l)
      if (l === 'dead') for (const [id, r] of replicas) if (id !== peerId) dispatch(r, 'member:leave', member(peerId))
    },
    inject: (owner, key, value) => {
      let version = injected.get(slot(owner, key))?.version ?? 0
      for (const r of replicas.values()) version = Math.max(version, r.entries.get(slot(owner, key))?.version ?? 0)
      const entry: StateEntry = { owner, key, version: version + 1, writtenAt: clock.now(), value }
      injected.set(slot(owner, key), entry)
      for (const r of replicas.values()) merge(r, entry, r.state.self === owner ? 'local' : 'remote')
      return entry
    },
    hold: () => {
      let release = (): void => {}
      const held = { promise: new Promise<void>((resolve) => { release = resolve }), waiting: 0 }
      gate = held
      return { waiting: () => held.waiting, release: () => { if (gate === held) gate = undefined; release() } }
    }
  }
}
