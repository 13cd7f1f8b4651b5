import { compareBytes } from './codec.ts'

/**
 * What the merge needs to know about a wire entry: its slot (owner, key), its
 * version and the SHA-256 of its exact wire bytes.
 */
export interface WireEntryMeta {
  owner: string
  key: string
  version: number
  /** SHA-256 of the whole wire entry, signature included. */
  hash: Uint8Array
}

/** Outcome of offering `incoming` to a slot: replace what is held, keep it, or it is the same entry. */
export type MergeDecision = 'take' | 'keep' | 'same'

/**
 * Total order of entries within one (owner, key) slot: by version, then by hash bytes.
 *
 * Why the tie-break is safe: two different entries with the same version can only
 * come from the owner itself (every entry is signed by its owner), e.g. after it lost
 * its disk and rewrote a version it had already used. Any fixed total order picks the
 * same winner on every replica whatever the delivery order; the hash is fixed by the
 * bytes, known to everyone and not choosable by anyone but the owner, who could simply
 * write a higher version anyway.
 */
export function compareEntries (a: Pick<WireEntryMeta, 'version' | 'hash'>, b: Pick<WireEntryMeta, 'version' | 'hash'>): number {
  if (a.version !== b.version) return a.version < b.version ? -1 : 1
  return compareBytes(a.hash, b.hash)
}

/**
 * The merge rule of the replicated map, for one (owner, key) slot: the greater entry
 * under `compareEntries` wins. Because it is a maximum over a total order, merging is
 * commutative, associative and idempotent: any delivery order of any multiset of
 * entries ends with the same held entry. The caller has already checked that both
 * entries belong to the same slot and that `incoming` is signed by its owner.
 */
export function mergeEntry (held: WireEntryMeta | undefined, incoming: WireEntryMeta): MergeDecision {
  if (held === undefined) return 'take'
  const c = compareEntries(incoming, held)
  if (c === 0) return 'same'
  return c > 0 ? 'take' : 'keep'
}

/** The slot key of an entry in a flat map: owner and key joined by a NUL (neither may contain one). */
export function slotOf (owner: string, key: string): string {
  return `${owner}\u0000${key}`
}
