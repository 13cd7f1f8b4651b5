/**
 * An in-memory ClusterState for controller tests: replicas that share entries
 * through a `FakeNetwork` (per (owner, key) the higher version wins, as in the real
 * state), with membership derived from which replicas are connected.
 */
import type { ClusterState, ClusterStateEvents, JsonValue, Member, StateEntry } from '../../p2p/types.ts'

/** Connects fake replicas; `cut` and `heal` isolate and reconnect one of them. */
export class FakeNetwork {
  readonly replicas: FakeClusterState[] = []
  private readonly isolated = new Set<string>()

  /** Creates a replica of `self` on this network (its entries survive `detach`/`attach`). */
  join (self: string, entries: StateEntry[] = []): FakeClusterState {
    const r = new FakeClusterState(self, this, entries)
    this.replicas.push(r)
    for (const other of this.connectedTo(r)) { other.emitMember('member:join', r.self); r.emitMember('member:join', other.self) }
    this.sync()
    return r
  }

  /** Removes a replica (a crash); returns its entries so a restart can bring them back. */
  leave (r: FakeClusterState): StateEntry[] {
    const i = this.replicas.indexOf(r)
    if (i >= 0) this.replicas.splice(i, 1)
    for (const other of this.replicas) other.emitMember('member:leave', r.self)
    return r.list()
  }

  cut (self: string): void { this.isolated.add(self) }
  heal (self: string): void { this.isolated.delete(self); this.sync() }

  connectedTo (r: FakeClusterState): FakeClusterState[] {
    if (this.isolated.has(r.self)) return []
    return this.replicas.filter((o) => o !== r && !this.isolated.has(o.self))
  }

  deliver (from: FakeClusterState, entry: StateEntry): void {
    for (const to of this.connectedTo(from)) to.merge(entry)
  }

  /** Anti-entropy between every connected pair. */
  sync (): void {
    for (const r of this.replicas) for (const o of this.connectedTo(r)) for (const e of r.list()) o.merge(e)
  }
}

/** One node's view of the fake state. */
export class FakeClusterState implements ClusterState {
  readonly self: string
  private readonly network: FakeNetwork
  private readonly entries = new Map<string, StateEntry>()
  private readonly target = new EventTarget()
  private readonly since = Date.now()

  constructor (self: string, network: FakeNetwork, entries: StateEntry[]) {
    this.self = self
    this.network = network
    for (const e of entries) this.entries.set(`${e.owner}\u0000${e.key}`, e)
  }

  get (owner: string, key: string): StateEntry | undefined {
    return this.entries.get(`${owner}\u0000${key}`)
  }

  list (prefix = ''): StateEntry[] {
    return [...this.entries.values()]
      .filter((e) => e.key.startsWith(prefix))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0))
  }

  /** Makes `put` reject for matching keys, as the real store does over its quotas. */
  refusePut: (key: string) => boolean = () => false

  async put (key: string, value: JsonValue): Promise<StateEntry> {
    if (this.refusePut(key)) throw new Error(`state key "${key}": owner quota reached`)
    const prev = this.get(this.self, key)
    const entry: StateEntry = { owner: this.self, key, version: (prev?.version ?? 0) + 1, writtenAt: Date.now(), value }
    this.entries.set(`${this.self}\u0000${key}`, entry)
    this.target.dispatchEvent(new CustomEvent('change', { detail: { entry, previous: prev, origin: 'local' } }))
    this.network.deliver(this, entry)
    return entry
  }

  merge (entry: StateEntry): void {
    const prev = this.get(entry.owner, entry.key)
    if (prev !== undefined && prev.version >= entry.version) return
    this.entries.set(`${entry.owner}\u0000${entry.key}`, entry)
    this.target.dispatchEvent(new CustomEvent('change', { detail: { entry, previous: prev, origin: 'remote' } }))
  }

  members (): Member[] {
    return this.network.connectedTo(this).map((o) => ({
      peerId: o.self, liveness: 'alive', lastSeen: Date.now(), addresses: [], discoveredBy: 'mdns'
    }))
  }

  emitMember (type: 'member:join' | 'member:leave', peerId: string): void {
    this.target.dispatchEvent(new CustomEvent(type, { detail: { peerId, liveness: 'alive', lastSeen: this.since, addresses: [], discoveredBy: 'mdns' } }))
  }

  addEventListener<K extends keyof ClusterStateEvents>(type: K, listener: (evt: ClusterStateEvents[K]) => void): void {
    this.target.addEventListener(type, listener as EventListener)
  }

  removeEventListener<K extends keyof ClusterStateEvents>(type: K, listener: (evt: ClusterStateEvents[K]) => void): void {
    this.target.removeEventListener(type, listener as EventListener)
  }
}
