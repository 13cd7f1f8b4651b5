import type { JsonValue, StateChange, StateEntry } from '../types.ts'

/**
 * Why an incoming entry was refused. Every refusal is counted by reason and logged,
 * and changes nothing.
 */
export type RejectReason =
  | 'malformed'   // not decodable as a wire entry
  | 'oversized'   // larger than the entry size bound
  | 'unsigned'    // no signature
  | 'forged'      // signature does not verify against the owner's peer key
  | 'undecryptable' // payload does not decrypt with the network's state key
  | 'stale'       // older than (or replaying) the version we hold
  | 'owner-quota' // owner already holds the maximum number of entries
  | 'not-admitted' // owner is not an admitted peer
  | 'store-full'  // accepting it would exceed the replica's total byte bound, and its owner would be among the largest
  | 'forgotten'   // its owner was forgotten by garbage collection and has not been present since
  | 'revoked'     // its owner was removed from the site (`LocalStateStore.revoke`)

/** Every reject reason, in a stable order (for counters and status output). */
export const REJECT_REASONS: readonly RejectReason[] = [
  'malformed', 'oversized', 'unsigned', 'forged', 'undecryptable', 'stale', 'owner-quota', 'not-admitted', 'store-full', 'forgotten', 'revoked'
]

/**
 * The refusals that say something is wrong with the sender or this replica. A stale
 * entry says nothing of the kind: a newer version of it reached us by gossip while an
 * anti-entropy exchange was under way. Nor does a forgotten or revoked one: the sender
 * has not applied the same collection or removal yet (it will). Undefined when there is none.
 */
export function alarmingRejections (rejected: ApplyResult['rejected']): Partial<Record<RejectReason, number>> | undefined {
  const out = Object.entries(rejected).filter(([reason, n]) => reason !== 'stale' && reason !== 'forgotten' && reason !== 'revoked' && (n ?? 0) > 0)
  return out.length === 0 ? undefined : Object.fromEntries(out)
}

export interface ApplyResult {
  /** Entries that changed the local state. */
  accepted: StateChange[]
  /** Entries refused, by reason. */
  rejected: Partial<Record<RejectReason, number>>
  /** Entries identical to what we hold (idempotent re-delivery). */
  duplicates: number
}

/**
 * The local replica of the cluster state: signs and encrypts own entries, verifies,
 * decrypts and merges remote ones, persists, and answers anti-entropy. No network
 * inside: the sync layer moves the opaque wire bytes.
 */
export interface StateStore {
  readonly self: string
  /**
   * Writes own entry `key` with the next version; resolves once it is in the replica.
   * The state file follows within the flush delay (`flush()` waits for it): the file
   * is a cache of what peers also hold, and what must survive a power cut on its own
   * (promises, role, secrets) lives in files of its own.
   */
  put(key: string, value: JsonValue): Promise<{ entry: StateEntry, wire: Uint8Array }>
  /** Verifies and merges entries received from peer `from`. Never throws on bad input. */
  apply(wire: Uint8Array[], from: string): Promise<ApplyResult>
  /** A compact summary of what this replica holds (for anti-entropy). */
  digest(): Uint8Array
  /** Wire entries the holder of `remoteDigest` lacks or holds older. Throws nothing on a bad digest: returns []. */
  missingFor(remoteDigest: Uint8Array): Uint8Array[]
  /** The wire form of one held entry (for re-gossip). */
  wireOf(owner: string, key: string): Uint8Array | undefined
  get(owner: string, key: string): StateEntry | undefined
  list(prefix?: string): StateEntry[]
  /** Counters of refused entries since start, by reason. */
  rejections(): Record<RejectReason, number>
  /** Number of entries and total wire bytes held. */
  size(): { entries: number, bytes: number }
  addEventListener(type: 'change', listener: (evt: CustomEvent<StateChange>) => void): void
  removeEventListener(type: 'change', listener: (evt: CustomEvent<StateChange>) => void): void
  /** Resolves once the state file holds every change made so far (a no-op without a state dir). */
  flush(): Promise<void>
  /** Flushes pending writes. */
  close(): Promise<void>
}
