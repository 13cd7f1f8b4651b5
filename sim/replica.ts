import { mergeEntry, slotOf, type WireEntryMeta } from '../p2p/state/merge.ts'
import type { JsonValue, StateEntry } from '../p2p/types.ts'
import type { RandomSource } from '../util/random.ts'
import { CRED_PREFIX } from '../roles/types.ts'

/** An entry as a replica holds it: what readers see, and what the merge compares. */
export interface HeldEntry {
  entry: StateEntry
  meta: WireEntryMeta
  /** `slotOf(owner, key)`, computed once. */
  slot: string
}

/** Bytes of an entry's hash, as SHA-256 of the wire entry has in production. */
const HASH_BYTES = 32

/**
 * One node's replica of the cluster state in the simulation, merged with the
 * production rule (p2p/state/merge.ts: the higher version wins, equal versions go to
 * the greater hash). In production the hash is SHA-256 of the signed, encrypted wire
 * entry, whose fresh nonce makes it unpredictable to all but the writer; here it is
 * drawn from the simulation's seeded stream, which has the same distribution.
 *
 * Like the production store, changes reach the state file only after a flush delay:
 * `flushed()` marks what is on disk, and `lose()` (a crash) rolls back what was not.
 */
export class SimReplica {
  readonly self: string
  /** Order-independent fingerprint of the held entries: equal replicas have equal ones. */
  fp = 0
  /** Offers of a different entry at the version held, settled by the hash tie-break. */
  ties = 0
  private readonly slots = new Map<string, HeldEntry>()
  /** `cred/<self>` entries by sealer. */
  private readonly creds = new Map<string, StateEntry>()
  private list: StateEntry[] | undefined
  /** What each slot changed since the last flush held before (undefined: it was empty). */
  private readonly unflushed = new Map<string, HeldEntry | undefined>()

  constructor (self: string) {
    this.self = self
  }

  get size (): number { return this.slots.size }

  get (owner: string, key: string): StateEntry | undefined {
    return this.slots.get(slotOf(owner, key))?.entry
  }

  /** Every held entry (a cached array, rebuilt after a change). */
  entries (): StateEntry[] {
    this.list ??= [...this.slots.values()].map((h) => h.entry)
    return this.list
  }

  /** Every held entry with its merge metadata, for an exchange. */
  held (): IterableIterator<HeldEntry> {
    return this.slots.values()
  }

  /** The `cred/<self>` entries, one per sealer. */
  credentials (): StateEntry[] {
    return [...this.creds.values()]
  }

  /**
   * Writes an entry at the next version; returns it as sent to peers. `owner` is this
   * node, or an identity a hostile member minted (it holds that identity's key).
   */
  put (key: string, value: JsonValue, now: number, random: RandomSource, owner = this.self): HeldEntry {
    const slot = slotOf(owner, key)
    const version = (this.slots.get(slot)?.meta.version ?? 0) + 1
    const h: HeldEntry = {
      entry: { owner, key, version, writtenAt: now, value },
      meta: { owner, key, version, hash: random.bytes(HASH_BYTES) },
      slot
    }
    this.set(slot, h)
    return h
  }

  /** Offers a peer's entry to the merge; true when it replaced what was held. */
  merge (h: HeldEntry): boolean {
    const held = this.slots.get(h.slot)?.meta
    const decision = mergeEntry(held, h.meta)
    if (decision !== 'same' && held?.version === h.meta.version) this.ties++
    if (decision !== 'take') return false
    this.set(h.slot, h)
    return true
  }

  /** Everything held so far is in the state file. */
  flushed (): void {
    this.unflushed.clear()
  }

  /** Whether a change waits for the next flush. */
  dirty (): boolean {
    return this.unflushed.size > 0
  }

  /** A crash: the changes since the last flush are lost, the replica is what the file held. */
  lose (): void {
    for (const [slot, before] of this.unflushed) this.set(slot, before, false)
    this.unflushed.clear()
  }

  private set (slot: string, h: HeldEntry | undefined, log = true): void {
    const old = this.slots.get(slot)
    if (log && !this.unflushed.has(slot)) this.unflushed.set(slot, old)
    if (h === undefined) this.slots.delete(slot)
    else this.slots.set(slot, h)
    this.list = undefined
    this.fp = (this.fp - weight(slot, old) + weight(slot, h)) >>> 0
    const e = h?.entry ?? old?.entry
    if (e !== undefined && e.key === `${CRED_PREFIX}${this.self}`) {
      if (h === undefined) this.creds.delete(e.owner)
      else this.creds.set(e.owner, h.entry)
    }
  }
}

const slotHashes = new Map<string, number>()

/** An entry's share of the fingerprint: its slot, version and hash. */
function weight (slot: string, h: HeldEntry | undefined): number {
  if (h === undefined) return 0
  let s = slotHashes.get(slot)
  if (s === undefined) {
    s = 0x811c9dc5
    for (let i = 0; i < slot.length; i++) s = Math.imul(s ^ slot.charCodeAt(i), 0x01000193) >>> 0
    if (slotHashes.size > 100_000) slotHashes.clear()
    slotHashes.set(slot, s)
  }
  const b = h.meta.hash
  const tie = ((b[0] ?? 0) << 24 | (b[1] ?? 0) << 16 | (b[2] ?? 0) << 8 | (b[3] ?? 0)) >>> 0
  return (Math.imul(s, h.meta.version) + Math.imul(tie, 0x9e3779b1)) >>> 0
}
