/**
 * Garbage collection of the replica's owners (pure policy; the store applies it).
 *
 * Entries are accepted from any token holder, before any news of their owner, because
 * with a partial mesh they often arrive relayed first. So the replica must drop what no
 * member stands for:
 *
 * - an owner that was never *present* (admitted here, or a live member in the view)
 *   within `admitGraceMs` of its first entry reaching us: a minted identity, or a box
 *   that never joined;
 * - an owner last present more than `forgetAfterMs` ago (dead or left for good).
 *
 * A forgotten owner leaves a tombstone: its entries are refused (`forgotten`) until the
 * owner is present again, so anti-entropy from a peer that has not forgotten it yet
 * cannot bring them back. Peers apply the same rule to the same converging member view,
 * so they forget it too within about the same time and stop offering it. Tombstones
 * are bounded in number and expire after `forgetAfterMs` (at least `admitGraceMs`); an owner that comes back
 * after that is judged again from the start (never present: dropped after the grace).
 *
 * An entry written over with `null` (a deletion: a collected credential, say) stays as
 * a marker for `forgetAfterMs` (at least `admitGraceMs`) after its writer wrote it, so
 * that every replica present meanwhile learns the deletion, then is dropped
 * (`deletionExpired`). A replica that was away longer may offer the deleted value
 * back; it is accepted as new, and it is up to its owner to delete it again (the
 * roles layer does, for credentials), or to the owner collection once the owner is
 * gone. An expired marker offered by a peer is refused as `stale`.
 *
 * Times are the local clock's. After a restart every owner gets at least
 * `admitGraceMs` to show up again before its absence counts (the time the node was
 * down is not evidence about anyone).
 */

/** What the node's views say about an owner now. */
export type OwnerPresence =
  /** Admitted by this node, or a member the view holds alive or suspect. */
  | 'present'
  /** A member the view holds dead (or that left). */
  | 'gone'
  /** No row in the view. */
  | 'unknown'

/** Answers presence of an owner; supplied by the node from its admission set and member view. */
export type OwnerPresenceView = (owner: string) => OwnerPresence

/** How long an owner never present may keep entries, ms. @default 600000 (10 minutes) */
export const DEFAULT_ADMIT_GRACE_MS = 10 * 60_000
/** How long after it was last present an owner's entries are kept, ms (`p2p.forget_after`, whose default it is). */
export { DEFAULT_FORGET_AFTER_MS } from '../../config/defaults.ts'
/** Most tombstones held (oldest dropped first). @default 16384 */
export const DEFAULT_MAX_TOMBSTONES = 16_384

/** The collection policy. */
export interface CollectPolicy {
  /** @default DEFAULT_ADMIT_GRACE_MS */
  admitGraceMs: number
  /** @default DEFAULT_FORGET_AFTER_MS */
  forgetAfterMs: number
}

/** What the store knows about an owner that has entries. */
export interface OwnerNote {
  /** When its first entry reached this replica (or the replica was loaded), local ms. */
  firstSeenAt: number
  /** Last time a collection found it present; undefined = never. */
  presentAt?: number
}

/** Why an owner was forgotten. */
export type ForgetReason = 'never-admitted' | 'gone'

/** The verdict of one collection for one owner. */
export type OwnerVerdict =
  | { kind: 'keep', note: OwnerNote }
  | { kind: 'forget', reason: ForgetReason }

/**
 * Judges one owner at `now`. Pure. `self` is never forgotten by the caller (it does
 * not ask).
 */
export function judgeOwner (note: OwnerNote, presence: OwnerPresence, now: number, policy: CollectPolicy): OwnerVerdict {
  if (presence === 'present') return { kind: 'keep', note: { firstSeenAt: note.firstSeenAt, presentAt: now } }
  if (note.presentAt === undefined) {
    // A member the view holds dead was present, although no collection caught it (it came
    // and went between two): it is kept no longer than `forget_after` either.
    if (presence === 'gone' && now - note.firstSeenAt >= Math.min(policy.admitGraceMs, policy.forgetAfterMs)) return { kind: 'forget', reason: 'gone' }
    return now - note.firstSeenAt >= policy.admitGraceMs ? { kind: 'forget', reason: 'never-admitted' } : { kind: 'keep', note }
  }
  return now - note.presentAt >= policy.forgetAfterMs ? { kind: 'forget', reason: 'gone' } : { kind: 'keep', note }
}

/**
 * A note restored from the state file at `now`: the time the node was down is no
 * evidence, so a known owner gets at least `admitGraceMs` to be present again.
 */
export function restoredNote (presentAt: number | undefined, now: number, policy: CollectPolicy): OwnerNote {
  if (presentAt === undefined) return { firstSeenAt: now }
  return { firstSeenAt: now, presentAt: Math.max(presentAt, now - policy.forgetAfterMs + policy.admitGraceMs) }
}

/**
 * True when a tombstone written at `forgottenAt` still holds at `now`: for
 * `forgetAfterMs`, and never less than `admitGraceMs`. A peer that has not forgotten the
 * owner yet offers its entries back until it does; taken back after the tombstone, they
 * would count as a newcomer's and be kept for the whole grace.
 */
export function tombstoneHolds (forgottenAt: number, now: number, policy: CollectPolicy): boolean {
  return now - forgottenAt < Math.max(policy.forgetAfterMs, policy.admitGraceMs)
}

/**
 * True when a deletion marker (an entry whose value is `null`) written at `writtenAt`
 * by its owner's clock may be dropped at `now`: once `forgetAfterMs`, and never less
 * than `admitGraceMs`, have passed. Pure.
 */
export function deletionExpired (writtenAt: number, now: number, policy: CollectPolicy): boolean {
  return now - writtenAt >= Math.max(policy.forgetAfterMs, policy.admitGraceMs)
}
