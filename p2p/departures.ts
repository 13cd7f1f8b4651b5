/**
 * Which identities no longer count as members (pure). A node leaves the counted set
 * in two ways:
 *
 * - `removed`: an operator removed it (`kairos-p2p node remove`), and this node applied
 *   the removal (the roles layer judges who may remove). It is refused admission,
 *   its state entries are dropped, and it stays out for good.
 * - `forgotten`: it has been dead longer than `p2p.forget_after`. It is not revoked: if
 *   the box comes back it proves the token and counts again.
 *
 * Neither kind is a WireGuard peer, a member of `state.members()`, a voter in a quorum
 * or a node in the size warning: a retired box's key alone keeps no overlay access, and
 * a site of boxes replaced over the years does not count its ghosts.
 */
import type { Liveness } from './types.ts'

/** Why an identity left the counted set. */
export type Departure = 'removed' | 'forgotten'

/**
 * The departure of a member row at `now`, or undefined while it counts. Pure.
 * `lastSeen` is the wall-clock ms of its last sign of life (0: never).
 */
export function departureOf (id: string, row: { liveness: Liveness, lastSeen: number } | undefined, revoked: ReadonlySet<string>, now: number, forgetAfterMs: number): Departure | undefined {
  if (revoked.has(id)) return 'removed'
  if (row !== undefined && row.liveness === 'dead' && now - row.lastSeen >= forgetAfterMs) return 'forgotten'
  return undefined
}
