import type { Timing } from '../config/types.ts'
import type { Liveness, Member } from './types.ts'

/**
 * The membership table: who we know, when we last had a sign of life from
 * each, and what that makes them. Pure: every method takes `now`; the node
 * feeds it evidence (admission, heartbeats, relayed sightings) and calls
 * `evaluate(now)` at `nextDeadline(now)`.
 *
 * A member is alive while its last sign of life is younger than
 * `suspectAfterMs`, suspect until `deadAfterMs`, dead after. `join` fires when
 * a member becomes alive for the first time or again after being dead; `leave`
 * fires when it becomes dead. Identity is the peer id, so a node that returns
 * after being declared dead joins again as the same member.
 */

/** A liveness change the node turns into a `member:join` / `member:leave` event. */
export interface MembershipTransition {
  type: 'join' | 'leave' | 'suspect' | 'recover'
  member: Member
}

/** Extra facts that may come with a sighting. */
export interface Sighting {
  /** Addresses to remember for the peer (replace the known ones when non-empty). */
  addresses?: string[]
  /** How we learned of the peer; kept from the first sighting. */
  discoveredBy?: string
  /** True when the evidence came from the peer itself (not relayed). */
  direct?: boolean
}

/** Liveness thresholds. */
export type MembershipTiming = Pick<Timing, 'suspectAfterMs' | 'deadAfterMs'>

/** The table; see the module comment. */
export interface Membership {
  /** Records a sign of life of `peerId` at time `at` (≤ now) and returns the resulting transitions. */
  observe(peerId: string, at: number, now: number, sighting?: Sighting): MembershipTransition[]
  /** Re-classifies every member at `now`. */
  evaluate(now: number): MembershipTransition[]
  /** The earliest time a member changes state if nothing else is heard, or undefined. */
  nextDeadline(now: number): number | undefined
  /** Every known member (all liveness states), sorted by peer id. */
  list(): Member[]
  get(peerId: string): Member | undefined
  /** Time of the last direct sign of life from `peerId`, if any. */
  directAt(peerId: string): number | undefined
}

interface Row {
  member: Member
  direct: number | undefined
}

/** Classifies a silence of `age` ms. */
export function livenessFor (age: number, timing: MembershipTiming): Liveness {
  if (age < timing.suspectAfterMs) return 'alive'
  if (age < timing.deadAfterMs) return 'suspect'
  return 'dead'
}

/** Creates an empty membership table. */
export function createMembership (timing: MembershipTiming): Membership {
  const rows = new Map<string, Row>()

  const transition = (row: Row, next: Liveness, isNew: boolean): MembershipTransition[] => {
    const prev = row.member.liveness
    row.member.liveness = next
    const snapshot = (): Member => ({ ...row.member, addresses: [...row.member.addresses] })
    if (isNew) return next === 'alive' ? [{ type: 'join', member: snapshot() }] : []
    if (prev === next) return []
    if (next === 'dead') return [{ type: 'leave', member: snapshot() }]
    if (prev === 'dead' && next === 'alive') return [{ type: 'join', member: snapshot() }]
    if (next === 'suspect') return [{ type: 'suspect', member: snapshot() }]
    if (prev === 'suspect' && next === 'alive') return [{ type: 'recover', member: snapshot() }]
    return []
  }

  return {
    observe (peerId, at, now, sighting = {}) {
      const seenAt = Math.min(at, now)
      let row = rows.get(peerId)
      const isNew = row === undefined
      if (row === undefined) {
        row = {
          member: { peerId, liveness: 'dead', lastSeen: seenAt, addresses: [], discoveredBy: sighting.discoveredBy ?? 'inbound' },
          direct: undefined
        }
        rows.set(peerId, row)
      }
      if (sighting.addresses !== undefined && sighting.addresses.length > 0) row.member.addresses = [...sighting.addresses]
      if (sighting.direct === true && (row.direct === undefined || seenAt > row.direct)) row.direct = seenAt
      if (seenAt > row.member.lastSeen || isNew) row.member.lastSeen = Math.max(row.member.lastSeen, seenAt)
      // A dead member comes back only on fresh evidence, never on an old relayed sighting.
      const next = livenessFor(now - row.member.lastSeen, timing)
      if (!isNew && row.member.liveness === 'dead' && next !== 'alive') return []
      return transition(row, next, isNew)
    },

    evaluate (now) {
      const out: MembershipTransition[] = []
      for (const row of rows.values()) {
        const next = livenessFor(now - row.member.lastSeen, timing)
        // Silence only ever moves a member down; coming back needs a sighting.
        const rank = { alive: 0, suspect: 1, dead: 2 } as const
        if (rank[next] > rank[row.member.liveness]) out.push(...transition(row, next, false))
      }
      return out
    },

    nextDeadline (now) {
      let next: number | undefined
      for (const row of rows.values()) {
        const l = row.member.liveness
        const at = l === 'alive' ? row.member.lastSeen + timing.suspectAfterMs : l === 'suspect' ? row.member.lastSeen + timing.deadAfterMs : undefined
        if (at !== undefined && (next === undefined || at < next)) next = Math.max(at, now)
      }
      return next
    },

    list () {
      return [...rows.values()].map((r) => ({ ...r.member, addresses: [...r.member.addresses] })).sort((a, b) => (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0))
    },

    get (peerId) {
      const row = rows.get(peerId)
      return row === undefined ? undefined : { ...row.member, addresses: [...row.member.addresses] }
    },

    directAt (peerId) {
      return rows.get(peerId)?.direct
    }
  }
}
