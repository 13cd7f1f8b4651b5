/**
 * The contract between the p2p layer and its readers (roles, vpn, status).
 * Roles and vpn depend on these types only, never on libp2p.
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue }

/**
 * One entry of the replicated cluster state, as readers see it after
 * verification and decryption. Entries are owned: only `owner` (a peer id,
 * base58 string) can write `key` in its own namespace.
 */
export interface StateEntry {
  /** Peer id of the writer; the entry is signed by this peer's key. */
  owner: string
  /** Key inside the owner's namespace, e.g. `vpn/advert`, `roles/vote`. */
  key: string
  /** Monotonic per (owner, key); a higher version replaces a lower one. */
  version: number
  /** Writer's wall clock when it wrote the entry (informational, never used to merge). */
  writtenAt: number
  /** Decrypted, parsed value. `null` is a tombstone. */
  value: JsonValue
}

export interface StateChange {
  entry: StateEntry
  /** The entry it replaced, if any. */
  previous?: StateEntry
  /** `local` for own puts, `remote` for merged entries. */
  origin: 'local' | 'remote'
  /**
   * Set when the entry left the replica instead: evicted from a full replica, its
   * owner forgotten by garbage collection, removed from the site, or a deletion marker
   * (value `null`) that expired (p2p/state/gc.ts `deletionExpired`). `entry` is the entry
   * that went; `get` no longer returns it.
   */
  dropped?: 'evicted' | 'never-admitted' | 'gone' | 'revoked' | 'deleted'
}

export type Liveness = 'alive' | 'suspect' | 'dead'

export interface Member {
  peerId: string
  liveness: Liveness
  /** Wall-clock ms of the last sign of life. */
  lastSeen: number
  /** Multiaddrs we know for the peer. */
  addresses: string[]
  /** How we first learned of it: `mdns`, `dht`, `bootstrap`, `known` (persisted), `peer-exchange`, `inbound`. */
  discoveredBy: string
}

export interface ClusterStateEvents {
  change: CustomEvent<StateChange>
  'member:join': CustomEvent<Member>
  'member:leave': CustomEvent<Member>
}

/** Read/write view of the replicated state for one node. */
export interface ClusterState {
  /** This node's peer id. */
  readonly self: string
  /** The entry `key` of `owner`, or undefined. Tombstones are returned (value null). */
  get(owner: string, key: string): StateEntry | undefined
  /** Every entry whose key starts with `prefix`, across all owners, sorted by (key, owner). */
  list(prefix?: string): StateEntry[]
  /** Writes (or replaces) this node's own entry; resolves once it is in the local replica and handed to gossip. */
  put(key: string, value: JsonValue): Promise<StateEntry>
  /**
   * Current members other than self: neither removed from the site nor dead longer than
   * `p2p.forget_after` (see `departed`).
   */
  members(): Member[]
  /**
   * Identities that no longer count (p2p/departures.ts): `removed` (revoked) or
   * `forgotten` (dead longer than `p2p.forget_after`). Readers leave them out of
   * WireGuard peers and counts. Absent on a view that tracks no departures.
   */
  departed?(): ReadonlyMap<string, 'removed' | 'forgotten'>
  /**
   * Peers discovery reported that are not members yet and that the dialler still tries
   * (not held off after a failed dial or admission). Unauthenticated (anyone on the LAN
   * can announce any id): an estimate of who is coming, never a member or a vote.
   * Absent on a view without a dialler.
   */
  discovering?(): string[]
  addEventListener<K extends keyof ClusterStateEvents>(type: K, listener: (evt: ClusterStateEvents[K]) => void): void
  removeEventListener<K extends keyof ClusterStateEvents>(type: K, listener: (evt: ClusterStateEvents[K]) => void): void
}
