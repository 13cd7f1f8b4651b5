import type { Timing } from '../config/types.ts'
import type { Clock } from '../util/clock.ts'
import { errorMessage } from '../util/errors.ts'
import type { Logger } from '../util/log.ts'
import type { AdmissionFailure } from './errors.ts'
import { ringSuccessors } from './heartbeat.ts'
import type { Loops } from './loops.ts'
import type { Membership } from './membership.ts'
import { meshLinks } from './mesh.ts'
import type { PeerBook } from './peer-book.ts'
import { deadline } from './stream-io.ts'

/** Most dials in flight at once from the redial and discovery paths. @default 8 */
export const DEFAULT_MAX_PARALLEL_DIALS = 8
/**
 * Most peers discovered but not yet members that a node keeps to dial. Discovery on the
 * LAN is unauthenticated (anyone can answer an mDNS query with any peer id), so the list
 * is bounded: when it is full, a candidate whose dial failed makes room, and otherwise
 * the newcomer is dropped (and counted) until one does. @default 256
 */
export const DEFAULT_MAX_CANDIDATES = 256
/** A peer that failed admission is not dialled again for this many redial intervals. */
const ADMISSION_BACKOFF_INTERVALS = 10
/**
 * The first hold-off after a failed dial or admission, as a fraction of the redial
 * interval; it doubles with each failure in a row, up to two redial intervals.
 */
const FIRST_HOLD_OFF_FRACTION = 0.2
/** Redial intervals a connection outside our links is kept before it may be pruned. */
const MESH_PRUNE_GRACE_INTERVALS = 2
/**
 * How long a node waits for a lower-id peer that links to it as well to dial first.
 * Two nodes that find each other at once (mDNS answers reach both) and both dial get
 * two connections: twice the handshakes, streams and heartbeats, and gossipsub picks
 * its stream on one of them. A peer that has not dialled within this time gets our dial
 * after all. On an idle LAN a dial completes well within it; while a site boots on small
 * CPUs a connection takes much longer, and a longer wait did not prevent doubles but
 * slowed formation.
 */
export const MUTUAL_DIAL_YIELD_MS = 250

/** An open outbound connection, as pruning sees it. */
export interface OutboundLink {
  peer: string
  /** When it opened (clock ms). */
  openedAt: number
  close: () => void
}

/** What the dialler needs from the network (libp2p in production, a fake in tests). */
export interface DialNetwork {
  /** Connections to `peer` in any state (0 when none). */
  connections: (peer: string) => number
  /** Open connections to `peer`. */
  openConnections: (peer: string) => number
  /** Dials `peer`, adding `addresses` to what we know of it; resolves to how many of them were usable multiaddrs. */
  dial: (peer: string, addresses: string[], signal: AbortSignal) => Promise<number>
  /** Dials a full multiaddr (bootstrap peers). */
  dialAddress: (addr: string, signal: AbortSignal) => Promise<void>
  /** Our open outbound connections. */
  outbound: () => OutboundLink[]
}

/** A bootstrap peer: its multiaddr and the peer id in it. */
export interface BootstrapPeer {
  peer: string
  addr: string
}

/** What the dialler is given. */
export interface DiallerComponents {
  self: string
  clock: Clock
  log: Logger
  timing: Pick<Timing, 'redialIntervalMs'>
  network: DialNetwork
  book: PeerBook
  membership: Pick<Membership, 'list' | 'get'>
  /** Peers admitted on a connection that is still open. */
  admitted: ReadonlySet<string>
  bootstrap: BootstrapPeer[]
  /** Links each node dials; Infinity dials every peer it learns of. */
  linkCount: number
  dialTimeoutMs: number
  /** @default DEFAULT_MAX_PARALLEL_DIALS */
  maxParallelDials?: number
  /** @default DEFAULT_MAX_CANDIDATES */
  maxCandidates?: number
}

/** Dialler counters for status. */
export interface DialStats { ok: number, failed: number, pruned: number, candidatesDropped: number }

/** Dialler and mesh: which peers we dial, when, and which connections we close. */
export interface Dialler {
  start: (signal: AbortSignal, loops: Loops) => void
  /** A discovery source reported `peer` (the label is kept from the first report). */
  found: (peer: string, label: string) => void
  /** How `peer` was first discovered, if known here. */
  discoveredBy: (peer: string) => string | undefined
  /** `discoveredBy`, else the known-peer list's label, else `fallback`. */
  via: (peer: string, fallback: string) => string
  /** A peer learned with addresses (discovery, peer exchange, rendezvous): remembered, and a candidate to dial if not a member. */
  learn: (peer: string, addresses: string[], label: string) => void
  /** Runs `maintain` once after the current burst of discoveries and membership changes. */
  schedule: () => void
  /** Dials our links that are not connected (see mesh.ts). */
  maintain: () => void
  /** Redial round: bootstrap peers, links, pruning, and the known-peer list saved. */
  redial: () => Promise<void>
  /** `peer` passed the token proof: no longer a candidate or held off. */
  admitted: (peer: string) => void
  /** `peer` failed admission: held off (and forgotten when it was refused). */
  failed: (peer: string, reason: AdmissionFailure) => void
  /** Whether we hold `peer` off now (failed admission or dial). */
  holdingOff: (peer: string, t: number) => boolean
  /** Peers waiting to become members (tests, status). */
  candidates: () => string[]
  /** The candidates we still try now: not held off after a failed dial or admission. */
  pending: () => string[]
  stats: () => DialStats
}

/** Creates the dialler; nothing is dialled before `start`. */
export function createDialler (c: DiallerComponents): Dialler {
  const { self, clock, log, timing, network, book, membership, admitted, linkCount } = c
  const maxParallel = c.maxParallelDials ?? DEFAULT_MAX_PARALLEL_DIALS
  const maxCandidates = c.maxCandidates ?? DEFAULT_MAX_CANDIDATES
  const now = (): number => clock.now()
  let signal: AbortSignal | undefined
  const dialing = new Set<string>()
  /** Peers to dial once a slot frees up. */
  const backlog = new Map<string, string[]>()
  /** Mutual links we left to the lower-id peer to dial, and when we yielded. */
  const yielded = new Map<string, number>()
  /** How each peer was first discovered (before we admitted it). */
  const labels = new Map<string, string>()
  /** Peers that failed admission are not dialled again before this time. */
  const blockedUntil = new Map<string, number>()
  /** Peers whose last dial failed are not dialled again before this time. */
  const unreachableUntil = new Map<string, number>()
  /** Dials or admissions that failed in a row, by peer (cleared by an admission). */
  const failures = new Map<string, number>()
  /**
   * Holds `peer` off after a failed dial or admission: a fifth of the redial interval
   * at first, doubling with each failure in a row, at most two redial intervals. On a
   * lossy link most failures are a lost SYN or a handshake that timed out, and the
   * next try usually gets through; a peer that is really gone soon waits the longest.
   */
  const holdOff = (peer: string): void => {
    const n = (failures.get(peer) ?? 0) + 1
    failures.delete(peer)
    failures.set(peer, n)
    // Bounded like the candidates: ids made up on an unauthenticated source cannot grow it.
    if (failures.size > 4 * maxCandidates) failures.delete(failures.keys().next().value as string)
    const most = 2 * timing.redialIntervalMs
    unreachableUntil.set(peer, now() + Math.min(most, FIRST_HOLD_OFF_FRACTION * timing.redialIntervalMs * 2 ** (n - 1)))
  }
  /** Peers discovered that are not members yet, and when (bounded, see DEFAULT_MAX_CANDIDATES). */
  const candidates = new Map<string, number>()
  const stats: DialStats = { ok: 0, failed: 0, pruned: 0, candidatesDropped: 0 }
  let queued = false

  const holdingOff = (peer: string, t: number): boolean => (blockedUntil.get(peer) ?? 0) > t || (unreachableUntil.get(peer) ?? 0) > t
  const isConnected = (peer: string): boolean => network.connections(peer) > 0
  const addressesOf = (peer: string): string[] => book.get(peer)?.addresses ?? []

  const schedule = (): void => {
    if (queued) return
    queued = true
    queueMicrotask(() => { queued = false; maintain() })
  }

  const dialPeer = (peer: string, addresses: string[]): void => {
    if (signal === undefined || signal.aborted || peer === self) return
    if (dialing.has(peer) || isConnected(peer)) return
    if (holdingOff(peer, now())) return
    if (dialing.size >= maxParallel) { backlog.set(peer, addresses); return }
    backlog.delete(peer)
    const s = signal
    dialing.add(peer)
    log.debug('dialling', { peer })
    void (async () => {
      try {
        const usable = await withTimeout(clock, c.dialTimeoutMs, `dial ${peer}`, s, async (d) => await network.dial(peer, addresses, d))
        stats.ok++
        unreachableUntil.delete(peer)
        // We knew no address (a member named in a rumour): libp2p's peer routing found one in the DHT.
        if (usable === 0 && !labels.has(peer)) labels.set(peer, 'dht')
      } catch (err) {
        stats.failed++
        log.debug('dial failed', { peer, error: errorMessage(err) })
        if (!s.aborted) {
          // Left alone for a while (see holdOff); another peer takes its place among our links now.
          holdOff(peer)
          schedule()
          // Dialled again once the hold-off ends rather than at the next redial round.
          clock.sleep(Math.max(0, (unreachableUntil.get(peer) ?? now()) - now()) + 1, s).then(schedule, () => {})
        }
      } finally {
        dialing.delete(peer)
        // Next one waiting for a slot, so a burst of discoveries is dialled now rather than on the redial ticker.
        const next = backlog.entries().next()
        if (next.done !== true) { backlog.delete(next.value[0]); dialPeer(next.value[0], next.value[1]) }
      }
    })()
  }

  const dialBootstrap = ({ peer, addr }: BootstrapPeer): void => {
    if (signal === undefined || signal.aborted || peer === self) return
    if (!labels.has(peer)) labels.set(peer, 'bootstrap')
    if (dialing.has(peer) || isConnected(peer)) return
    const s = signal
    dialing.add(peer)
    void (async () => {
      try {
        await withTimeout(clock, c.dialTimeoutMs, `dial ${addr}`, s, async (d) => { await network.dialAddress(addr, d) })
        stats.ok++
      } catch (err) {
        stats.failed++
        log.debug('bootstrap dial failed', { addr, error: errorMessage(err) })
      } finally {
        dialing.delete(peer)
      }
    })()
  }

  const addCandidate = (peer: string): boolean => {
    if (candidates.has(peer)) return false
    if (candidates.size >= maxCandidates) {
      // Room is made only by a candidate we hold off (its dial or its proof failed): a
      // flood of made-up ids from an unauthenticated source cannot push out real peers.
      const t = now()
      let evict: string | undefined
      for (const p of candidates.keys()) if (holdingOff(p, t)) { evict = p; break }
      if (evict === undefined) {
        stats.candidatesDropped++
        if (stats.candidatesDropped === 1 || stats.candidatesDropped % 100 === 0) log.warn('candidate list full, dropping newly discovered peers', { max: maxCandidates, dropped: stats.candidatesDropped })
        return false
      }
      candidates.delete(evict)
    }
    candidates.set(peer, now())
    return true
  }

  /**
   * Whether `peer` is a candidate: not a member, or a member we hold dead. Nothing else
   * dials a dead member, so one sighted again (its mDNS answer, a peer that holds it
   * alive) is dialled like a newcomer: that is how two sides find each other when a
   * partition heals, and the connection's admission brings it back to life here.
   */
  const wanted = (peer: string): boolean => {
    const m = membership.get(peer)
    return m === undefined || (m.liveness === 'dead' && !isConnected(peer))
  }

  const learn = (peer: string, addresses: string[], label: string): void => {
    if (peer === self) return
    if (!labels.has(peer)) labels.set(peer, book.get(peer)?.discoveredBy ?? label)
    book.upsert(peer, { addresses, discoveredBy: labels.get(peer) ?? label })
    if (wanted(peer) && addCandidate(peer)) schedule()
  }

  /** The ring we pick links from: members not known dead, and candidates we may dial. */
  const meshView = (): string[] => {
    const t = now()
    const view: string[] = []
    for (const m of membership.list()) if (m.liveness !== 'dead') view.push(m.peerId)
    for (const p of candidates.keys()) {
      if (!wanted(p)) { candidates.delete(p); continue }
      if (!holdingOff(p, t)) view.push(p)
    }
    return view
  }

  /** Whether `peer` counts us among its links, as far as our view tells. */
  const linksTo = (peer: string, view: string[]): boolean =>
    linkCount === Infinity || meshLinks(peer, [self, ...view], linkCount).includes(self)

  /**
   * Dials our links that are not connected. While fewer than the wanted number are up or
   * on their way (a dial failed, a peer is blocked), the next peers along the ring fill
   * in, so a stale entry in the view never leaves a node alone.
   */
  const maintain = (): void => {
    if (signal === undefined || signal.aborted) return
    const s = signal
    const view = meshView()
    const links = linkCount === Infinity ? view : meshLinks(self, view, linkCount)
    const t0 = now()
    for (const p of links) {
      if (p < self && !isConnected(p) && linksTo(p, view)) {
        // The lower id of a mutual link dials it; we dial only if it has not within the yield.
        const since = yielded.get(p)
        if (since === undefined) {
          yielded.set(p, t0)
          clock.sleep(MUTUAL_DIAL_YIELD_MS, s).then(schedule, () => {})
        }
        if (since === undefined || t0 - since < MUTUAL_DIAL_YIELD_MS) continue
      }
      dialPeer(p, addressesOf(p))
    }
    const want = Math.min(linkCount, view.length)
    let have = new Set([...admitted, ...dialing, ...backlog.keys()]).size
    if (have >= want) return
    const t = now()
    for (const p of ringSuccessors(self, view, view.length)) {
      if (have >= want) break
      if (links.includes(p) || yielded.has(p) || dialing.has(p) || backlog.has(p) || isConnected(p) || holdingOff(p, t)) continue
      dialPeer(p, addressesOf(p))
      have++
    }
  }

  /**
   * Closes connections we opened that are no longer among our links (the view moved while
   * the site booted, or the DHT dialled a peer for a lookup), oldest first, once we hold
   * more than twice our link count. Connections others opened are theirs to close, so two
   * nodes never fight over one. A connection gets `MESH_PRUNE_GRACE_INTERVALS` redial
   * intervals first, so a lookup in flight is not cut.
   */
  const prune = (): void => {
    if (signal === undefined || signal.aborted || linkCount === Infinity) return
    const max = 2 * linkCount
    if (admitted.size <= max) return
    const links = new Set(meshLinks(self, meshView(), linkCount))
    const t = now()
    const spare = network.outbound()
      .filter((l) => !links.has(l.peer) && t - l.openedAt >= MESH_PRUNE_GRACE_INTERVALS * timing.redialIntervalMs)
      .sort((a, b) => a.openedAt - b.openedAt)
    let over = admitted.size - max
    for (const l of spare) {
      if (over <= 0) break
      // Only when this is our last connection to the peer does the degree drop.
      if (network.openConnections(l.peer) > 1) continue
      over--
      stats.pruned++
      log.debug('closing a connection outside our links', { peer: l.peer })
      l.close()
    }
  }

  return {
    start (s, loops) {
      signal = s
      loops.spawn('redial', { everyMs: timing.redialIntervalMs, firstDelayMs: timing.redialIntervalMs }, async () => { await redial() })
      // Known peers first (a restart must not wait for discovery), then the bootstrap list.
      for (const p of book.list()) if (p.addresses.length > 0 && p.id !== self) { labels.set(p.id, 'known'); addCandidate(p.id) }
      maintain()
      for (const b of c.bootstrap) dialBootstrap(b)
    },
    found (peer, label) { if (!labels.has(peer)) labels.set(peer, label) },
    discoveredBy: (peer) => labels.get(peer),
    via: (peer, fallback) => labels.get(peer) ?? book.get(peer)?.discoveredBy ?? fallback,
    learn,
    schedule,
    maintain,
    redial,
    admitted (peer) {
      candidates.delete(peer)
      unreachableUntil.delete(peer)
      failures.delete(peer)
      yielded.delete(peer)
    },
    failed (peer, reason) {
      if (reason !== 'bad-proof' && reason !== 'revoked') {
        // Slow or cut off, not refused (a starved box at boot, the other side gave up first): try again soon.
        holdOff(peer)
      } else {
        // Not a token holder, or removed from the site: forget it and leave it alone for a while.
        blockedUntil.set(peer, now() + ADMISSION_BACKOFF_INTERVALS * timing.redialIntervalMs)
        book.remove(peer)
      }
    },
    holdingOff,
    candidates: () => [...candidates.keys()],
    pending: () => {
      const t = now()
      return [...candidates.keys()].filter((p) => !holdingOff(p, t))
    },
    stats: () => ({ ...stats })
  }

  async function redial (): Promise<void> {
    for (const b of c.bootstrap) dialBootstrap(b)
    maintain()
    prune()
    await book.save()
  }
}

/** Runs `fn` with a signal that aborts after `ms` on `clock` (naming `what`) or with `parent`. */
async function withTimeout<T> (clock: Clock, ms: number, what: string, parent: AbortSignal, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const d = deadline(clock, ms, what, parent)
  try {
    return await fn(d.signal)
  } finally {
    d.cancel()
  }
}
