import type { Stream } from '@libp2p/interface'
import type { Timing } from '../config/types.ts'
import type { Clock } from '../util/clock.ts'
import { errorMessage } from '../util/errors.ts'
import { fingerprintRows } from '../util/fingerprint.ts'
import type { Logger } from '../util/log.ts'
import type { RandomSource } from '../util/random.ts'
import { digestHash } from './heartbeat.ts'
import { QUIET_AFTER_DEAD_PERIODS } from './liveness.ts'
import type { Loops } from './loops.ts'
import { isPeerId, type Membership, type Rumour, type Sighting } from './membership.ts'
import { alarmingRejections, type ApplyResult, type StateStore } from './state/index.ts'
import { deadline, withStream } from './stream-io.ts'
import { pushAsInitiator, pushAsResponder, syncAsInitiator, syncAsResponder, type PeerAdvert, type SyncResult, type SyncSide } from './sync.ts'

/** Bound on one anti-entropy exchange, ms. @default 10000 */
export const DEFAULT_SYNC_TIMEOUT_MS = 10_000
/**
 * Without a differing digest, anti-entropy runs with a random alive peer every this many
 * intervals, and at most once per `AE_SAFETY_MIN_MS`. Heartbeats carry each node's digest
 * and members hashes to its ring successor, so a difference anywhere on a settled ring
 * shows up on some watcher; the safety round only covers what that misses, and once a
 * minute does.
 */
const AE_SAFETY_ROUNDS = 12
const AE_SAFETY_MIN_MS = 60_000
/** How long a catch-up waits for more puts whose gossip missed a peer, ms. */
const CATCH_UP_DELAY_MS = 20
/** Most entries one catch-up pushes to a peer; a longer backlog goes by a whole exchange. */
export const MAX_CATCH_UP_PUSH = 64

/** What anti-entropy is given. */
export interface AntiEntropyComponents {
  self: string
  clock: Clock
  random: RandomSource
  log: Logger
  timing: Pick<Timing, 'antiEntropyIntervalMs' | 'deadAfterMs'>
  store: StateStore
  membership: Pick<Membership, 'list' | 'get' | 'incarnationOf' | 'disputed' | 'digest' | 'changedAt'>
  /** Peers admitted on a connection that is still open. */
  admitted: ReadonlySet<string>
  /** See the admission gate. */
  admittedOrSoon: (peer: string, signal: AbortSignal) => Promise<boolean>
  /** A new sync or push stream to `peer` on an open connection, or undefined when there is none. */
  openStream: (peer: string, protocol: 'sync' | 'push', signal: AbortSignal) => Promise<Stream | undefined>
  /** Addresses we know for a peer. */
  addressesOf: (peer: string) => string[]
  /** How we learned of a peer, for a row we add (see the dialler). */
  via: (peer: string, fallback: string) => string
  /** A peer a remote vouched for, with addresses: remembered and maybe dialled. */
  learnPeer: (peer: string, addresses: string[], label: string) => void
  /** Membership: a member vouched for by a peer, and a rumour (a row of the remote's table). */
  learnMember: (peer: string, sighting: Sighting) => void
  applyRumour: (r: Rumour, relayRaised: boolean) => void
  /** Exchange admitted-peer lists (off only to test DHT discovery alone). */
  peerExchange: boolean
  maxFrameBytes: number
  timeoutMs: number
  /** A frame of the protocol was malformed. */
  onMalformed: () => void
  /** Test hook: rewrites the rows we send `to`. */
  tamperAdverts?: (to: string, adverts: PeerAdvert[]) => PeerAdvert[]
  /** Test hook: while it returns true no exchange is run or answered, like a hung process (whose answers would count as news of it). */
  frozen?: () => boolean
}

/** How `AntiEntropy.run` opens an exchange. */
export interface RunOptions {
  /** Start with our digest's hash alone (equal replicas end there). @default false */
  hashFirst?: boolean
  /** Send our membership table in full, whatever the peer was sent before. @default false */
  fullTable?: boolean
  /** Opens the stream (the connection just admitted). @default a new sync stream on an open connection */
  open?: (signal: AbortSignal) => Promise<Stream | undefined>
}

/** One side of an exchange, and what it learned on the way. */
interface Exchange extends SyncSide {
  /** The peer's members hash, once its peer list came. */
  theirHash?: number
  /** We opened with our members hash alone (a peer held down or in dispute still got its own row). */
  withheld: boolean
}

/** Anti-entropy counters for status. */
export interface SyncStats { ok: number, failed: number }

/**
 * Anti-entropy and peer exchange: state exchanges (sync.ts) with a peer whose heartbeat
 * showed a replica or a membership table that differs, a slow safety round with an alive
 * peer, an exchange with each newly admitted peer, and a catch-up push of puts whose
 * gossip missed a peer (P2P-37). Each exchange also carries our membership table, so members and
 * rumours spread to nodes with no connection to them, and a rumour a peer missed (a
 * gossip message lost on its way) reaches it at the next exchange its heartbeats start.
 */
export interface AntiEntropy {
  start: (signal: AbortSignal, loops: Loops) => void
  /** One exchange with `peer` (opening its stream with `open` when given); resolves to whether it completed. Failures are counted, never thrown. */
  run: (peer: string, options?: RunOptions) => Promise<boolean>
  /** The sync protocol's handler (answering side; waits while our own proof to the peer is in flight). */
  handle: (stream: Stream, peer: string) => Promise<void>
  /** The push protocol's handler (as `handle`). */
  handlePush: (stream: Stream, peer: string) => Promise<void>
  /** One round of the ticker (see `round`'s comment). */
  round: () => Promise<void>
  /** A watched peer's heartbeat carried `theirs`, the hash of its digest, and `theirMembers`, its members hash (see `Membership.digest`) unless it predates it. */
  heartbeatDigest: (peer: string, theirs: number, theirMembers?: number) => void
  /** The hash of our digest (cached until the store changes). */
  digestHash: () => number
  /** The store changed: the cached digest hash is stale. */
  changed: () => void
  /**
   * Gossip of a local entry (`wire`) reached only `reached`: it is pushed to the other
   * admitted peers (a whole exchange without `wire`, or with a peer that takes no pushes).
   */
  catchUp: (reached: ReadonlySet<string>, wire?: Uint8Array) => void
  /** The last connection to `peer` closed. */
  disconnected: (peer: string) => void
  stats: () => SyncStats
}

/** Creates the anti-entropy service for one run. */
export function createAntiEntropy (c: AntiEntropyComponents): AntiEntropy {
  const { self, clock, random, log, timing, store, membership, admitted } = c
  const now = (): number => clock.now()
  let signal: AbortSignal | undefined
  const live = (): boolean => signal !== undefined && !signal.aborted && c.frozen?.() !== true
  const stats: SyncStats = { ok: 0, failed: 0 }
  /**
   * Peers whose replica differs from ours while neither changed over a heartbeat: a
   * real gap for anti-entropy to close. A difference that keeps moving is gossip in
   * flight; syncing it cost two full digests per exchange while a site formed, and
   * found nothing gossip would not deliver.
   */
  const differs = new Set<string>()
  /**
   * Peers whose membership table differs from ours while neither changed over a
   * heartbeat: one of us missed a rumour (a gossip message lost on its way, a publish
   * before the stream to it opened), and an exchange of tables repairs it. Each maps to
   * its pair of members hashes (`theirs/ours`).
   */
  const membersDiffer = new Map<string, string>()
  /**
   * The pair of members hashes an exchange with each peer completed at: a difference
   * that outlives a completed exchange is one no exchange mends (a table at its row
   * bound), so it starts none until either table changes.
   */
  const membersSettled = new Map<string, string>()
  /** The digest hashes (theirs, ours) and members hashes (`theirs/ours`) at each watched peer's last heartbeat. */
  const lastHashes = new Map<string, { theirs: number, ours: number, members?: string }>()
  /** Hash of the peer list last sent to each peer: an unchanged list is not sent again. */
  const sentPeers = new Map<string, string>()
  /** Admitted peers that sent us their members hash (see `MEMBERS_HASH_ROW`): they answer an exchange opened with ours alone. */
  const hashing = new Set<string>()
  let ownDigestHash: number | undefined
  /** When a safety round last ran (see AE_SAFETY_ROUNDS); set at start. */
  let lastSafetyAt = 0
  /** Per admitted peer a catch-up is due for: the entries to push, or undefined for a whole exchange. */
  const catchUpPeers = new Map<string, Uint8Array[] | undefined>()
  let catchUpPending = false

  const currentDigestHash = (): number => {
    ownDigestHash ??= digestHash(store.digest())
    return ownDigestHash
  }

  /**
   * Our membership table for a peer exchange with `to`, liveness and incarnations
   * included (see `side` for when `table` is 'hash-only' or 'full'); empty when `to`
   * already has this list, unless the rows `to` sent in this exchange (`told`: id →
   * liveness@incarnation) show it lacks one of ours, or its members hash (`theirHash`)
   * differs and it sent no rows.
   */
  const adverts = (to: string, told: ReadonlyMap<string, string>, table: 'hash-only' | 'full' | 'changed', theirHash?: number): PeerAdvert[] => {
    if (!c.peerExchange) return []
    const t = now()
    const list: PeerAdvert[] = []
    // Its own row first when we hold it down or in dispute (a rumour about itself it missed, to refute): the list may be cut at the exchange's bound.
    const held = membership.get(to)
    const disputed = membership.disputed(to)
    if (held !== undefined && (held.liveness !== 'alive' || disputed !== undefined)) {
      list.push({ id: to, addresses: [], ageMs: 0, liveness: held.liveness === 'alive' ? 'suspect' : held.liveness, incarnation: disputed ?? membership.incarnationOf(to) ?? 0 })
    }
    if (table === 'hash-only') return c.tamperAdverts === undefined ? list : c.tamperAdverts(to, list)
    for (const m of membership.list()) {
      if (m.peerId !== to) list.push({ id: m.peerId, addresses: c.addressesOf(m.peerId), ageMs: Math.max(0, t - m.lastSeen), liveness: m.liveness, incarnation: membership.incarnationOf(m.peerId) ?? 0 })
    }
    const fingerprint = fingerprintRows(list.map((p) => `${p.id}=${p.addresses.join(',')}/${p.liveness ?? ''}@${p.incarnation ?? ''}`))
    const lacks = (told.size > 0 || theirHash !== undefined) && list.some((p) => p.id !== to && told.get(p.id) !== `${p.liveness ?? ''}@${p.incarnation ?? ''}`)
    const fresh = sentPeers.get(to) === fingerprint && !lacks && table !== 'full' ? [] : list
    sentPeers.set(to, fingerprint)
    return c.tamperAdverts === undefined ? fresh : c.tamperAdverts(to, fresh)
  }

  const onPeers = (list: PeerAdvert[]): void => {
    if (!c.peerExchange) return
    for (const p of list) {
      if (p.liveness === undefined || p.incarnation === undefined) {
        // An advert without liveness: a peer the sender heard from `ageMs` ago.
        if (p.id === self || !isPeerId(p.id)) continue
        c.learnPeer(p.id, p.addresses, 'peer-exchange')
        if (p.ageMs < timing.deadAfterMs) c.learnMember(p.id, { addresses: p.addresses, discoveredBy: c.via(p.id, 'peer-exchange') })
        continue
      }
      // The sender's table row, merged like a rumour (a suspicion of us is refuted).
      if (p.id !== self) {
        if (!isPeerId(p.id)) continue
        if (p.liveness !== 'dead') c.learnPeer(p.id, p.addresses, 'peer-exchange')
        if (p.liveness === 'alive') c.learnMember(p.id, { addresses: p.addresses, discoveredBy: c.via(p.id, 'peer-exchange') })
      }
      c.applyRumour({ peer: p.id, state: p.liveness, incarnation: p.incarnation }, false)
    }
  }

  /**
   * One side of an exchange or push with `peer`. Both sides send their members hash
   * (`Membership.digest`) ahead of their rows. `role` says how much of our table goes:
   * - 'answer': none when the asker's hash equals ours (it holds every row we do),
   *   else as 'changed' (and all of it when the asker sent a hash but no rows);
   * - 'open': only the hash, to a peer that sent us one before, while our table is
   *   quiet (it answers with its table when the hashes differ; `settle` then finds
   *   whether it still lacks ours); else as 'changed';
   * - 'full': all of it (a watcher saw the tables differ);
   * - 'push': as 'changed': all of it unless this same table went to the peer before.
   * The peer's own row goes whatever the role when we hold it down or in dispute.
   */
  const side = (peer: string, s: AbortSignal, role: 'answer' | 'open' | 'full' | 'push'): Exchange => {
    const told = new Map<string, string>()
    const x: Exchange = {
      withheld: false,
      store,
      remote: peer,
      membersHash: c.peerExchange ? () => membership.digest() : undefined,
      onMembersHash: (hash) => { x.theirHash = hash; hashing.add(peer) },
      peers: () => {
        const table = role === 'full' ? 'full' : role === 'open' && hashing.has(peer) && quiet() ? 'hash-only' : 'changed'
        const equal = role === 'answer' && x.theirHash === membership.digest()
        const rows = adverts(peer, told, equal ? 'hash-only' : table, role === 'answer' ? x.theirHash : undefined)
        x.withheld = !equal && table === 'hash-only'
        return rows
      },
      onPeers: (list) => {
        for (const p of list) if (p.liveness !== undefined) told.set(p.id, `${p.liveness}@${p.incarnation ?? ''}`)
        onPeers(list)
      },
      onApplied: (r: ApplyResult) => { noteApplied(log, peer, r) },
      maxFrameBytes: c.maxFrameBytes,
      signal: s
    }
    return x
  }

  /**
   * Whether our table has held still for the heartbeats' quiet period (P2P-11). Until
   * then, news of its change (a partition healing, a member's death) is likely still
   * missing somewhere, and an exchange we open carries our whole table.
   */
  const quiet = (): boolean => now() - membership.changedAt() >= QUIET_AFTER_DEAD_PERIODS * timing.deadAfterMs

  /**
   * After an exchange we opened with our hash alone: when the peer's hash (sent after it
   * merged whatever we sent) still differs from ours (after we merged its rows), it lacks
   * something of ours, and the next round runs an exchange with our table in full, as a
   * watcher's differing members hash does (P2P-36).
   */
  const settle = (peer: string, x: Exchange): void => {
    if (!x.withheld || x.theirHash === undefined) return
    const pair = `${x.theirHash}/${membership.digest()}`
    if (x.theirHash !== membership.digest() && membersSettled.get(peer) !== pair) membersDiffer.set(peer, pair)
  }

  const failed = (peer: string, err: unknown, answering: boolean): void => {
    stats.failed++
    // The table we sent may not have arrived: the next exchange sends it again.
    sentPeers.delete(peer)
    if (isMalformed(err)) {
      // A frame that broke the protocol's rules (a bad shape, a number out of range): refused whole, counted, logged.
      c.onMalformed()
      log.warn('malformed sync frame, exchange refused', { peer, error: errorMessage(err) })
      return
    }
    log.debug(answering ? 'anti-entropy exchange cut short' : 'anti-entropy exchange failed', { peer, error: errorMessage(err) })
  }

  const run = async (peer: string, options: RunOptions = {}): Promise<boolean> => {
    if (signal === undefined || !live()) return false
    const s = signal
    const d = deadline(clock, c.timeoutMs, `sync with ${peer}`, s)
    try {
      const stream = await (options.open ?? (async (x: AbortSignal) => await c.openStream(peer, 'sync', x)))(d.signal)
      if (stream === undefined) return false
      const x = side(peer, d.signal, options.fullTable === true ? 'full' : 'open')
      const r = await withStream(stream, d.signal, async () => await syncAsInitiator(stream, x, options.hashFirst === true ? { digestHash: currentDigestHash() } : {}))
      stats.ok++
      settle(peer, x)
      if (r.sent + r.received > 0) log.debug('anti-entropy exchange', { peer, ...r })
      return true
    } catch (err) {
      if (!s.aborted) failed(peer, err, false)
      return false
    } finally {
      d.cancel()
    }
  }

  /**
   * Pushes `entries` to `peer`. A peer that does not take pushes (a build from before
   * them refuses the protocol) gets a whole exchange instead.
   */
  const push = async (peer: string, entries: Uint8Array[]): Promise<void> => {
    if (signal === undefined || !live()) return
    const s = signal
    const d = deadline(clock, c.timeoutMs, `push to ${peer}`, s)
    let stream: Stream | undefined
    try {
      stream = await c.openStream(peer, 'push', d.signal)
      if (stream === undefined) return
      const opened = stream
      await withStream(opened, d.signal, async () => await pushAsInitiator(opened, side(peer, d.signal, 'push'), entries))
      stats.ok++
    } catch (err) {
      if (s.aborted) return
      failed(peer, err, false)
      if (stream === undefined) void run(peer)
    } finally {
      d.cancel()
    }
  }

  /** The answering side of a sync or push stream, once `peer` is admitted. */
  const answer = async (stream: Stream, peer: string, what: 'sync' | 'push', respond: (signal: AbortSignal) => Promise<SyncResult>): Promise<void> => {
    if (signal === undefined || !live()) { stream.abort(new Error('stopping')); return }
    const s = signal
    const d = deadline(clock, c.timeoutMs, `${what} with ${peer}`, s)
    if (!(await c.admittedOrSoon(peer, d.signal))) { d.cancel(); stream.abort(new Error('not admitted')); return }
    try {
      await withStream(stream, d.signal, async () => await respond(d.signal))
      stats.ok++
    } catch (err) {
      if (s.aborted) return
      failed(peer, err, true)
    } finally {
      d.cancel()
    }
  }

  /**
   * Anti-entropy round: with a peer whose heartbeat showed a different digest or members
   * hash if there is one; otherwise, once a safety period has passed (see
   * AE_SAFETY_ROUNDS), with an admitted peer we hold alive (a safety net for what differs
   * only outside our watchers' view; a hung peer held dead would not answer).
   */
  const round = async (): Promise<void> => {
    const differing = [...new Set([...differs, ...membersDiffer.keys()])].filter((p) => admitted.has(p))
    let peers = differing
    if (differing.length === 0) {
      const t = now()
      if (admitted.size === 0 || t - lastSafetyAt < Math.max(AE_SAFETY_ROUNDS * timing.antiEntropyIntervalMs, AE_SAFETY_MIN_MS)) return
      lastSafetyAt = t
      const alive = [...admitted].filter((p) => membership.get(p)?.liveness === 'alive')
      peers = alive.length > 0 ? alive : [...admitted]
    }
    const peer = peers[random.int(peers.length)]
    if (peer === undefined) return
    const stateGap = differs.delete(peer)
    const members = membersDiffer.get(peer)
    membersDiffer.delete(peer)
    // Equal replicas are likely unless the digests differ: start with the digest's hash
    // alone. Our table goes in full when the members hashes differ, whatever we sent
    // before (see `adverts` for its side).
    if (await run(peer, { hashFirst: !stateGap, fullTable: members !== undefined }) && members !== undefined) membersSettled.set(peer, members)
  }

  return {
    start (s, loops) {
      signal = s
      lastSafetyAt = now()
      loops.spawn('anti-entropy', { everyMs: timing.antiEntropyIntervalMs, firstDelayMs: timing.antiEntropyIntervalMs }, round)
    },
    run,
    round,
    handle: async (stream, peer) => { await answer(stream, peer, 'sync', async (s) => await syncAsResponder(stream, side(peer, s, 'answer'), currentDigestHash)) },
    handlePush: async (stream, peer) => { await answer(stream, peer, 'push', async (s) => await pushAsResponder(stream, side(peer, s, 'answer'))) },
    heartbeatDigest (peer, theirs, theirMembers) {
      const ours = currentDigestHash()
      const last = lastHashes.get(peer)
      if (theirs === ours) differs.delete(peer)
      else if (last?.theirs === theirs && last.ours === ours) differs.add(peer)
      const oursMembers = membership.digest()
      const members = theirMembers === undefined ? undefined : `${theirMembers}/${oursMembers}`
      if (theirMembers === oursMembers) membersDiffer.delete(peer)
      else if (members !== undefined && last?.members === members && membersSettled.get(peer) !== members) membersDiffer.set(peer, members)
      lastHashes.set(peer, members === undefined ? { theirs, ours } : { theirs, ours, members })
    },
    digestHash: currentDigestHash,
    changed () { ownDigestHash = undefined },
    /**
     * Admitted peers a local entry's gossip did not reach get it pushed at once (P2P-37).
     * That happens after connections open, before gossipsub has opened its own stream to
     * the peer and learned what it subscribes: gossipsub opens those one peer at a time,
     * each a round trip, which on a busy site takes seconds. A small site elects within a
     * second of its last boot, and its credentials waited for anti-entropy to notice
     * differing digests; a whole exchange each time cost two digests to deliver one entry.
     * One push per peer serves a burst of puts.
     */
    catchUp (reached, wire) {
      if (signal === undefined || !live()) return
      for (const peer of admitted) {
        if (reached.has(peer)) continue
        const held = catchUpPeers.has(peer) ? catchUpPeers.get(peer) : []
        catchUpPeers.set(peer, wire === undefined || held === undefined || held.length >= MAX_CATCH_UP_PUSH ? undefined : [...held, wire])
      }
      if (catchUpPending || catchUpPeers.size === 0) return
      catchUpPending = true
      clock.sleep(CATCH_UP_DELAY_MS, signal).then(() => {
        catchUpPending = false
        const due = [...catchUpPeers].filter(([peer]) => admitted.has(peer))
        catchUpPeers.clear()
        for (const [peer, entries] of due) void (entries === undefined ? run(peer) : push(peer, entries))
      }, () => { catchUpPending = false })
    },
    disconnected (peer) {
      differs.delete(peer)
      membersDiffer.delete(peer)
      membersSettled.delete(peer)
      lastHashes.delete(peer)
      sentPeers.delete(peer)
      hashing.delete(peer)
    },
    stats: () => ({ ...stats })
  }
}

/** Logs the refusals in an applied batch that point at a fault (not the everyday stale or duplicate entry). */
export function noteApplied (log: Logger, peer: string, r: ApplyResult): void {
  const rejected = alarmingRejections(r.rejected)
  if (rejected !== undefined) log.warn('refused state entries', { peer, rejected })
}

/** Whether `err` is a frame that broke our protocols' rules. */
export function isMalformed (err: unknown): boolean {
  return err instanceof Error && (err.name === 'MalformedFrameError' || err.name === 'FrameTooLargeError')
}
