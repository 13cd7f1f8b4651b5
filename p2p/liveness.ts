import type { Stream } from '@libp2p/interface'
import type { Timing } from '../config/types.ts'
import type { Clock } from '../util/clock.ts'
import { errorMessage } from '../util/errors.ts'
import type { Logger } from '../util/log.ts'
import { FrameReader } from './framing.ts'
import { HEARTBEAT_LAST, decodeHeartbeat, encodeHeartbeat, nextBeatInterval, ringPredecessors, ringSuccessors } from './heartbeat.ts'
import type { Loops } from './loops.ts'
import type { Membership, MembershipTransition, Rumour, Sighting } from './membership.ts'
import { deadline } from './stream-io.ts'

/**
 * A node whose member view has not changed for this many `deadAfterMs` counts its site
 * as quiet and heartbeats more slowly (see `nextBeatInterval`): roles never move once a
 * site has formed, so a quiet site needs no fast failure detection, and the fast
 * heartbeat was a large share of an idle agent's CPU. Any membership change (a join, a
 * suspicion, a death) brings the configured interval back at the next beat.
 */
export const QUIET_AFTER_DEAD_PERIODS = 5
/** Longest wait between two exchanges that tell a member of a rumour about it (see `tellDisputed`). */
const DISPUTE_MAX_WAIT_MS = 60_000
/** How long stop() waits for its leave notice to go out, ms. */
const LEAVE_NOTICE_MS = 250
/** Time a queued leave notice gets to reach the wire before the node closes its connections, ms. */
const LEAVE_FLUSH_MS = 100

/** One outbound heartbeat stream, as liveness sees it. */
export interface BeatStream {
  /** The peer reads frames with our members hash (heartbeat version 3; see heartbeat.ts). */
  readonly members: boolean
  /** The stream can still carry frames. */
  readonly open: boolean
  /** Its send buffer is full (a heartbeat now would only queue). */
  readonly busy: boolean
  send: (body: Uint8Array, signal: AbortSignal) => Promise<void>
  /** Sends `body` as the last frame and closes; aborts the stream when that fails. */
  end: (body: Uint8Array, signal: AbortSignal) => Promise<void>
  abort: (reason: Error) => void
  onClose: (callback: () => void) => void
}

/** Opens heartbeat streams: libp2p streams in production, a fake network in tests. */
export interface HeartbeatTransport {
  /** A new heartbeat stream to `peer` over an open connection, or undefined when there is none. */
  open: (peer: string, signal: AbortSignal) => Promise<BeatStream | undefined>
}

/** What liveness is given. */
export interface LivenessComponents {
  self: string
  clock: Clock
  log: Logger
  timing: Pick<Timing, 'heartbeatIntervalMs' | 'suspectAfterMs' | 'deadAfterMs'>
  /** The membership table (pure; see membership.ts). */
  membership: Membership
  /** Peers admitted on a connection that is still open. */
  admitted: ReadonlySet<string>
  transport: HeartbeatTransport
  /** Bound on opening a heartbeat stream, ms. */
  streamTimeoutMs: number
  /** Watchers per node (ring successors each node heartbeats). */
  fanout: number
  /** Publishes a rumour on the membership topic; resolves to whether any peer got it. */
  spread: (r: Rumour) => Promise<boolean>
  /** Runs an anti-entropy exchange with `peer` (it carries a disputed member its own row). */
  exchange: (peer: string) => Promise<void>
  /** The 32-bit hash of our state digest, carried in heartbeats. */
  digestHash: () => number
  /** A watched peer's heartbeat carried its digest hash, and its members hash unless it predates it. */
  onDigest: (peer: string, theirs: number, theirMembers?: number) => void
  /** A member joined, left, became suspect or recovered here. */
  onTransition: (t: MembershipTransition) => void
  /** Test hook: while true, no heartbeats and no rumours, like a hung process. */
  frozen?: () => boolean
}

/** Liveness counters for status. */
export interface LivenessStats {
  /** Times the loop woke up over a heartbeat interval late, and the ms lost. */
  stalls: { count: number, ms: number }
  /** The heartbeat interval now in use, ms. */
  heartbeatMs: number
  /** Refutations we published. */
  refutations: number
}

/**
 * Liveness: heartbeats to our ring successors, watching whoever heartbeats us,
 * suspicion and death by the membership table's timers, refutation of rumours about
 * us, and disputes (a member back by first-hand evidence that the rest of the site may
 * still hold dead).
 */
export interface Liveness {
  start: (signal: AbortSignal, loops: Loops) => void
  /** Closes heartbeat streams (after the loops' signal aborted). */
  stop: () => void
  /** First-hand evidence of `peer` (admission, a gossip message from it). */
  heard: (peer: string, sighting?: Sighting) => void
  /** `peer` passed admission; on its `first` connection we start heartbeating and watching as the ring says. */
  admitted: (peer: string, first: boolean, sighting: Sighting) => void
  /** A member vouched for by a peer (peer exchange). */
  learn: (peer: string, sighting: Sighting) => void
  /** The last connection to `peer` closed. */
  disconnected: (peer: string) => void
  /** Merges a rumour (gossip, or a row of a peer exchange); refutes one about us; relays a raised suspicion when `relayRaised`. */
  applyRumour: (r: Rumour, relayRaised: boolean) => void
  /** A heartbeat frame from `peer` (see heartbeat.ts). */
  receive: (peer: string, body: Uint8Array) => void
  /** The heartbeat protocol's handler: reads frames until the stream ends. */
  handle: (stream: Stream, peer: string, onMalformed: (err: unknown) => void) => Promise<void>
  /** Sends our leave notice (a `dead` rumour about us), waiting briefly for it to go out; no heartbeat contradicts it after. */
  leave: () => Promise<void>
  /** When the last member joined our view. */
  lastJoinAt: () => number
  stats: () => LivenessStats
}

/** Creates the liveness service for one run. */
export function createLiveness (c: LivenessComponents): Liveness {
  const { self, clock, log, timing, membership, admitted } = c
  const now = (): number => clock.now()
  const frozen = (): boolean => c.frozen?.() === true
  let signal: AbortSignal | undefined
  /** Outbound heartbeat streams. */
  const out = new Map<string, BeatStream>()
  const disputeQueued = new Set<string>()
  let lastJoinAt = -Infinity
  /** Last membership change (see `QUIET_AFTER_DEAD_PERIODS`). */
  let lastChangeAt = -Infinity
  let beatMs = timing.heartbeatIntervalMs
  /** We sent the leave notice: no heartbeat or refutation may contradict it. */
  let leaving = false
  /** Our refutation (or our hello), kept until it reached at least one peer. */
  let pendingRefute: Rumour | undefined
  let lastRefute: { incarnation: number, at: number } | undefined
  const stats = { stalls: { count: 0, ms: 0 }, refutations: 0 }
  const live = (): boolean => signal !== undefined && !signal.aborted

  const emit = (ts: MembershipTransition[]): void => {
    if (ts.length > 0) lastChangeAt = now()
    for (const t of ts) {
      if (t.type === 'join') {
        lastJoinAt = now()
        log.info('member joined', { peer: t.member.peerId })
        c.onTransition(t)
      } else if (t.type === 'leave') {
        log.info('member left', { peer: t.member.peerId })
        // The connection, if any, stays: a hung member that resumes is heard on it at once.
        c.onTransition(t)
        // The ring closed over the dead member: whoever it watched may now be ours to watch
        // (connected to us or not yet: a live one dials its new successor, a dead one is caught).
        expectPredecessors(now())
      } else {
        log.debug(`member ${t.type}`, { peer: t.member.peerId })
        c.onTransition(t)
      }
      if ((t.type === 'join' || t.type === 'recover') && membership.disputed(t.member.peerId) !== undefined) tellDisputed(t.member.peerId)
    }
  }

  /**
   * A member we held suspect or dead is back here by first-hand evidence (its heartbeat,
   * a message from it), not by its own refutation: the rumour may have missed it (a box
   * starved at boot), and then every node that heard the rumour but never hears from the
   * member itself holds it dead for good, with no credential for it. Unless its
   * refutation arrives within a suspicion period, an exchange with it carries its own row
   * as we held it, and it refutes (see anti-entropy's adverts). Tried again, backing off,
   * until the refutation is seen or the member is gone.
   */
  const tellDisputed = (peer: string, waitMs = timing.suspectAfterMs): void => {
    if (signal === undefined || !live() || disputeQueued.has(peer)) return
    disputeQueued.add(peer)
    clock.sleep(waitMs, signal).then(async () => {
      if (membership.disputed(peer) === undefined || !admitted.has(peer)) { disputeQueued.delete(peer); return }
      await c.exchange(peer)
      disputeQueued.delete(peer)
      if (membership.disputed(peer) !== undefined) tellDisputed(peer, Math.min(2 * waitMs, DISPUTE_MAX_WAIT_MS))
    }).catch((err: unknown) => {
      disputeQueued.delete(peer)
      if (live()) log.warn('telling a disputed member failed', { peer, error: errorMessage(err) })
    })
  }

  /** If, in our view, we are among `peer`'s ring successors, its heartbeats are due to us: watch for them. */
  const expectFrom = (peer: string): void => {
    if (membership.get(peer)?.liveness !== 'alive') return
    const view = membership.list().filter((m) => m.peerId !== peer && m.liveness !== 'dead').map((m) => m.peerId)
    if (ringSuccessors(peer, [self, ...view], c.fanout).includes(self)) membership.expect(peer, now())
  }

  /**
   * Watches every alive member whose heartbeats are due to us in our view of the ring.
   * Run at each death and at every beat: an expectation can lapse without a death (a
   * stale `alive` row disowned it, the member was suspect when the ring changed), and a
   * member nobody on our side watches is never found dead, so a minority cut off from the
   * rest would hold it alive for good and never see that it lost the quorum.
   */
  const expectPredecessors = (t: number): void => {
    const view = membership.list().filter((m) => m.liveness !== 'dead').map((m) => m.peerId)
    const predecessors = ringPredecessors(self, view, c.fanout)
    for (const p of predecessors) if (membership.get(p)?.liveness === 'alive') membership.expect(p, t)
    // A peer we watch that is no longer among our predecessors and holds no connection to us
    // cannot heartbeat us: it moved to its new successor and its connection to us closed before
    // its LAST frame arrived. Its successor watches it now; kept here, its silence would make us
    // suspect it, its refutation re-arm the watch, and the pair repeat that for good.
    for (const p of membership.watching()) if (!admitted.has(p) && !predecessors.includes(p)) membership.unwatch(p)
  }

  const spread = async (r: Rumour): Promise<boolean> => {
    if (frozen()) return false
    try {
      return await c.spread(r)
    } catch (err) {
      log.debug('rumour publish failed', { error: errorMessage(err) })
      return false
    }
  }

  const sendRefute = async (): Promise<void> => {
    const r = pendingRefute
    if (r === undefined) return
    if (await spread(r) && pendingRefute === r) pendingRefute = undefined
  }

  const openBeat = async (peer: string): Promise<void> => {
    if (signal === undefined || !live() || out.has(peer) || !admitted.has(peer)) return
    const d = deadline(clock, c.streamTimeoutMs, `heartbeat stream to ${peer}`, signal)
    try {
      const stream = await c.transport.open(peer, d.signal)
      if (stream === undefined) return
      if (!live() || out.has(peer)) { stream.abort(new Error('not needed')); return }
      out.set(peer, stream)
      stream.onClose(() => { if (out.get(peer) === stream) out.delete(peer) })
    } catch (err) {
      log.debug('heartbeat stream failed', { peer, error: errorMessage(err) })
    } finally {
      d.cancel()
    }
  }

  /** Heartbeats our ring successors; tells peers that dropped out of our successor set to stop watching us. */
  const sendHeartbeats = (): void => {
    if (signal === undefined || leaving || frozen()) return
    const s = signal
    const eligible = [...admitted].filter((p) => membership.get(p)?.liveness !== 'dead')
    const targets = new Set(ringSuccessors(self, eligible, c.fanout))
    const frame = (flags: number, stream: BeatStream): Uint8Array =>
      encodeHeartbeat({ flags, incarnation: membership.incarnation(), digestHash: c.digestHash(), ...(stream.members ? { membersHash: membership.digest() } : {}) })
    for (const [peer, stream] of out) {
      if (targets.has(peer)) continue
      out.delete(peer)
      void stream.end(frame(HEARTBEAT_LAST, stream), s).catch(() => {})
    }
    for (const peer of targets) {
      const stream = out.get(peer)
      if (stream === undefined || !stream.open) { out.delete(peer); void openBeat(peer); continue }
      if (stream.busy) continue
      void stream.send(frame(0, stream), s).catch(() => {})
    }
  }

  const applyRumour = (r: Rumour, relayRaised: boolean): void => {
    const { transitions, refute, relay } = membership.rumour(r, now(), { raise: relayRaised && admitted.has(r.peer) })
    emit(transitions)
    if (relay !== undefined) void spread(relay)
    // A node that said goodbye does not come back to life by refuting a rumour that was already on its way.
    if (refute !== undefined && !leaving) {
      // Several nodes may pass on the same suspicion: one refutation per incarnation and suspicion period is enough.
      const t = now()
      if (lastRefute !== undefined && lastRefute.incarnation === refute.incarnation && t - lastRefute.at < timing.suspectAfterMs) return
      lastRefute = { incarnation: refute.incarnation, at: t }
      stats.refutations++
      log.info('refuting a rumour about us', { state: r.state, incarnation: refute.incarnation })
      pendingRefute = refute
      void sendRefute()
    }
  }

  const receive = (peer: string, body: Uint8Array): void => {
    const hb = decodeHeartbeat(body)
    if ((hb.flags & HEARTBEAT_LAST) !== 0) {
      membership.unwatch(peer)
      emit(membership.heard(peer, now(), hb.incarnation))
      return
    }
    emit(membership.watch(peer, now(), hb.incarnation))
    c.onDigest(peer, hb.digestHash, hb.membersHash)
  }

  /** One round of the liveness loop; returns the ms until the next. */
  let nextBeat = 0
  let wakeAt: number | undefined
  const round = async (): Promise<number | undefined> => {
    if (wakeAt !== undefined) {
      // Timers run before pending I/O: let the heartbeats that queued up while we slept be read first.
      await new Promise<void>((resolve) => { setImmediate(resolve) })
      if (!live()) return undefined
      const late = now() - wakeAt
      if (late > timing.heartbeatIntervalMs) {
        membership.pause(late)
        stats.stalls.count++
        stats.stalls.ms += late
      }
    }
    const t = now()
    // Until this round ends, a failure anywhere below comes back after one heartbeat interval.
    wakeAt = t + timing.heartbeatIntervalMs
    if (t >= nextBeat) {
      sendHeartbeats()
      expectPredecessors(t)
      for (const p of admitted) membership.touch(p, t)
      const quiet = t - lastChangeAt >= QUIET_AFTER_DEAD_PERIODS * timing.deadAfterMs
      beatMs = nextBeatInterval(beatMs, timing.heartbeatIntervalMs, quiet)
      nextBeat = t + beatMs
    }
    const { transitions, publish: rumours } = membership.tick(t)
    emit(transitions)
    for (const r of rumours) void spread(r)
    if (pendingRefute !== undefined && t >= nextBeat - beatMs) void sendRefute()
    const due = Math.min(nextBeat, membership.nextDeadline(t) ?? nextBeat)
    wakeAt = Math.max(t + 1, due)
    return Math.max(1, due - t)
  }

  return {
    start (s, loops) {
      signal = s
      leaving = false
      // Tell the site we are here, once any peer hears it (retried like a refutation).
      pendingRefute = { peer: self, state: 'alive', incarnation: membership.incarnation() }
      nextBeat = now()
      lastChangeAt = nextBeat
      beatMs = timing.heartbeatIntervalMs
      loops.spawn('liveness', { everyMs: timing.heartbeatIntervalMs }, round)
    },
    stop () {
      for (const s of out.values()) s.abort(new Error('stopping'))
      out.clear()
    },
    heard (peer, sighting) { emit(membership.heard(peer, now(), undefined, sighting)) },
    admitted (peer, first, sighting) {
      emit(membership.heard(peer, now(), undefined, sighting))
      if (!first) return
      expectFrom(peer)
      void openBeat(peer)
    },
    learn (peer, sighting) { emit(membership.learn(peer, now(), sighting)) },
    disconnected (peer) {
      out.delete(peer)
      // A peer we watch whose last connection closed is suspect now, not after a silent interval: it is dead
      // after the suspicion time unless it refutes. Any other peer is only one link less (most members are
      // not connected to us at all); its own watcher decides.
      if (live() && membership.get(peer)?.liveness === 'alive' && membership.watching().includes(peer)) {
        const r: Rumour = { peer, state: 'suspect', incarnation: membership.incarnationOf(peer) ?? 0 }
        membership.unwatch(peer)
        emit(membership.rumour(r, now()).transitions)
        void spread(r)
      }
    },
    applyRumour,
    receive,
    async handle (stream, peer, onMalformed) {
      const reader = new FrameReader(stream, 64)
      try {
        for (;;) {
          const body = await reader.next()
          if (body === undefined) break
          receive(peer, body)
        }
        await stream.close().catch(() => {})
      } catch (err) {
        if (!live() || stream.status !== 'open') return
        if (err instanceof Error && (err.name === 'MalformedFrameError' || err.name === 'FrameTooLargeError')) {
          onMalformed(err)
          log.warn('bad heartbeat stream, resetting it', { peer, error: errorMessage(err) })
        } else {
          // A reset or a read that failed with the connection: the peer's next stream replaces it.
          log.debug('heartbeat stream failed, resetting it', { peer, error: errorMessage(err) })
        }
        stream.abort(err instanceof Error ? err : new Error(String(err)))
      }
    },
    async leave () {
      const bye = deadline(clock, LEAVE_NOTICE_MS, 'leave notice', new AbortController().signal)
      leaving = true
      pendingRefute = undefined
      // publish() returns once the notice is queued: give it a moment to leave before the connections close.
      const notice = async (): Promise<void> => { if (await spread({ peer: self, state: 'dead', incarnation: membership.incarnation() })) await clock.sleep(LEAVE_FLUSH_MS, bye.signal).catch(() => {}) }
      await Promise.race([notice(), new Promise<void>((resolve) => { bye.signal.addEventListener('abort', () => { resolve() }, { once: true }) })])
      bye.cancel()
    },
    lastJoinAt: () => lastJoinAt,
    stats: () => ({ stalls: { ...stats.stalls }, heartbeatMs: beatMs, refutations: stats.refutations })
  }
}
