import { peerIdFromString } from '@libp2p/peer-id'
import type { Timing } from '../config/types.ts'
import { fingerprintRows } from '../util/fingerprint.ts'
import type { Liveness, Member } from './types.ts'

/**
 * The membership table, SWIM style. Pure: every method takes `now`; the node
 * feeds it evidence and rumours and calls `tick(now)` at `nextDeadline(now)`.
 *
 * Why not all-pairs heartbeats: every heartbeat on a yamux stream costs a data
 * frame and a window update, so N−1 heartbeats per interval per node grows the
 * idle traffic with N. Instead each node heartbeats only its K ring successors
 * and *watches* whoever heartbeats it. A watcher that hears nothing for
 * `suspectAfterMs` spreads a `suspect` rumour, after `deadAfterMs` a `dead`
 * rumour (gossip, so everyone learns within milliseconds). Every node also
 * ends a suspicion it holds after `deadAfterMs − suspectAfterMs` without a
 * refutation, so a suspect whose watcher died with it still becomes dead.
 *
 * Rumours are ordered by (incarnation, state): a higher incarnation wins; at
 * the same incarnation dead > suspect > alive. Only the member itself raises
 * its incarnation: when it hears a rumour that it is suspect or dead it
 * refutes with `alive` at a higher incarnation. A node's first incarnation is
 * its start time, so a restarted node (same peer id) outranks the rumour that
 * declared it dead and joins again under the same identity.
 */

/**
 * The largest incarnation a node accepts (2^48 ms is the year 10889). Incarnations start
 * at a node's start time in ms and grow by one per refutation, so an honest node never
 * comes near it; a number above it from the wire is refused as malformed. A rumour that
 * a member is suspect or dead must leave room for its refutation (at most
 * `MAX_INCARNATION − 1`), and a refutation saturates at `MAX_INCARNATION`: whatever a peer
 * sends, our own incarnation stays an integer every encoder takes.
 */
export const MAX_INCARNATION = 2 ** 48

/** Most rows a table keeps for members it has only heard of second-hand (rumours, peer exchange). @default 4096 */
export const DEFAULT_MAX_MEMBERS = 4096

/** Whether `n` is an incarnation a rumour in state `state` may carry (see `MAX_INCARNATION`). */
export function validIncarnation (n: unknown, state: Liveness = 'alive'): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 && n <= (state === 'alive' ? MAX_INCARNATION : MAX_INCARNATION - 1)
}

/** Whether `id` parses as a libp2p peer id. */
export function isPeerId (id: string): boolean {
  try {
    peerIdFromString(id)
    return true
  } catch {
    return false
  }
}

/** What a rumour says about a member. */
export interface Rumour {
  peer: string
  state: Liveness
  incarnation: number
}

/** A liveness change the node turns into a `member:join` / `member:leave` event. */
export interface MembershipTransition {
  type: 'join' | 'leave' | 'suspect' | 'recover'
  member: Member
}

/** Extra facts that may come with evidence. */
export interface Sighting {
  /** Addresses to remember for the peer (replace the known ones when non-empty). */
  addresses?: string[]
  /** How we learned of the peer; kept from the first sighting. */
  discoveredBy?: string
}

/** How `rumour` treats a suspicion about an older incarnation than we hold. */
export interface RumourOptions {
  /**
   * Raise it to our incarnation (and return it as `relay`) when we have no first-hand
   * news of the member either. Only a node close to the member (connected to it) should:
   * in a partial mesh almost nobody has first-hand news of a given member, and every node
   * raising and relaying one stale suspicion turns it into N messages and N refutations.
   * @default true
   */
  raise?: boolean
}

/** Liveness thresholds. */
export type MembershipTiming = Pick<Timing, 'suspectAfterMs' | 'deadAfterMs'>

/** Options of `createMembership`. */
export interface MembershipInit {
  timing: MembershipTiming
  /** Our peer id (rumours about it are refuted, never stored). */
  self: string
  /** Our first incarnation, normally the start time in ms. */
  incarnation: number
  /**
   * An alive member we do not watch, with no evidence at all for this long, is
   * dropped to dead locally (a rumour we never got). @default 10 × deadAfterMs
   */
  staleAfterMs?: number
  /** Rows kept at most; beyond it, news of unknown members that did not come first-hand is ignored. @default DEFAULT_MAX_MEMBERS */
  maxMembers?: number
}

/** Result of a tick: state changes here, and rumours to spread. */
export interface TickResult {
  transitions: MembershipTransition[]
  publish: Rumour[]
}

/** The table; see the module comment. */
export interface Membership {
  /** Our current incarnation. */
  incarnation(): number
  /** First-hand evidence that `peer` is alive (admission, its heartbeat, a message from it). */
  heard(peer: string, now: number, incarnation?: number, sighting?: Sighting): MembershipTransition[]
  /** `peer` heartbeats us: we watch it from now on (and it is heard). */
  watch(peer: string, now: number, incarnation?: number): MembershipTransition[]
  /**
   * We expect `peer` to heartbeat us (we are among its ring successors in our
   * view): watch it from now on, so a peer that hangs before its first
   * heartbeat is still caught. The expectation is dropped if the peer refutes
   * a suspicion without ever having heartbeated us (its view differs).
   */
  expect(peer: string, now: number): void
  /** `peer` stopped heartbeating us on purpose (ring change): stop watching it. */
  unwatch(peer: string): void
  /** Peers we watch. */
  watching(): string[]
  /** Refreshes `lastSeen` of an alive member without other effect (an open, admitted connection). */
  touch(peer: string, now: number): void
  /** A member vouched for by a peer (peer exchange, discovery): added as alive if unknown, otherwise unchanged. */
  learn(peer: string, now: number, sighting?: Sighting): MembershipTransition[]
  /**
   * Applies a rumour; returns our refutation when it was about us, and a
   * rumour to spread again when we raised a stale suspicion to the
   * incarnation we know (see the module comment).
   */
  rumour(r: Rumour, now: number, options?: RumourOptions): { transitions: MembershipTransition[], refute?: Rumour, relay?: Rumour }
  /**
   * We were not running for `ms` (our event loop stalled): that silence is ours, not our
   * peers', so every watch and suspicion timer moves forward by it. The idea of
   * Lifeguard's local health awareness: on a starved box a watcher must not turn its own
   * stall into rumours about healthy peers.
   */
  pause(ms: number): void
  /** Timers: watchers suspect and declare dead, suspicions time out, stale members drop. */
  tick(now: number): TickResult
  /** The earliest time `tick` has something to do, or undefined. */
  nextDeadline(now: number): number | undefined
  /** Every known member (all liveness states), sorted by peer id. */
  list(): Member[]
  /**
   * A 32-bit hash of what the table says: every row's peer id, liveness and incarnation,
   * and our own row (alive at our incarnation). Two nodes that hold the same rumours have
   * the same digest; heartbeats carry it, so a watcher sees a peer that missed one.
   */
  digest(): number
  /** When what `digest` hashes last changed (-Infinity while nothing has). */
  changedAt(): number
  /** Whether we ever had first-hand evidence of `peer` (admission, its heartbeat, a message from it). */
  firstHand(peerId: string): boolean
  get(peerId: string): Member | undefined
  /** The incarnation we hold for `peer`. */
  incarnationOf(peerId: string): number | undefined
  /**
   * The incarnation at which we held `peer` suspect or dead before first-hand evidence
   * (its heartbeat, a message from it) brought it back here: the rest of the site may
   * still hold it so, and only the member's own refutation (a newer incarnation) settles
   * that. Undefined when no such doubt is open.
   */
  disputed(peerId: string): number | undefined
}

interface Row {
  member: Member
  incarnation: number
  /** When we marked it suspect. */
  suspectSince?: number
  /** Last heartbeat, when we watch it. */
  watchedAt?: number
  /** A heartbeat really arrived since we started watching (not only expected). */
  confirmed?: boolean
  /** Last first-hand evidence (heartbeat, admission, a message from it); `touch` does not count. */
  heardAt: number
  /** Arrival of its last heartbeat, while we watch it. */
  beatAt?: number
  /** Longest recent gap between its heartbeats, decaying (see `patience`). */
  slowGap: number
  /** When it last refuted a suspicion (its incarnation moved up with an alive rumour). */
  refutedAt?: number
  /** When it refuted a suspicion we raised from an expected heartbeat it never sent: it does not heartbeat us. */
  disownedAt?: number
  /** See `Membership.disputed`. */
  disputed?: number
}

/**
 * How long, in suspicion periods, a peer that refuted our unconfirmed expectation is
 * not expected again. Expectations are renewed on every membership change, and with
 * views that disagree about the ring each renewal led to one more suspicion and
 * refutation, in bursts about one node while a site formed.
 */
const DISOWN_PERIODS = 10

/** A watched peer's longest heartbeat gap loses this share of its weight with each heartbeat. */
const GAP_DECAY = 0.95
/** Silence of this many recent longest gaps is needed before a suspicion (3 heartbeats, as in the presets). */
const GAPS_TO_SUSPECT = 3
/** The thresholds stretch at most this much, so a dead peer is still found in bounded time. */
const MAX_PATIENCE = 10

const RANK: Record<Liveness, number> = { alive: 0, suspect: 1, dead: 2 }

/** Creates an empty membership table. */
export function createMembership (init: MembershipInit): Membership {
  const { timing, self } = init
  const staleAfterMs = init.staleAfterMs ?? 10 * timing.deadAfterMs
  const maxMembers = init.maxMembers ?? DEFAULT_MAX_MEMBERS
  const suspicionMs = Math.max(0, timing.deadAfterMs - timing.suspectAfterMs)
  // A whole number, as every peer checks (`validIncarnation`): a clock with sub-millisecond
  // time would start us at one that no peer accepts, in a heartbeat or a refutation, so a
  // member that restarted while held dead could never come back.
  let own = Math.min(Math.max(0, Math.floor(init.incarnation)), MAX_INCARNATION)
  const rows = new Map<string, Row>()
  /** `digest()` until a row's liveness or incarnation, or our own incarnation, changes (at `changedAt`). */
  let digestCache: number | undefined
  let changedAt = -Infinity
  const changed = (now: number): void => { digestCache = undefined; changedAt = Math.max(changedAt, now) }

  const snapshot = (row: Row): Member => ({ ...row.member, addresses: [...row.member.addresses] })

  const ensure = (peer: string, now: number, sighting: Sighting, initial: Liveness): { row: Row, isNew: boolean } => {
    let row = rows.get(peer)
    const isNew = row === undefined
    if (row === undefined) {
      row = { member: { peerId: peer, liveness: initial, lastSeen: now, addresses: [], discoveredBy: sighting.discoveredBy ?? 'inbound' }, incarnation: 0, heardAt: -Infinity, slowGap: 0 }
      rows.set(peer, row)
      changed(now)
    }
    if (sighting.addresses !== undefined && sighting.addresses.length > 0) row.member.addresses = [...sighting.addresses]
    return { row, isNew }
  }

  /**
   * How much longer than the configured thresholds we wait for this peer: a peer whose
   * heartbeats have lately come with long gaps (its box is starved, its network slow)
   * gets proportionally more time before we suspect it, like a phi-accrual detector.
   * 1 on a healthy network, where the gap is one heartbeat interval.
   */
  const patience = (row: Row): number => Math.min(MAX_PATIENCE, Math.max(1, GAPS_TO_SUSPECT * row.slowGap / Math.max(1, timing.suspectAfterMs)))

  /** Moves a row to `next`, returning the event it makes. */
  const move = (row: Row, next: Liveness, now: number, isNew = false): MembershipTransition[] => {
    const prev = row.member.liveness
    if (prev !== next) changed(now)
    row.member.liveness = next
    if (next === 'suspect' && prev !== 'suspect') row.suspectSince = now
    if (next !== 'suspect') delete row.suspectSince
    if (isNew) return next === 'alive' ? [{ type: 'join', member: snapshot(row) }] : []
    if (prev === next) return []
    if (next === 'dead') return [{ type: 'leave', member: snapshot(row) }]
    if (prev === 'dead') return next === 'alive' ? [{ type: 'join', member: snapshot(row) }] : []
    return [{ type: next === 'suspect' ? 'suspect' : 'recover', member: snapshot(row) }]
  }

  const heard = (peer: string, now: number, incarnation?: number, sighting: Sighting = {}): MembershipTransition[] => {
    if (peer === self) return []
    if (incarnation !== undefined && !validIncarnation(incarnation)) incarnation = undefined
    const { row, isNew } = ensure(peer, now, sighting, 'alive')
    if (incarnation !== undefined && incarnation > row.incarnation) {
      row.incarnation = incarnation
      changed(now)
      delete row.disputed
    } else if (!isNew && row.member.liveness !== 'alive') {
      // Back from the dead here, but not by a newer incarnation: whoever else heard the
      // rumour still holds it, until the member refutes it.
      row.disputed = row.incarnation
    }
    row.member.lastSeen = Math.max(row.member.lastSeen, now)
    row.heardAt = Math.max(row.heardAt, now)
    if (row.watchedAt !== undefined) row.watchedAt = now
    return move(row, 'alive', now, isNew)
  }

  return {
    incarnation: () => own,

    heard,

    watch (peer, now, incarnation) {
      if (peer === self) return []
      const out = heard(peer, now, incarnation)
      const row = rows.get(peer)
      if (row !== undefined) {
        if (row.beatAt !== undefined) row.slowGap = Math.max(now - row.beatAt, row.slowGap * GAP_DECAY)
        row.beatAt = now
        row.watchedAt = now
        row.confirmed = true
        delete row.disownedAt
      }
      return out
    },

    expect (peer, now) {
      const row = rows.get(peer)
      if (row === undefined || peer === self || row.watchedAt !== undefined || row.member.liveness === 'dead') return
      if (row.disownedAt !== undefined && now - row.disownedAt < DISOWN_PERIODS * timing.suspectAfterMs) return
      row.watchedAt = now
      row.confirmed = false
    },

    unwatch (peer) {
      const row = rows.get(peer)
      if (row !== undefined) { delete row.watchedAt; delete row.confirmed; delete row.beatAt }
    },

    watching: () => [...rows.values()].filter((r) => r.watchedAt !== undefined).map((r) => r.member.peerId),
    pause (ms) {
      if (!(ms > 0)) return
      for (const row of rows.values()) {
        if (row.watchedAt !== undefined) row.watchedAt += ms
        if (row.beatAt !== undefined) row.beatAt += ms
        if (row.suspectSince !== undefined) row.suspectSince += ms
      }
    },

    touch (peer, now) {
      const row = rows.get(peer)
      if (row !== undefined && row.member.liveness === 'alive') row.member.lastSeen = Math.max(row.member.lastSeen, now)
    },

    learn (peer, now, sighting = {}) {
      if (peer === self || (!rows.has(peer) && rows.size >= maxMembers)) return []
      const { row, isNew } = ensure(peer, now, sighting, 'alive')
      return isNew ? move(row, 'alive', now, true) : []
    },

    rumour (r, now, options = {}) {
      // Checked on the wire already (see decodeRumour); a table that never holds a bad number cannot send one.
      if (!validIncarnation(r.incarnation, r.state)) return { transitions: [] }
      if (r.peer === self) {
        // Refute every suspicion, even one about an older incarnation: its sender may have
        // raised it to the incarnation it knows (below), and only a newer one settles it.
        // Our incarnation moves only past the suspected one: an older suspicion is already
        // beaten by the one we hold.
        if (r.state === 'alive') return { transitions: [] }
        if (r.incarnation >= own) {
          own = Math.min(r.incarnation + 1, MAX_INCARNATION)
          changed(now)
        }
        return { transitions: [], refute: { peer: self, state: 'alive', incarnation: own } }
      }
      const existing = rows.get(r.peer)
      if (existing === undefined) {
        if (rows.size >= maxMembers) return { transitions: [] }
        const { row } = ensure(r.peer, now, { discoveredBy: 'peer-exchange' }, r.state)
        row.incarnation = r.incarnation
        changed(now)
        if (r.state === 'suspect') row.suspectSince = now
        return { transitions: r.state === 'alive' ? [{ type: 'join', member: snapshot(row) }] : [] }
      }
      // A suspicion about an older incarnation than we know usually comes from a node that
      // expected heartbeats it never got, so never learnt the current one. If we have no
      // first-hand news of the member either, we raise it to our incarnation and spread it:
      // a live member refutes it, a hung one stays suspected.
      let relay: Rumour | undefined
      let inc = r.incarnation
      // A member that refuted within the last suspicion period is alive: an older suspicion still in flight is stale.
      const refutedLately = existing.refutedAt !== undefined && now - existing.refutedAt < timing.suspectAfterMs
      if (options.raise !== false && r.state !== 'alive' && inc < existing.incarnation && existing.member.liveness === 'alive' && now - existing.heardAt >= timing.suspectAfterMs && !refutedLately) {
        inc = existing.incarnation
        relay = { peer: r.peer, state: 'suspect', incarnation: inc }
      }
      const state: Liveness = relay === undefined ? r.state : 'suspect'
      const newer = inc > existing.incarnation || (inc === existing.incarnation && RANK[state] > RANK[existing.member.liveness])
      if (!newer) return { transitions: [] }
      if (state === 'alive' && inc > existing.incarnation) existing.refutedAt = now
      if (inc > existing.incarnation) delete existing.disputed
      if (existing.incarnation !== inc) changed(now)
      existing.incarnation = inc
      if (state === 'alive') existing.member.lastSeen = Math.max(existing.member.lastSeen, now)
      if (state === 'alive' && existing.watchedAt !== undefined) {
        // An expected heartbeat that never came, and the peer says it is alive: it is not ours to watch.
        if (existing.confirmed === false) {
          delete existing.watchedAt
          delete existing.confirmed
          existing.disownedAt = now
        } else existing.watchedAt = now
      }
      const transitions = move(existing, state, now)
      return relay === undefined ? { transitions } : { transitions, relay }
    },

    tick (now) {
      const transitions: MembershipTransition[] = []
      const publish: Rumour[] = []
      for (const row of rows.values()) {
        const peer = row.member.peerId
        const l = row.member.liveness
        if (row.watchedAt !== undefined && l !== 'dead') {
          // A peer we only expect (it never heartbeated us) gets the suspicion period as extra grace: while a
          // site boots, views differ and the peer may still be heartbeating whoever it thinks is its successor.
          const silence = now - row.watchedAt - (row.confirmed === false ? timing.suspectAfterMs : 0)
          const stretch = patience(row)
          if (silence >= timing.deadAfterMs * stretch) {
            transitions.push(...move(row, 'dead', now))
            publish.push({ peer, state: 'dead', incarnation: row.incarnation })
            delete row.watchedAt
            continue
          }
          if (silence >= timing.suspectAfterMs * stretch && l === 'alive') {
            transitions.push(...move(row, 'suspect', now))
            publish.push({ peer, state: 'suspect', incarnation: row.incarnation })
            continue
          }
        }
        if (l === 'suspect' && row.suspectSince !== undefined && now - row.suspectSince >= suspicionMs && row.watchedAt === undefined) {
          transitions.push(...move(row, 'dead', now))
          continue
        }
        if (l === 'alive' && row.watchedAt === undefined && now - row.member.lastSeen >= staleAfterMs) {
          transitions.push(...move(row, 'dead', now))
        }
      }
      return { transitions, publish }
    },

    nextDeadline (now) {
      let next: number | undefined
      const consider = (at: number): void => { if (next === undefined || at < next) next = Math.max(at, now) }
      for (const row of rows.values()) {
        const l = row.member.liveness
        if (l === 'dead') continue
        if (row.watchedAt !== undefined) consider(row.watchedAt + (row.confirmed === false ? timing.suspectAfterMs : 0) + (l === 'alive' ? timing.suspectAfterMs : timing.deadAfterMs) * patience(row))
        else if (l === 'suspect' && row.suspectSince !== undefined) consider(row.suspectSince + suspicionMs)
        else if (l === 'alive') consider(row.member.lastSeen + staleAfterMs)
      }
      return next
    },

    list () {
      return [...rows.values()].map(snapshot).sort((a, b) => (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0))
    },

    digest () {
      digestCache ??= Buffer.from(fingerprintRows([`${self} alive ${own}`, ...[...rows.values()].map((r) => `${r.member.peerId} ${r.member.liveness} ${r.incarnation}`)].sort()), 'base64').readUInt32BE(0)
      return digestCache
    },

    changedAt: () => changedAt,

    get (peerId) {
      const row = rows.get(peerId)
      return row === undefined ? undefined : snapshot(row)
    },

    firstHand: (peerId) => (rows.get(peerId)?.heardAt ?? -Infinity) > -Infinity,

    incarnationOf: (peerId) => rows.get(peerId)?.incarnation,

    disputed: (peerId) => rows.get(peerId)?.disputed
  }
}

/**
 * Encodes a rumour for the membership gossip topic. `by` and `at` (publisher
 * and its clock) only make each publication unique: gossipsub drops a message
 * whose bytes it has seen in the last minutes, and the same rumour may need to
 * be spread again (a second suspicion at the same incarnation).
 */
export function encodeRumour (r: Rumour, by = '', at = 0): Uint8Array {
  return new TextEncoder().encode(JSON.stringify([r.peer, r.state, r.incarnation, by, at]))
}

/** Decodes a rumour; undefined when it is not one (its peer is not a peer id, or its incarnation is out of range). */
export function decodeRumour (data: Uint8Array): Rumour | undefined {
  try {
    if (data.length > 512) return undefined
    const v: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data))
    if (!Array.isArray(v) || v.length < 3 || v.length > 5) return undefined
    const [peer, state, incarnation] = v as [unknown, unknown, unknown]
    if (typeof peer !== 'string' || peer.length === 0 || peer.length > 128 || !isPeerId(peer)) return undefined
    if (state !== 'alive' && state !== 'suspect' && state !== 'dead') return undefined
    if (!validIncarnation(incarnation, state)) return undefined
    return { peer, state, incarnation }
  } catch {
    return undefined
  }
}
