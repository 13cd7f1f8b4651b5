import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { Libp2p } from 'libp2p'
import { TopicValidatorResult, type GossipsubMessage } from '@libp2p/gossipsub'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import type { Connection, PeerDiscovery, PeerId, PeerInfo, PrivateKey, Stream } from '@libp2p/interface'
import { CODE_P2P, multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { createMdnsDiscovery, type MdnsDiscovery } from './mdns.ts'
import { CID } from 'multiformats/cid'
import { create as createDigest } from 'multiformats/hashes/digest'
import type { P2PConfig } from '../config/types.ts'
import { deriveKeys, type DerivedKeys, type NetworkToken } from '../token/index.ts'
import { systemClock, type Clock } from '../util/clock.ts'
import { cryptoRandom, type RandomSource } from '../util/random.ts'
import { silentLogger, type Logger } from '../util/log.ts'
import { errorMessage, InputError, KairosError } from '../util/errors.ts'
import { alarmingRejections, createStateStore, REJECT_REASONS, type ApplyResult, type RejectReason, type StateLimits, type StateStore } from './state/index.ts'
import type { ClusterState, ClusterStateEvents, JsonValue, Member, StateEntry } from './types.ts'
import { createLibp2pStack, isLoopback, type Libp2pOverrides, type StackServices as Services } from './stack.ts'
import { ADMIT_PROTOCOL_SUFFIX, admitAsInitiator, admitAsResponder } from './admission.ts'
import { AdmissionError, NodeNotStartedError, P2PAddressError, type AdmissionFailure } from './errors.ts'
import { DEFAULT_MAX_FRAME_BYTES, FrameReader } from './framing.ts'
import { HEARTBEAT_LAST, HEARTBEAT_PROTOCOL_SUFFIX, decodeHeartbeat, digestHash, encodeHeartbeat, nextBeatInterval, ringSuccessors } from './heartbeat.ts'
import { loadOrCreateIdentity } from './identity.ts'
import { createMembership, decodeRumour, encodeRumour, type Membership, type MembershipTransition, type Rumour } from './membership.ts'
import { loadPeerBook, type PeerBook } from './peer-book.ts'
import { deadline, DeadlineError, sendFrames, withStream } from './stream-io.ts'
import { DEFAULT_MESH_LINKS, meshLinks } from './mesh.ts'
import { SYNC_PROTOCOL_SUFFIX, syncAsInitiator, syncAsResponder, type PeerAdvert, type SyncSide } from './sync.ts'

/** How long a peer has to complete the token proof after a connection opens, ms (a starved box at boot needs seconds). @default 10000 */
export const DEFAULT_ADMISSION_TIMEOUT_MS = 10_000
/** Bound on one dial attempt, ms. @default 5000 */
export const DEFAULT_DIAL_TIMEOUT_MS = 5_000
/** Bound on one anti-entropy exchange, ms. @default 10000 */
export const DEFAULT_SYNC_TIMEOUT_MS = 10_000
/** Most dials in flight at once from the redial and discovery paths. @default 8 */
export const DEFAULT_MAX_PARALLEL_DIALS = 8

/** A peer that failed admission is not dialled again for this many redial intervals. */
const ADMISSION_BACKOFF_INTERVALS = 10

/**
 * Once a node has admitted peers, peer exchange finds the rest of the site and a
 * DHT round (tens of KB per node at N=10) is only a safety net: lookups back off
 * while nothing new turns up, up to half an epoch between rounds.
 */
const rendezvousMaxBackoff = (epochMs: number, intervalMs: number): number => Math.max(1, Math.floor(epochMs / 2 / intervalMs))
/** A lookup stops after this many provider answers that brought nothing new (records for one key sit on the same closest nodes). */
const RENDEZVOUS_QUIET_ANSWERS = 2

/**
 * Ring successors each node heartbeats, so each node has this many watchers.
 * Each heartbeat costs a data frame, a yamux window update and a TCP ACK
 * (about 230 bytes on the wire), so this is the main term of idle traffic:
 * at N=10 on `lan` timing one watcher costs ~460 B/s per node on the wire, two
 * ~920. With one watcher, a node that dies together with its watcher is caught
 * one detection later: when the watcher is declared dead the ring closes and the
 * next node starts expecting its heartbeats.
 * @default 1
 */
export const DEFAULT_HEARTBEAT_FANOUT = 1

/**
 * A node whose member view has not changed for this many `deadAfterMs` counts its site
 * as quiet (15 s on `lan` timing) and heartbeats more slowly (see `nextBeatInterval`):
 * roles never move once a site has formed, so a quiet site needs no 3-second failure
 * detection, and the 500 ms heartbeat was half of an idle agent's CPU. Any membership
 * change (a join, a suspicion, a death) brings the configured interval back at the next beat.
 */
export const QUIET_AFTER_DEAD_PERIODS = 5

/**
 * Without a differing digest, anti-entropy runs with a random peer every this many
 * intervals, and at most once per `AE_SAFETY_MIN_MS`. Heartbeats carry each node's digest
 * hash to its ring successor, so a difference anywhere on a settled ring shows up on
 * some watcher; the safety round only covers what that misses, and once a minute does.
 * With the lab's 1 s interval it ran every 12 s: a tenth of an idle agent's CPU at N=30.
 */
const AE_SAFETY_ROUNDS = 12
const AE_SAFETY_MIN_MS = 60_000
/** Longest wait between two exchanges that tell a member of a rumour about it (see `tellDisputed`). */
const DISPUTE_MAX_WAIT_MS = 60_000
/** How long a catch-up sync waits for more puts whose gossip reached nobody, ms. */
const CATCH_UP_DELAY_MS = 20
/** How long stop() waits for its leave notice to go out, ms. */
const LEAVE_NOTICE_MS = 250
/** Redial intervals a connection outside our links is kept before it may be pruned. */
const MESH_PRUNE_GRACE_INTERVALS = 2
/**
 * How long a node waits for a lower-id peer that links to it as well to dial first.
 * Two nodes that find each other at once (mDNS answers reach both) and both dial get
 * two connections: twice the handshakes, streams and heartbeats, and gossipsub picks
 * its stream on one of them. A peer that has not dialled within this time gets our dial
 * after all. On an idle LAN a dial completes well within it; while ten agents boot on
 * two cores a connection takes 0.3–1 s and many pairs still end up with two (a 1 s wait
 * did not prevent them and slowed formation).
 */
export const MUTUAL_DIAL_YIELD_MS = 250
/** Time a queued leave notice gets to reach the wire before the node closes its connections, ms. */
const LEAVE_FLUSH_MS = 100

/** Which way a gossip delta travels, for the test hook. */
export interface GossipHookEvent {
  direction: 'in' | 'out'
  /** The neighbour it came from (`in`) ; undefined for `out`. */
  peer?: string
  /** The wire entry. */
  data: Uint8Array
}

/** Test hooks. Never set in production. */
export interface P2PNodeHooks {
  /** Return true to drop an outgoing or incoming gossip delta (anti-entropy must repair it). */
  dropGossip?: (event: GossipHookEvent) => boolean
  /** Replaces the bytes of an outgoing gossip delta (tests: forged, replayed or tampered entries). */
  tamperGossip?: (event: GossipHookEvent) => Uint8Array
  /** While it returns true the node sends no heartbeats and no rumours, like a hung process whose connections stay up. */
  freeze?: () => boolean
  /** Return true to drop a membership rumour that came by gossip (a starved box that missed it). */
  dropRumour?: (rumour: Rumour) => boolean
}

/** Options of `createP2PNode`. */
export interface P2PNodeInit {
  /** The validated `p2p` section: listen addresses, bootstrap peers, mDNS, DHT, timing. */
  p2p: P2PConfig
  /** The parsed network token; every key and protocol id is derived from it with `p2p.networkId`. */
  token: NetworkToken
  /** Where the identity, known peers and the state file live. @default p2p.stateDir */
  stateDir?: string
  /** @default systemClock */
  clock?: Clock
  /** Nonces and peer choice. @default cryptoRandom */
  random?: RandomSource
  /** @default silentLogger */
  logger?: Logger
  /** Replaces parts of the libp2p configuration (tests). */
  libp2pOverrides?: Libp2pOverrides
  /** Replaces derived keys (tests, e.g. the right pnet key with a wrong admission key). */
  keyOverrides?: Partial<DerivedKeys>
  /** Test hooks. */
  hooks?: P2PNodeHooks
  /** @default DEFAULT_ADMISSION_TIMEOUT_MS */
  admissionTimeoutMs?: number
  /** @default DEFAULT_DIAL_TIMEOUT_MS */
  dialTimeoutMs?: number
  /** @default DEFAULT_SYNC_TIMEOUT_MS */
  syncTimeoutMs?: number
  /** Bound on any frame of our protocols, bytes. @default DEFAULT_MAX_FRAME_BYTES (1 MiB) */
  maxFrameBytes?: number
  /** Bounds of the replicated state. @default the store's defaults */
  stateLimits?: StateLimits
  /** Exchange admitted-peer lists during anti-entropy (off only to test DHT discovery alone). @default true */
  peerExchange?: boolean
  /** Watchers per node (ring successors each node heartbeats); 1 halves heartbeat traffic, 3 survives two watchers failing together. @default DEFAULT_HEARTBEAT_FANOUT (1) */
  heartbeatFanout?: number
  /** Links each node dials (see mesh.ts); Infinity dials every peer it learns of. @default DEFAULT_MESH_LINKS (4) */
  meshLinks?: number
}

/** One peer as `status()` reports it. */
export interface PeerStatus {
  id: string
  addresses: string[]
  liveness: Member['liveness'] | 'unknown'
  /** Wall-clock ms of the last sign of life, 0 if never. */
  lastSeen: number
  discoveredBy: string
  /** An open libp2p connection exists. */
  connected: boolean
  /** Open libp2p connections to the peer: more than one when both sides dialled at once. */
  connections: number
  /** The peer passed the token proof on a current connection. */
  admitted: boolean
}

/** A snapshot of the node for `kairos-p2p status` and metrics. */
export interface P2PStatus {
  peerId: string
  /** Public token fingerprint. */
  fingerprint: string
  networkId: string
  /** Our listen multiaddrs (with `/p2p/<id>`). */
  addresses: string[]
  peers: PeerStatus[]
  state: { entries: number, bytes: number }
  /** Refused state entries by the store's reasons, plus `malformed-frame` and `gossip-not-admitted` for protocol errors. */
  rejections: Record<string, number>
  /** Total admission failures. */
  admissionFailures: number
  /** Admission failures by reason. */
  admissionFailuresByReason: Record<AdmissionFailure, number>
  /** Anti-entropy exchanges completed and failed since start. */
  syncs: { ok: number, failed: number }
  /** Dials that succeeded and failed, and connections we closed because they were outside our links. */
  dials: { ok: number, failed: number, pruned: number }
  /** DHT rendezvous rounds run and other providers of our rendezvous keys found, since start. */
  rendezvous: { rounds: number, providersFound: number }
  /** Times the liveness loop woke up over a heartbeat interval late, and the milliseconds lost (credited to every watch timer). */
  stalls: { count: number, ms: number }
  /** The current heartbeat interval, ms: the configured one, or up to `QUIET_HEARTBEAT_FACTOR` times it on a quiet site (see heartbeat.ts). */
  heartbeatMs: number
  /** Refutations we published (suspicions of us that reached us). */
  refutations: number
}

/** A running (or startable) p2p node: discovery, admission, replicated state, membership. */
export interface P2PNode {
  /** Our peer id (available after `start()`; `''` before). */
  readonly peerId: string
  /** The replicated state and membership view (usable after `start()`). */
  readonly state: ClusterState
  /** Loads identity and state, starts libp2p, discovery and the sync loops. Idempotent. */
  start(): Promise<void>
  /** Stops every loop and libp2p, flushes state and the known-peer list. Idempotent and prompt. */
  stop(): Promise<void>
  /** Our listen multiaddrs with `/p2p/<id>`. */
  addresses(): string[]
  status(): P2PStatus
  /** Dials a multiaddr (with or without `/p2p/<id>`); resolves once connected. */
  dial(addr: string, options?: { signal?: AbortSignal }): Promise<void>
}

/** A dial that failed. */
export class DialError extends KairosError {
  constructor (target: string, options: { cause?: unknown } = {}) {
    super(`dial ${target} failed: ${errorMessage(options.cause)}`, options)
    this.name = 'DialError'
  }
}

/** Parses a multiaddr from config or a caller, naming where it came from when it does not parse. */
export function parseAddress (addr: string, where: string, needPeerId: boolean): Multiaddr {
  let ma: Multiaddr
  try {
    ma = multiaddr(addr)
  } catch (err) {
    throw new P2PAddressError(`${where}: '${addr}' is not a multiaddr (expected e.g. /ip4/10.0.0.2/tcp/4001/p2p/12D3Koo…)`, { cause: err })
  }
  if (needPeerId && ma.getComponents().find((c) => c.name === 'p2p') === undefined) {
    throw new P2PAddressError(`${where}: '${addr}' has no /p2p/<peer id> part (expected e.g. /ip4/10.0.0.2/tcp/4001/p2p/12D3Koo…)`)
  }
  return ma
}

function peerIdOf (ma: Multiaddr): string | undefined {
  return ma.getComponents().find((c) => c.name === 'p2p')?.value
}

function isPeerId (id: string): boolean {
  try {
    peerIdFromString(id)
    return true
  } catch {
    return false
  }
}

/** The rendezvous record key as a CID (raw codec, sha2-256 multihash around the derived 32 bytes). */
export function rendezvousCid (key: Uint8Array): CID {
  return CID.createV1(0x55, createDigest(0x12, key))
}

/**
 * Creates a p2p node. Nothing touches the network or the disk until `start()`.
 */
export async function createP2PNode (init: P2PNodeInit): Promise<P2PNode> {
  const p2p = init.p2p
  const timing = p2p.timing
  const clock = init.clock ?? systemClock
  const random = init.random ?? cryptoRandom
  const log = (init.logger ?? silentLogger).child('p2p')
  const stateDir = init.stateDir ?? p2p.stateDir
  const keys: DerivedKeys = { ...deriveKeys(init.token, p2p.networkId), ...init.keyOverrides }
  const admissionTimeoutMs = init.admissionTimeoutMs ?? DEFAULT_ADMISSION_TIMEOUT_MS
  const dialTimeoutMs = init.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS
  const syncTimeoutMs = init.syncTimeoutMs ?? DEFAULT_SYNC_TIMEOUT_MS
  const maxFrameBytes = init.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES
  const heartbeatFanout = init.heartbeatFanout ?? DEFAULT_HEARTBEAT_FANOUT
  if (!Number.isInteger(heartbeatFanout) || heartbeatFanout < 1) throw new InputError(`createP2PNode: heartbeatFanout must be a positive integer, got ${heartbeatFanout}`)
  const linkCount = init.meshLinks ?? DEFAULT_MESH_LINKS
  if (linkCount !== Infinity && (!Number.isInteger(linkCount) || linkCount < 1)) throw new InputError(`createP2PNode: meshLinks must be a positive integer or Infinity, got ${linkCount}`)
  const admitProtocol = keys.syncProtocol + ADMIT_PROTOCOL_SUFFIX
  const syncProtocol = keys.syncProtocol + SYNC_PROTOCOL_SUFFIX
  const heartbeatProtocol = keys.syncProtocol + HEARTBEAT_PROTOCOL_SUFFIX
  const topic = keys.gossipTopic
  const membersTopic = `${keys.syncProtocol}/members/1.0.0`

  // Validate addresses up front: a typo in the config is an input error, not a silent no-op.
  const listen = p2p.listen.map((a, i) => parseAddress(a, `p2p.listen[${i}]`, false).toString())
  const bootstrap = p2p.bootstrapPeers.map((a, i) => parseAddress(a, `p2p.bootstrap_peers[${i}]`, true))

  const events = new EventTarget()
  let membership: Membership = createMembership({ timing, self: '', incarnation: 0 })
  /** Peers that passed the proof on a connection that is still open. */
  const admitted = new Set<string>()
  /** Peers with an admission exchange in flight. */
  const admitting = new Set<string>()
  /** Callbacks waiting for an admission in flight to end (see `admittedOrSoon`). */
  const admissionWaiters = new Map<string, Array<() => void>>()
  /** Mutual links we left to the lower-id peer to dial, and when we yielded. */
  const yielded = new Map<string, number>()
  /** How each peer was first discovered (before we admitted it). */
  const discoveredBy = new Map<string, string>()
  /** Outbound heartbeat streams. */
  const heartbeatOut = new Map<string, Stream>()
  /**
   * Peers whose replica differs from ours while neither changed over a heartbeat: a
   * real gap for anti-entropy to close. A difference that keeps moving is gossip in
   * flight; syncing it cost two full digests per exchange, about once a second per
   * node while a 30-node site formed, and found nothing gossip would not deliver.
   */
  const differs = new Set<string>()
  /** The digest hashes (theirs, ours) at each watched peer's last heartbeat. */
  const lastHashes = new Map<string, { theirs: number, ours: number }>()
  let ownDigestHash: number | undefined
  /** When anti-entropy last ran a safety round (see AE_SAFETY_ROUNDS); set at start. */
  let lastSafetyAt = 0
  const dialing = new Set<string>()
  /** Peers to dial once a slot frees up. */
  const dialBacklog = new Map<string, string[]>()
  const admissionFailures: Record<AdmissionFailure, number> = { 'bad-proof': 0, timeout: 0, protocol: 0 }
  const protocolErrors = { 'malformed-frame': 0, 'gossip-not-admitted': 0 }
  const syncs = { ok: 0, failed: 0 }
  const dials = { ok: 0, failed: 0 }
  const rendezvousStats = { rounds: 0, providersFound: 0 }
  /** Times our liveness loop woke up later than a heartbeat interval, and the time lost: the box is starved. */
  const stalls = { count: 0, ms: 0 }
  /** Peers that failed admission are not dialled again before this time. */
  const blockedUntil = new Map<string, number>()
  /** Peers discovered (mDNS, DHT, bootstrap, peer exchange, known from before) that are not members yet, and when. */
  const candidates = new Map<string, number>()
  /** Peers whose last dial failed are not dialled again before this time. */
  const unreachableUntil = new Map<string, number>()

  let libp2p: Libp2p<Services> | undefined
  let store: StateStore | undefined
  let peerBook: PeerBook | undefined
  let self = ''
  let running: AbortController | undefined
  let starting: Promise<void> | undefined
  let stopping: Promise<void> | undefined
  const loops: Array<Promise<void>> = []
  let mdnsDiscovery: MdnsDiscovery | undefined
  /** When the last member joined our view (the site is still forming while joins keep coming). */
  let lastJoinAt = -Infinity
  /** Last membership change, and the heartbeat interval now in use (see `QUIET_AFTER_DEAD_PERIODS`). */
  let lastChangeAt = -Infinity
  let beatMs = timing.heartbeatIntervalMs
  /** stop() has sent the leave notice: no heartbeat may contradict it. */
  let leaving = false

  const now = (): number => clock.now()
  const need = (op: string): { node: Libp2p<Services>, store: StateStore, book: PeerBook, signal: AbortSignal } => {
    if (libp2p === undefined || store === undefined || peerBook === undefined || running === undefined) throw new NodeNotStartedError(op)
    return { node: libp2p, store, book: peerBook, signal: running.signal }
  }

  // ---- membership -------------------------------------------------------

  const emitTransitions = (ts: MembershipTransition[]): void => {
    if (ts.length > 0) lastChangeAt = now()
    for (const t of ts) {
      if (t.type === 'join' || t.type === 'leave') scheduleMesh()
      if (t.type === 'join') {
        lastJoinAt = now()
        log.info('member joined', { peer: t.member.peerId })
        events.dispatchEvent(new CustomEvent('member:join', { detail: t.member }))
      } else if (t.type === 'leave') {
        log.info('member left', { peer: t.member.peerId })
        // The connection, if any, stays: a hung member that resumes is heard on it at once.
        events.dispatchEvent(new CustomEvent('member:leave', { detail: t.member }))
        // The ring closed over the dead member: whoever it watched may now be ours to watch
        // (connected to us or not yet: a live one dials its new successor, a dead one is caught).
        for (const m of membership.list()) if (m.peerId !== t.member.peerId) expectFrom(m.peerId)
      } else {
        log.debug(`member ${t.type}`, { peer: t.member.peerId })
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
   * as we held it, and it refutes (see `adverts`). Tried again, backing off, until the
   * refutation is seen or the member is gone.
   */
  const tellDisputed = (peer: string, waitMs = timing.suspectAfterMs): void => {
    if (running === undefined || disputeQueued.has(peer)) return
    disputeQueued.add(peer)
    clock.sleep(waitMs, running.signal).then(async () => {
      if (membership.disputed(peer) === undefined || !admitted.has(peer)) { disputeQueued.delete(peer); return }
      await runSync(peer)
      disputeQueued.delete(peer)
      if (membership.disputed(peer) !== undefined) tellDisputed(peer, Math.min(2 * waitMs, DISPUTE_MAX_WAIT_MS))
    }, () => { disputeQueued.delete(peer) })
  }
  const disputeQueued = new Set<string>()

  /** If, in our view, we are among `peer`'s ring successors, its heartbeats are due to us: watch for them. */
  const expectFrom = (peer: string): void => {
    if (membership.get(peer)?.liveness !== 'alive') return
    const view = membership.list().filter((m) => m.peerId !== peer && m.liveness !== 'dead').map((m) => m.peerId)
    if (ringSuccessors(peer, [self, ...view], heartbeatFanout).includes(self)) membership.expect(peer, now())
  }

  const via = (peer: string, fallback: string): string => discoveredBy.get(peer) ?? peerBook?.get(peer)?.discoveredBy ?? fallback

  /** Spreads a rumour on the membership topic. */
  const spread = async (r: Rumour): Promise<boolean> => {
    if (libp2p === undefined || init.hooks?.freeze?.() === true) return false
    try {
      const { recipients } = await libp2p.services.pubsub.publish(membersTopic, encodeRumour(r, self, now()))
      log.debug('rumour spread', { peer: r.peer, state: r.state, incarnation: r.incarnation, recipients: recipients.length })
      return recipients.length > 0
    } catch (err) {
      log.debug('rumour publish failed', { error: errorMessage(err) })
      return false
    }
  }
  /** Our refutation, kept until it reached at least one peer. */
  let pendingRefute: Rumour | undefined
  const sendRefute = async (): Promise<void> => {
    const r = pendingRefute
    if (r === undefined) return
    if (await spread(r) && pendingRefute === r) pendingRefute = undefined
  }

  const addressesOf = (peer: string): string[] => peerBook?.get(peer)?.addresses ?? []

  // ---- dialling ----------------------------------------------------------

  /** A peer we do not dial before a backoff ends (it failed admission, or its last dial failed). */
  const holdingOff = (peer: string, t: number): boolean => (blockedUntil.get(peer) ?? 0) > t || (unreachableUntil.get(peer) ?? 0) > t

  const isConnected = (peer: string): boolean => libp2p !== undefined && libp2p.getConnections(peerIdFromString(peer)).length > 0

  const dialPeer = (peer: string, addresses: string[]): void => {
    if (libp2p === undefined || running === undefined || peer === self) return
    if (dialing.has(peer) || isConnected(peer)) return
    if (holdingOff(peer, now())) return
    if (dialing.size >= DEFAULT_MAX_PARALLEL_DIALS) { dialBacklog.set(peer, addresses); return }
    dialBacklog.delete(peer)
    const node = libp2p
    const signal = running.signal
    dialing.add(peer)
    log.debug('dialling', { peer })
    void (async () => {
      const d = deadline(clock, dialTimeoutMs, `dial ${peer}`, signal)
      try {
        const id = peerIdFromString(peer)
        const mas = addresses.flatMap((a) => { try { return [multiaddr(a)] } catch { return [] } })
        if (mas.length > 0) await node.peerStore.merge(id, { multiaddrs: mas })
        await node.dial(id, { signal: d.signal })
        dials.ok++
        unreachableUntil.delete(peer)
        // We knew no address (a member named in a rumour): libp2p's peer routing found one in the DHT.
        if (mas.length === 0 && !discoveredBy.has(peer)) discoveredBy.set(peer, 'dht')
      } catch (err) {
        dials.failed++
        log.debug('dial failed', { peer, error: errorMessage(err) })
        if (!signal.aborted) {
          // Left alone until the redial round after next; another peer takes its place among our links now.
          unreachableUntil.set(peer, now() + 2 * timing.redialIntervalMs)
          scheduleMesh()
        }
      } finally {
        d.cancel()
        dialing.delete(peer)
        // Next one waiting for a slot, so a burst of discoveries is dialled now rather than on the redial ticker.
        const next = dialBacklog.entries().next()
        if (!next.done) { dialBacklog.delete(next.value[0]); dialPeer(next.value[0], next.value[1]) }
      }
    })()
  }

  const dialBootstrap = (ma: Multiaddr): void => {
    const peer = peerIdOf(ma)
    if (libp2p === undefined || running === undefined || peer === undefined || peer === self) return
    if (!discoveredBy.has(peer)) discoveredBy.set(peer, 'bootstrap')
    if (dialing.has(peer) || isConnected(peer)) return
    const node = libp2p
    const signal = running.signal
    dialing.add(peer)
    void (async () => {
      const d = deadline(clock, dialTimeoutMs, `dial ${ma.toString()}`, signal)
      try {
        await node.dial(ma, { signal: d.signal })
        dials.ok++
      } catch (err) {
        dials.failed++
        log.debug('bootstrap dial failed', { addr: ma.toString(), error: errorMessage(err) })
      } finally {
        d.cancel()
        dialing.delete(peer)
      }
    })()
  }

  const learnPeer = (peer: string, addresses: string[], via: string): void => {
    if (peer === self || peerBook === undefined) return
    if (!discoveredBy.has(peer)) discoveredBy.set(peer, peerBook.get(peer)?.discoveredBy ?? via)
    peerBook.upsert(peer, { addresses, discoveredBy: discoveredBy.get(peer) ?? via })
    if (membership.get(peer) === undefined && !candidates.has(peer)) {
      candidates.set(peer, now())
      scheduleMesh()
    }
  }

  /** The ring we pick links from: members not known dead, and candidates we may dial. */
  const meshView = (): string[] => {
    const t = now()
    const view: string[] = []
    for (const m of membership.list()) if (m.liveness !== 'dead') view.push(m.peerId)
    for (const p of candidates.keys()) {
      if (membership.get(p) !== undefined) { candidates.delete(p); continue }
      if (!holdingOff(p, t)) view.push(p)
    }
    return view
  }

  /**
   * Dials our links (see mesh.ts) that are not connected. While fewer than the wanted
   * number are up or on their way (a dial failed, a peer is blocked), the next peers
   * along the ring fill in, so a stale entry in the view never leaves a node alone.
   */
  const maintainMesh = (): void => {
    if (libp2p === undefined || running === undefined) return
    const view = meshView()
    const links = linkCount === Infinity ? view : meshLinks(self, view, linkCount)
    const t0 = now()
    for (const p of links) {
      if (p < self && !isConnected(p) && linksTo(p, view)) {
        // The lower id of a mutual link dials it; we dial only if it has not within the yield.
        const since = yielded.get(p)
        if (since === undefined) {
          yielded.set(p, t0)
          clock.sleep(MUTUAL_DIAL_YIELD_MS, running.signal).then(scheduleMesh, () => {})
        }
        if (since === undefined || t0 - since < MUTUAL_DIAL_YIELD_MS) continue
      }
      dialPeer(p, addressesOf(p))
    }
    const want = Math.min(linkCount, view.length)
    let have = new Set([...admitted, ...dialing, ...dialBacklog.keys()]).size
    if (have >= want) return
    const t = now()
    for (const p of ringSuccessors(self, view, view.length)) {
      if (have >= want) break
      if (links.includes(p) || yielded.has(p) || dialing.has(p) || dialBacklog.has(p) || isConnected(p) || holdingOff(p, t)) continue
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
  const pruneMesh = (): void => {
    if (libp2p === undefined || running === undefined || linkCount === Infinity) return
    const max = 2 * linkCount
    if (admitted.size <= max) return
    const links = new Set(meshLinks(self, meshView(), linkCount))
    const t = now()
    const spare = libp2p.getConnections()
      .filter((c) => c.status === 'open' && c.direction === 'outbound' && !links.has(c.remotePeer.toString()) && t - c.timeline.open >= MESH_PRUNE_GRACE_INTERVALS * timing.redialIntervalMs)
      .sort((a, b) => a.timeline.open - b.timeline.open)
    let over = admitted.size - max
    for (const c of spare) {
      if (over <= 0) break
      const peer = c.remotePeer.toString()
      // Only when this is our last connection to the peer does the degree drop.
      if (libp2p.getConnections(c.remotePeer).some((o) => o !== c && o.status === 'open')) continue
      over--
      pruned++
      log.debug('closing a connection outside our links', { peer })
      c.close().catch(() => { c.abort(new Error('pruned')) })
    }
  }
  /** Whether `peer` counts us among its links, as far as our view tells. */
  const linksTo = (peer: string, view: string[]): boolean =>
    linkCount === Infinity || meshLinks(peer, [self, ...view], linkCount).includes(self)
  let pruned = 0
  let meshQueued = false
  /** Runs `maintainMesh` once after the current burst of discoveries and membership changes. */
  const scheduleMesh = (): void => {
    if (meshQueued) return
    meshQueued = true
    queueMicrotask(() => { meshQueued = false; maintainMesh() })
  }

  // ---- admission ---------------------------------------------------------

  const failAdmission = (conn: Connection, reason: AdmissionFailure, err: unknown): void => {
    admissionFailures[reason]++
    const peer = conn.remotePeer.toString()
    if (reason !== 'bad-proof') {
      // Slow or cut off, not refused (a starved box at boot, the other side gave up first): try again soon.
      unreachableUntil.set(peer, now() + 2 * timing.redialIntervalMs)
    } else {
      // Not a token holder: forget it and leave it alone for a while.
      blockedUntil.set(peer, now() + ADMISSION_BACKOFF_INTERVALS * timing.redialIntervalMs)
      peerBook?.remove(peer)
    }
    log.warn('peer failed admission, disconnecting', { peer: conn.remotePeer.toString(), reason, error: errorMessage(err) })
    conn.abort(err instanceof Error ? err : new Error(String(err)))
  }

  const onAdmitted = (peer: string, conn: Connection, initiator: boolean): void => {
    if (running === undefined || peerBook === undefined) return
    const first = !admitted.has(peer)
    admitted.add(peer)
    candidates.delete(peer)
    unreachableUntil.delete(peer)
    const known = peerBook.get(peer)
    const addrs = conn.direction === 'outbound' ? [conn.remoteAddr.toString()] : (known?.addresses ?? [])
    peerBook.upsert(peer, { addresses: addrs, discoveredBy: discoveredBy.get(peer) ?? known?.discoveredBy ?? 'inbound', admittedAt: now() })
    if (!discoveredBy.has(peer)) discoveredBy.set(peer, peerBook.get(peer)?.discoveredBy ?? 'inbound')
    emitTransitions(membership.heard(peer, now(), undefined, { ...(addrs.length > 0 ? { addresses: addrs } : {}), discoveredBy: via(peer, 'inbound') }))
    yielded.delete(peer)
    settleAdmission(peer)
    if (first) {
      log.debug('peer admitted', { peer, initiator })
      expectFrom(peer)
      void openHeartbeat(peer)
      // One exchange per new peer, opened by the lower id whichever side dialled: when both
      // dialled at once, each admits the other first as the answering side of the other's
      // connection, and a rule by direction left the pair with no exchange at all.
      if (self < peer) void runSync(peer, conn)
    }
  }

  const settleAdmission = (peer: string): void => {
    const waiting = admissionWaiters.get(peer)
    if (waiting === undefined) return
    admissionWaiters.delete(peer)
    for (const wake of waiting) wake()
  }

  /**
   * Whether `peer` is admitted, waiting first while our own proof to it is in flight: the
   * answering side admits us before we have read its answer, and may open a stream (a
   * state exchange, heartbeats) that reaches us in that gap.
   */
  const admittedOrSoon = async (peer: string, signal: AbortSignal): Promise<boolean> => {
    if (admitted.has(peer) || !admitting.has(peer) || signal.aborted) return admitted.has(peer)
    await new Promise<void>((resolve) => {
      const done = (): void => { signal.removeEventListener('abort', done); resolve() }
      const list = admissionWaiters.get(peer) ?? []
      list.push(done)
      admissionWaiters.set(peer, list)
      signal.addEventListener('abort', done, { once: true })
    })
    return admitted.has(peer)
  }

  const admitOutbound = async (conn: Connection): Promise<void> => {
    const peer = conn.remotePeer.toString()
    if (running === undefined || admitted.has(peer) || admitting.has(peer)) return
    admitting.add(peer)
    const d = deadline(clock, admissionTimeoutMs, `admission of ${peer}`, running.signal)
    try {
      const stream = await conn.newStream(admitProtocol, { signal: d.signal })
      await withStream(stream, d.signal, async () => { await admitAsInitiator(stream, { key: keys.admissionKey, self, remote: peer, random, signal: d.signal }) })
      onAdmitted(peer, conn, true)
    } catch (err) {
      if (running?.signal.aborted !== false) return
      const reason: AdmissionFailure = d.signal.reason instanceof DeadlineError ? 'timeout' : err instanceof AdmissionError ? err.reason : 'protocol'
      failAdmission(conn, reason, err)
    } finally {
      d.cancel()
      admitting.delete(peer)
      settleAdmission(peer)
    }
  }

  const watchInbound = (conn: Connection): void => {
    if (running === undefined) return
    const peer = conn.remotePeer.toString()
    const signal = running.signal
    // The dialling side runs the proof; if it has not succeeded in time, the connection goes.
    clock.sleep(admissionTimeoutMs, signal).then(() => {
      if (!admitted.has(peer) && conn.status === 'open') failAdmission(conn, 'timeout', new AdmissionError('timeout', `admission: peer ${peer} gave no token proof within ${admissionTimeoutMs} ms`))
    }, () => {})
  }

  const handleAdmit = async (stream: Stream, conn: Connection): Promise<void> => {
    if (running === undefined) { stream.abort(new Error('stopping')); return }
    const peer = conn.remotePeer.toString()
    const d = deadline(clock, admissionTimeoutMs, `admission of ${peer}`, running.signal)
    try {
      await withStream(stream, d.signal, async () => {
        await admitAsResponder(stream, { key: keys.admissionKey, self, remote: peer, random, signal: d.signal, onAccepted: () => { onAdmitted(peer, conn, false) } })
      })
    } catch (err) {
      if (running?.signal.aborted !== false || admitted.has(peer)) return
      const reason: AdmissionFailure = d.signal.reason instanceof DeadlineError ? 'timeout' : err instanceof AdmissionError ? err.reason : 'protocol'
      failAdmission(conn, reason, err)
    } finally {
      d.cancel()
    }
  }

  // ---- heartbeats --------------------------------------------------------

  const openHeartbeat = async (peer: string): Promise<void> => {
    if (libp2p === undefined || running === undefined || heartbeatOut.has(peer) || !admitted.has(peer)) return
    const conn = libp2p.getConnections(peerIdFromString(peer)).find((c) => c.status === 'open')
    if (conn === undefined) return
    const d = deadline(clock, dialTimeoutMs, `heartbeat stream to ${peer}`, running.signal)
    try {
      const stream = await conn.newStream(heartbeatProtocol, { signal: d.signal })
      if (running === undefined || heartbeatOut.has(peer)) { stream.abort(new Error('not needed')); return }
      heartbeatOut.set(peer, stream)
      stream.addEventListener('close', () => { if (heartbeatOut.get(peer) === stream) heartbeatOut.delete(peer) }, { once: true })
    } catch (err) {
      log.debug('heartbeat stream failed', { peer, error: errorMessage(err) })
    } finally {
      d.cancel()
    }
  }

  const currentDigestHash = (): number => {
    ownDigestHash ??= digestHash(store?.digest() ?? new Uint8Array(0))
    return ownDigestHash
  }

  /** Heartbeats our ring successors; tells peers that dropped out of our successor set to stop watching us. */
  const sendHeartbeats = (): void => {
    const signal = running?.signal
    if (signal === undefined || leaving || init.hooks?.freeze?.() === true) return
    const eligible = [...admitted].filter((p) => membership.get(p)?.liveness !== 'dead')
    const targets = new Set(ringSuccessors(self, eligible, heartbeatFanout))
    const frame = (flags: number): Uint8Array => encodeHeartbeat({ flags, incarnation: membership.incarnation(), digestHash: currentDigestHash() })
    for (const [peer, stream] of heartbeatOut) {
      if (targets.has(peer)) continue
      heartbeatOut.delete(peer)
      void sendFrames(stream, [frame(HEARTBEAT_LAST)], signal).then(async () => { await stream.close({ signal }) }).catch(() => { stream.abort(new Error('heartbeat stream closed')) })
    }
    for (const peer of targets) {
      const stream = heartbeatOut.get(peer)
      if (stream === undefined || stream.status !== 'open') { heartbeatOut.delete(peer); void openHeartbeat(peer); continue }
      if (stream.writableNeedsDrain) continue
      void sendFrames(stream, [frame(0)], signal).catch(() => {})
    }
  }

  const handleHeartbeat = async (stream: Stream, conn: Connection): Promise<void> => {
    const peer = conn.remotePeer.toString()
    if (running === undefined || !(await admittedOrSoon(peer, running.signal))) { stream.abort(new Error('not admitted')); return }
    const reader = new FrameReader(stream, 64)
    try {
      for (;;) {
        const body = await reader.next()
        if (body === undefined) break
        const hb = decodeHeartbeat(body)
        if ((hb.flags & HEARTBEAT_LAST) !== 0) {
          membership.unwatch(peer)
          emitTransitions(membership.heard(peer, now(), hb.incarnation))
          continue
        }
        emitTransitions(membership.watch(peer, now(), hb.incarnation))
        const ours = currentDigestHash()
        const last = lastHashes.get(peer)
        if (hb.digestHash === ours) differs.delete(peer)
        else if (last?.theirs === hb.digestHash && last.ours === ours) differs.add(peer)
        lastHashes.set(peer, { theirs: hb.digestHash, ours })
      }
      await stream.close().catch(() => {})
    } catch (err) {
      if (running === undefined || running.signal.aborted || stream.status !== 'open') return
      if (isMalformed(err)) {
        protocolErrors['malformed-frame']++
        log.warn('bad heartbeat stream, resetting it', { peer, error: errorMessage(err) })
      } else {
        // A reset or a read that failed with the connection: the peer's next stream replaces it.
        log.debug('heartbeat stream failed, resetting it', { peer, error: errorMessage(err) })
      }
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    }
  }

  // ---- anti-entropy ------------------------------------------------------

  /** Hash of the peer list last sent to each peer: an unchanged list is not sent again. */
  const sentPeers = new Map<string, string>()

  /** Our membership table for a peer exchange with `to`, liveness and incarnations included (empty when `to` already has this list). */
  const adverts = (to: string): PeerAdvert[] => {
    if (init.peerExchange === false) return []
    const t = now()
    const list: PeerAdvert[] = membership.list().filter((m) => m.peerId !== to).map((m) => ({
      id: m.peerId, addresses: addressesOf(m.peerId), ageMs: Math.max(0, t - m.lastSeen), liveness: m.liveness, incarnation: membership.incarnationOf(m.peerId) ?? 0
    }))
    // Its own row when we hold it down or in dispute: a rumour about itself it missed, to refute.
    const held = membership.get(to)
    const disputed = membership.disputed(to)
    if (held !== undefined && (held.liveness !== 'alive' || disputed !== undefined)) {
      list.push({ id: to, addresses: [], ageMs: 0, liveness: held.liveness === 'alive' ? 'suspect' : held.liveness, incarnation: disputed ?? membership.incarnationOf(to) ?? 0 })
    }
    const fingerprint = list.map((p) => `${p.id}=${p.addresses.join(',')}/${p.liveness ?? ''}@${p.incarnation ?? ''}`).join(' ')
    if (sentPeers.get(to) === fingerprint) return []
    sentPeers.set(to, fingerprint)
    return list
  }

  const syncSide = (peer: string, signal: AbortSignal): SyncSide => ({
    store: need('sync').store,
    remote: peer,
    peers: () => adverts(peer),
    onPeers: (list) => {
      if (init.peerExchange === false) return
      const t = now()
      for (const p of list) {
        if (p.liveness === undefined || p.incarnation === undefined) {
          // An advert without liveness: a peer the sender heard from `ageMs` ago.
          if (p.id === self || !isPeerId(p.id)) continue
          learnPeer(p.id, p.addresses, 'peer-exchange')
          if (p.ageMs < timing.deadAfterMs) emitTransitions(membership.learn(p.id, t, { addresses: p.addresses, discoveredBy: via(p.id, 'peer-exchange') }))
          continue
        }
        // The sender's table row, merged like a rumour (a suspicion of us is refuted).
        if (p.id !== self) {
          if (!isPeerId(p.id)) continue
          if (p.liveness !== 'dead') learnPeer(p.id, p.addresses, 'peer-exchange')
          if (p.liveness === 'alive') emitTransitions(membership.learn(p.id, t, { addresses: p.addresses, discoveredBy: via(p.id, 'peer-exchange') }))
        }
        applyRumour({ peer: p.id, state: p.liveness, incarnation: p.incarnation }, false)
      }
    },
    onApplied: (r: ApplyResult) => { noteApplied(peer, r) },
    maxFrameBytes,
    signal
  })

  const noteApplied = (peer: string, r: ApplyResult): void => {
    const rejected = alarmingRejections(r.rejected)
    if (rejected !== undefined) log.warn('refused state entries', { peer, rejected })
  }

  const runSync = async (peer: string, conn?: Connection, options: { hashFirst?: boolean } = {}): Promise<void> => {
    if (libp2p === undefined || running === undefined) return
    const d = deadline(clock, syncTimeoutMs, `sync with ${peer}`, running.signal)
    try {
      const c = conn ?? libp2p.getConnections(peerIdFromString(peer)).find((x) => x.status === 'open')
      if (c === undefined) return
      const stream = await c.newStream(syncProtocol, { signal: d.signal })
      const r = await withStream(stream, d.signal, async () => await syncAsInitiator(stream, syncSide(peer, d.signal), options.hashFirst === true ? { digestHash: currentDigestHash() } : {}))
      syncs.ok++
      if (r.sent + r.received > 0) log.debug('anti-entropy exchange', { peer, ...r })
    } catch (err) {
      if (running?.signal.aborted !== false) return
      syncs.failed++
      if (isMalformed(err)) protocolErrors['malformed-frame']++
      log.debug('anti-entropy exchange failed', { peer, error: errorMessage(err) })
    } finally {
      d.cancel()
    }
  }

  const handleSync = async (stream: Stream, conn: Connection): Promise<void> => {
    const peer = conn.remotePeer.toString()
    if (running === undefined) { stream.abort(new Error('stopping')); return }
    const d = deadline(clock, syncTimeoutMs, `sync with ${peer}`, running.signal)
    if (!(await admittedOrSoon(peer, d.signal))) { d.cancel(); stream.abort(new Error('not admitted')); return }
    try {
      await withStream(stream, d.signal, async () => await syncAsResponder(stream, syncSide(peer, d.signal), currentDigestHash))
      syncs.ok++
    } catch (err) {
      if (running?.signal.aborted !== false) return
      syncs.failed++
      if (isMalformed(err)) {
        protocolErrors['malformed-frame']++
        log.warn('malformed sync frame, stream reset', { peer, error: errorMessage(err) })
      } else {
        log.debug('anti-entropy exchange cut short', { peer, error: errorMessage(err) })
      }
    } finally {
      d.cancel()
    }
  }

  // ---- gossip ------------------------------------------------------------

  const onGossip = (evt: CustomEvent<GossipsubMessage>): void => {
    const { msg, propagationSource } = evt.detail
    if (store === undefined) return
    const from = propagationSource.toString()
    if (msg.topic === membersTopic) {
      if (!admitted.has(from)) { protocolErrors['gossip-not-admitted']++; return }
      onRumour(msg.data, from)
      return
    }
    if (msg.topic !== topic) return
    if (!admitted.has(from)) { protocolErrors['gossip-not-admitted']++; return }
    if (init.hooks?.dropGossip?.({ direction: 'in', peer: from, data: msg.data }) === true) return
    emitTransitions(membership.heard(from, now()))
    store.apply([msg.data], from).then((r) => { noteApplied(from, r) }, (err: unknown) => { log.error('applying gossip failed', { peer: from, error: errorMessage(err) }) })
  }

  const onRumour = (data: Uint8Array, from: string): void => {
    const r = decodeRumour(data)
    if (r === undefined) { protocolErrors['malformed-frame']++; log.warn('malformed membership rumour', { peer: from }); return }
    if (init.hooks?.dropRumour?.(r) === true) return
    applyRumour(r, true)
  }

  /** Merges a rumour (gossip, or a row of a peer exchange); refutes one about us; relays a raised suspicion when `relay`. */
  const applyRumour = (r: Rumour, relayRaised: boolean): void => {
    const { transitions, refute, relay } = membership.rumour(r, now(), { raise: relayRaised && admitted.has(r.peer) })
    emitTransitions(transitions)
    if (relay !== undefined) void spread(relay)
    // A node that said goodbye does not come back to life by refuting a rumour that was already on its way.
    if (refute !== undefined && !leaving) {
      // Several nodes may pass on the same suspicion: one refutation per incarnation and suspicion period is enough.
      const t = now()
      if (lastRefute !== undefined && lastRefute.incarnation === refute.incarnation && t - lastRefute.at < timing.suspectAfterMs) return
      lastRefute = { incarnation: refute.incarnation, at: t }
      refutations++
      log.info('refuting a rumour about us', { state: r.state, incarnation: refute.incarnation })
      pendingRefute = refute
      void sendRefute()
    }
  }
  let lastRefute: { incarnation: number, at: number } | undefined
  let refutations = 0

  /**
   * Admitted peers a local entry's gossip did not reach get it by a sync at once. That
   * happens right after connections open, before gossipsub has learned who subscribes:
   * a 3-node site elects within a second of its last boot, and its credentials then
   * waited for anti-entropy to notice differing digests (two heartbeats and a tick, 1.5
   * to 2.5 s in the lab). Once gossipsub knows a peer's subscription, a publish goes to
   * every such peer (flood publish), so this stays a boot-time cost. One round per peer
   * serves a burst of puts.
   */
  const catchUpPeers = new Set<string>()
  let catchUpPending = false
  const catchUp = (reached: ReadonlySet<string>): void => {
    if (running === undefined) return
    for (const peer of admitted) if (!reached.has(peer)) catchUpPeers.add(peer)
    if (catchUpPending || catchUpPeers.size === 0) return
    catchUpPending = true
    clock.sleep(CATCH_UP_DELAY_MS, running.signal).then(() => {
      catchUpPending = false
      const peers = [...catchUpPeers].filter((p) => admitted.has(p))
      catchUpPeers.clear()
      for (const peer of peers) void runSync(peer)
    }, () => { catchUpPending = false })
  }
  const NOBODY: ReadonlySet<string> = new Set()

  const publish = (wire: Uint8Array): void => {
    if (libp2p === undefined) return
    // A test's dropped delta reached nobody, as far as this node can tell.
    if (init.hooks?.dropGossip?.({ direction: 'out', data: wire }) === true) { catchUp(NOBODY); return }
    const data = init.hooks?.tamperGossip?.({ direction: 'out', data: wire }) ?? wire
    libp2p.services.pubsub.publish(topic, data).then(({ recipients }) => {
      catchUp(new Set(recipients.map((p) => p.toString())))
    }, (err: unknown) => {
      log.debug('gossip publish failed', { error: errorMessage(err) })
      catchUp(NOBODY)
    })
  }

  // ---- loops -------------------------------------------------------------

  const loop = (name: string, intervalMs: number, body: () => Promise<void> | void): void => {
    const signal = (running as AbortController).signal
    loops.push((async () => {
      while (!signal.aborted) {
        try {
          await clock.sleep(intervalMs, signal)
        } catch {
          return
        }
        try {
          await body()
        } catch (err) {
          if (!signal.aborted) log.warn(`${name} failed`, { error: errorMessage(err) })
        }
      }
    })())
  }

  const livenessLoop = (): void => {
    const signal = (running as AbortController).signal
    loops.push((async () => {
      let nextBeat = now()
      lastChangeAt = nextBeat
      beatMs = timing.heartbeatIntervalMs
      let wakeAt: number | undefined
      while (!signal.aborted) {
        if (wakeAt !== undefined) {
          // Timers run before pending I/O: let the heartbeats that queued up while we slept be read first.
          await new Promise<void>((resolve) => { setImmediate(resolve) })
          if (signal.aborted) return
          const late = now() - wakeAt
          if (late > timing.heartbeatIntervalMs) {
            membership.pause(late)
            stalls.count++
            stalls.ms += late
          }
        }
        const t = now()
        if (t >= nextBeat) {
          sendHeartbeats()
          for (const p of admitted) membership.touch(p, t)
          const quiet = t - lastChangeAt >= QUIET_AFTER_DEAD_PERIODS * timing.deadAfterMs
          beatMs = nextBeatInterval(beatMs, timing.heartbeatIntervalMs, quiet)
          nextBeat = t + beatMs
        }
        const { transitions, publish: rumours } = membership.tick(t)
        emitTransitions(transitions)
        for (const r of rumours) void spread(r)
        if (pendingRefute !== undefined && t >= nextBeat - beatMs) void sendRefute()
        const due = Math.min(nextBeat, membership.nextDeadline(t) ?? nextBeat)
        wakeAt = Math.max(t + 1, due)
        try {
          await clock.sleep(Math.max(1, due - t), signal)
        } catch {
          return
        }
      }
    })())
  }

  const redial = async (): Promise<void> => {
    const { book } = need('redial')
    for (const ma of bootstrap) dialBootstrap(ma)
    maintainMesh()
    pruneMesh()
    await book.save()
  }

  /**
   * One rendezvous round: provide the current epoch's key (when the epoch changed
   * or halfway through it), then look up the current and previous
   * epoch's keys and dial what we find. Returns the number of peers found that
   * we did not know, so the caller can back off while nothing changes.
   */
  let lastProvide: { epoch: number, at: number } | undefined
  const rendezvous = async (): Promise<number> => {
    const { node, signal, book } = need('rendezvous')
    const dht = node.services.dht
    if (dht === undefined || node.getConnections().length === 0) return 0
    const t = now()
    const rk = keys.rendezvousKey(t, timing.rendezvousEpochMs)
    const d = deadline(clock, Math.max(timing.rendezvousIntervalMs, 5_000), 'rendezvous', signal)
    let fresh = 0
    const queryEvents: Record<string, number> = {}
    const startedAt = t
    rendezvousStats.rounds++
    try {
      // Re-provide on each epoch change and halfway through an epoch (a record holder may have restarted).
      if (lastProvide === undefined || lastProvide.epoch !== rk.epoch || t - lastProvide.at >= timing.rendezvousEpochMs / 2) {
        try {
          for await (const ev of dht.provide(rendezvousCid(rk.current), { signal: d.signal })) { queryEvents[`provide:${ev.name}`] = (queryEvents[`provide:${ev.name}`] ?? 0) + 1 }
          lastProvide = { epoch: rk.epoch, at: t }
        } catch (err) {
          log.debug('rendezvous provide failed', { error: errorMessage(err) })
        }
      }
      // The previous epoch's key matters only until every node has re-provided under the new one.
      const sinceEpoch = t - rk.epoch * timing.rendezvousEpochMs
      const lookups = sinceEpoch < timing.rendezvousEpochMs / 2 ? [rk.current, rk.previous] : [rk.current]
      for (const key of lookups) {
        try {
          let quiet = 0
          for await (const ev of dht.findProviders(rendezvousCid(key), { signal: d.signal })) {
            queryEvents[ev.name] = (queryEvents[ev.name] ?? 0) + 1
            if (ev.name !== 'PROVIDER') continue
            let added = 0
            for (const p of ev.providers) {
              const id = p.id.toString()
              if (id === self) continue
              rendezvousStats.providersFound++
              if (book.get(id) === undefined && !admitted.has(id)) { fresh++; added++ }
              learnPeer(id, p.multiaddrs.map((m) => m.toString()), 'dht')
            }
            // Every holder of the key's records answers with the same list: stop once answers repeat what we know.
            if (added === 0 && ++quiet >= RENDEZVOUS_QUIET_ANSWERS) break
          }
        } catch (err) {
          log.debug('rendezvous lookup failed', { error: errorMessage(err) })
        }
      }
    } finally {
      d.cancel()
    }
    log.debug('rendezvous round', { fresh, ms: now() - startedAt, events: queryEvents })
    return fresh
  }

  /** Rendezvous ticker: the configured interval while the view changes or we are alone, backing off (see rendezvousMaxBackoff) while nothing new turns up. */
  const rendezvousLoop = (): void => {
    const signal = (running as AbortController).signal
    loops.push((async () => {
      let factor = 1
      while (!signal.aborted) {
        try {
          await clock.sleep(timing.rendezvousIntervalMs * factor, signal)
        } catch {
          return
        }
        // While members keep joining, the LAN (or a bootstrap peer) is finding the site: a DHT round now
        // would only dial the 20 closest peers of a key in the middle of the boot. It runs once joins pause.
        if (admitted.size > 0 && now() - lastJoinAt < timing.rendezvousIntervalMs) continue
        try {
          const fresh = await rendezvous()
          factor = fresh > 0 || admitted.size === 0 ? 1 : Math.min(factor * 2, rendezvousMaxBackoff(timing.rendezvousEpochMs, timing.rendezvousIntervalMs))
        } catch (err) {
          if (!signal.aborted) log.warn('rendezvous failed', { error: errorMessage(err) })
        }
      }
    })())
  }

  /**
   * Anti-entropy round: with a peer whose heartbeat showed a different digest
   * if there is one; otherwise, once a safety period has passed (see
   * AE_SAFETY_ROUNDS), with any admitted peer (a safety net for replicas that
   * only differ outside our watchers' view).
   */
  const antiEntropy = async (): Promise<void> => {
    const differing = [...differs].filter((p) => admitted.has(p))
    let peers = differing
    if (differing.length === 0) {
      const t = now()
      if (admitted.size === 0 || t - lastSafetyAt < Math.max(AE_SAFETY_ROUNDS * timing.antiEntropyIntervalMs, AE_SAFETY_MIN_MS)) return
      lastSafetyAt = t
      peers = [...admitted]
    }
    const peer = peers[random.int(peers.length)]
    if (peer === undefined) return
    differs.delete(peer)
    // A safety round most likely finds equal replicas: start with the digest's hash alone.
    await runSync(peer, undefined, { hashFirst: differing.length === 0 })
  }

  // ---- lifecycle ---------------------------------------------------------

  /** Labels every peer a discovery module reports, so status can say how a peer was found. */
  const labelled = <C>(label: string, factory: (c: C) => PeerDiscovery): (c: C) => PeerDiscovery => (components: C) => {
    const svc = factory(components)
    svc.addEventListener('peer', (evt: CustomEvent<PeerInfo>) => {
      const id = evt.detail.id.toString()
      if (!discoveredBy.has(id)) discoveredBy.set(id, label)
    })
    return svc
  }

  const doStart = async (): Promise<void> => {
    const controller = new AbortController()
    await mkdir(stateDir, { recursive: true, mode: 0o700 })
    const privateKey: PrivateKey = await loadOrCreateIdentity(stateDir)
    const book = await loadPeerBook(stateDir, log)
    const me = peerIdFromPrivateKey(privateKey).toString()
    const st = await createStateStore({
      privateKey,
      self: me,
      stateKey: keys.stateKey,
      dir: join(stateDir, 'state'),
      ...(init.stateLimits === undefined ? {} : { limits: init.stateLimits }),
      // No owner check: an entry that decrypts under the token's state key and carries its
      // owner's signature comes from a token holder, and with a partial mesh an owner's
      // entries often arrive (relayed) before any news of the owner. Quotas still bound it.
      clock,
      logger: log
    })
    const report = st.loadReport()
    if (report.corrupt) log.warn('state file was corrupt; starting empty and rebuilding from peers', { file: report.file, movedTo: report.movedTo, problem: report.problem })

    const discovery = init.libp2pOverrides?.peerDiscovery ?? []
    let node: Libp2p<Services>
    try {
      node = await createLibp2pStack({
        privateKey,
        listen,
        keys,
        dht: !p2p.disableDht,
        maxFrameBytes,
        peerDiscovery: discovery.map((f, i) => labelled(init.libp2pOverrides?.peerDiscovery === undefined ? 'mdns' : `discovery-${i}`, f)),
        overrides: init.libp2pOverrides ?? {}
      })
    } catch (err) {
      await st.close()
      throw err
    }

    self = me
    // No staleness rule: most members are never heard first-hand here, and a member's end
    // comes from its watcher's rumour, repaired by the membership rows of every peer exchange.
    membership = createMembership({ timing, self: me, incarnation: now(), staleAfterMs: Infinity })
    // Tell the site we are here, once any peer hears it (retried like a refutation).
    pendingRefute = { peer: me, state: 'alive', incarnation: membership.incarnation() }
    libp2p = node
    store = st
    peerBook = book
    running = controller
    leaving = false

    node.addEventListener('connection:open', (evt) => {
      const conn = evt.detail
      if (conn.direction === 'outbound') void admitOutbound(conn)
      else watchInbound(conn)
    })
    node.addEventListener('peer:disconnect', (evt) => {
      const peer = evt.detail.toString()
      admitted.delete(peer)
      heartbeatOut.delete(peer)
      differs.delete(peer)
      lastHashes.delete(peer)
      sentPeers.delete(peer)
      // A peer we watch whose last connection closed is suspect now, not after a silent interval: it is dead
      // after the suspicion time unless it refutes. Any other peer is only one link less (most members are
      // not connected to us at all); its own watcher decides.
      if (running !== undefined && membership.get(peer)?.liveness === 'alive' && membership.watching().includes(peer)) {
        const r: Rumour = { peer, state: 'suspect', incarnation: membership.incarnationOf(peer) ?? 0 }
        membership.unwatch(peer)
        emitTransitions(membership.rumour(r, now()).transitions)
        void spread(r)
      }
      scheduleMesh()
    })
    node.addEventListener('peer:discovery', (evt) => {
      const id = evt.detail.id.toString()
      if (!discoveredBy.has(id)) discoveredBy.set(id, 'dht')
      learnPeer(id, evt.detail.multiaddrs.map((m) => m.toString()), discoveredBy.get(id) ?? 'dht')
    })
    node.addEventListener('peer:identify', (evt) => {
      const peer = evt.detail.peerId.toString()
      const addrs = evt.detail.listenAddrs.filter((a) => !isLoopback(a) || listen.every((l) => isLoopback(multiaddr(l)))).map((a) => a.toString())
      if (addrs.length > 0 && (admitted.has(peer) || book.get(peer) !== undefined)) book.upsert(peer, { addresses: addrs })
    })
    st.addEventListener('change', (evt) => {
      ownDigestHash = undefined
      events.dispatchEvent(new CustomEvent('change', { detail: evt.detail }))
    })

    try {
      await node.handle(admitProtocol, handleAdmit, { maxInboundStreams: 4, maxOutboundStreams: 4 })
      await node.handle(syncProtocol, handleSync, { maxInboundStreams: 4, maxOutboundStreams: 4 })
      await node.handle(heartbeatProtocol, handleHeartbeat, { maxInboundStreams: 2, maxOutboundStreams: 2 })
      await node.start()
      node.services.pubsub.topicValidators.set(topic, (peer: PeerId) => admitted.has(peer.toString()) ? TopicValidatorResult.Accept : TopicValidatorResult.Reject)
      node.services.pubsub.addEventListener('gossipsub:message', onGossip)
      node.services.pubsub.topicValidators.set(membersTopic, (peer: PeerId) => admitted.has(peer.toString()) ? TopicValidatorResult.Accept : TopicValidatorResult.Reject)
      node.services.pubsub.subscribe(topic)
      node.services.pubsub.subscribe(membersTopic)
    } catch (err) {
      controller.abort()
      await Promise.resolve(node.stop()).catch(() => {})
      await st.close().catch(() => {})
      libp2p = undefined
      store = undefined
      running = undefined
      throw err
    }

    if (p2p.mdns && init.libp2pOverrides?.peerDiscovery === undefined) {
      const lan = createMdnsDiscovery({
        serviceTag: keys.mdnsServiceName,
        peerId: me,
        // The announced addresses (loopback only when that is all there is, as in tests on one host).
        addresses: () => node.getMultiaddrs().map((a) => a.decapsulateCode(CODE_P2P).toString()),
        intervalMs: timing.mdnsIntervalMs,
        onPeer: (peer, addresses) => { learnPeer(peer, addresses, 'mdns') },
        clock,
        random,
        logger: log.child('mdns')
      })
      await lan.start()
      mdnsDiscovery = lan
    }
    livenessLoop()
    lastSafetyAt = now()
    loop('anti-entropy', timing.antiEntropyIntervalMs, antiEntropy)
    loop('redial', timing.redialIntervalMs, redial)
    // Rendezvous rounds look for peers beyond the LAN, and a DHT only reaches there through
    // a bootstrap peer. Without one, the routing table holds LAN peers that mDNS and peer
    // exchange already give us (also those other segments' nodes bootstrapped through us),
    // and each round dialled about 20 of them: at 30 nodes, formation varied from 32 to
    // 76 s with the rounds on, and took 32–37 s with them off.
    if (!p2p.disableDht && bootstrap.length > 0) rendezvousLoop()
    else if (!p2p.disableDht) log.debug('no DHT rendezvous rounds: no bootstrap peer, so mDNS and peer exchange find every peer the DHT could')
    // Known peers first (a restart must not wait for discovery), then the bootstrap list.
    for (const p of book.list()) if (p.addresses.length > 0 && p.id !== self) { discoveredBy.set(p.id, 'known'); candidates.set(p.id, now()) }
    maintainMesh()
    for (const ma of bootstrap) dialBootstrap(ma)
    log.info('p2p node started', { peerId: self, addresses: node.getMultiaddrs().map(String), fingerprint: keys.fingerprint })
  }

  const doStop = async (): Promise<void> => {
    if (starting !== undefined) await starting.catch(() => {})
    const controller = running
    const node = libp2p
    const st = store
    const book = peerBook
    if (controller === undefined || node === undefined || st === undefined || book === undefined) return
    // Say goodbye: peers mark us dead at once instead of after a silent interval.
    const bye = deadline(clock, LEAVE_NOTICE_MS, 'leave notice', new AbortController().signal)
    leaving = true
    pendingRefute = undefined
    // publish() returns once the notice is queued: give it a moment to leave before the connections close.
    const notice = async (): Promise<void> => { if (await spread({ peer: self, state: 'dead', incarnation: membership.incarnation() })) await clock.sleep(LEAVE_FLUSH_MS, bye.signal).catch(() => {}) }
    await Promise.race([notice(), new Promise<void>((resolve) => { bye.signal.addEventListener('abort', () => { resolve() }, { once: true }) })])
    bye.cancel()
    controller.abort()
    running = undefined
    await mdnsDiscovery?.stop().catch((err: unknown) => { log.warn('stopping mDNS failed', { error: errorMessage(err) }) })
    mdnsDiscovery = undefined
    for (const s of heartbeatOut.values()) s.abort(new Error('stopping'))
    heartbeatOut.clear()
    await Promise.allSettled(loops.splice(0))
    node.services.pubsub.removeEventListener('gossipsub:message', onGossip)
    await Promise.resolve(node.stop()).catch((err: unknown) => { log.warn('libp2p stop failed', { error: errorMessage(err) }) })
    admitted.clear()
    await book.save().catch((err: unknown) => { log.warn('saving known peers failed', { error: errorMessage(err) }) })
    await st.close()
    libp2p = undefined
    store = undefined
    peerBook = undefined
    log.info('p2p node stopped', { peerId: self })
  }

  const state: ClusterState = {
    get self () { return self },
    get: (owner: string, key: string): StateEntry | undefined => store?.get(owner, key),
    list: (prefix?: string): StateEntry[] => store?.list(prefix) ?? [],
    put: async (key: string, value: JsonValue): Promise<StateEntry> => {
      const { store: st } = need('put')
      const { entry, wire } = await st.put(key, value)
      publish(wire)
      return entry
    },
    members: (): Member[] => membership.list(),
    addEventListener: <K extends keyof ClusterStateEvents>(type: K, listener: (evt: ClusterStateEvents[K]) => void): void => {
      events.addEventListener(type, listener as EventListener)
    },
    removeEventListener: <K extends keyof ClusterStateEvents>(type: K, listener: (evt: ClusterStateEvents[K]) => void): void => {
      events.removeEventListener(type, listener as EventListener)
    }
  }

  return {
    get peerId () { return self },
    state,
    start: async () => {
      if (running !== undefined) return
      if (stopping !== undefined) await stopping
      starting ??= doStart().finally(() => { starting = undefined })
      await starting
    },
    stop: async () => {
      stopping ??= doStop().finally(() => { stopping = undefined })
      await stopping
    },
    addresses: () => libp2p?.getMultiaddrs().map((m) => m.toString()) ?? [],
    status: (): P2PStatus => {
      const rejections: Record<string, number> = {}
      const storeRejections = store?.rejections()
      for (const r of REJECT_REASONS) rejections[r] = storeRejections?.[r as RejectReason] ?? 0
      Object.assign(rejections, protocolErrors)
      const members = new Map(membership.list().map((m) => [m.peerId, m]))
      const ids = new Set<string>([...members.keys(), ...admitted])
      const peers: PeerStatus[] = [...ids].sort().map((id) => {
        const m = members.get(id)
        return {
          id,
          addresses: m?.addresses.length === 0 || m === undefined ? addressesOf(id) : m.addresses,
          liveness: m?.liveness ?? 'unknown',
          lastSeen: m?.lastSeen ?? 0,
          discoveredBy: discoveredBy.get(id) ?? m?.discoveredBy ?? 'inbound',
          connected: isConnected(id),
          connections: libp2p?.getConnections(peerIdFromString(id)).filter((c) => c.status === 'open').length ?? 0,
          admitted: admitted.has(id)
        }
      })
      return {
        peerId: self,
        fingerprint: keys.fingerprint,
        networkId: keys.networkId,
        addresses: libp2p?.getMultiaddrs().map((m) => m.toString()) ?? [],
        peers,
        state: store?.size() ?? { entries: 0, bytes: 0 },
        rejections,
        admissionFailures: Object.values(admissionFailures).reduce((a, b) => a + b, 0),
        admissionFailuresByReason: { ...admissionFailures },
        syncs: { ...syncs },
        dials: { ...dials, pruned },
        rendezvous: { ...rendezvousStats },
        stalls: { ...stalls },
        heartbeatMs: beatMs,
        refutations
      }
    },
    dial: async (addr: string, options: { signal?: AbortSignal } = {}) => {
      const { node, signal } = need('dial')
      const ma = parseAddress(addr, 'dial', false)
      const peer = peerIdOf(ma)
      if (peer !== undefined && !discoveredBy.has(peer)) discoveredBy.set(peer, 'bootstrap')
      const d = deadline(clock, dialTimeoutMs, `dial ${addr}`, options.signal === undefined ? signal : AbortSignal.any([signal, options.signal]))
      try {
        await node.dial(ma, { signal: d.signal })
      } catch (err) {
        throw new DialError(addr, { cause: err })
      } finally {
        d.cancel()
      }
    }
  }
}

function isMalformed (err: unknown): boolean {
  return err instanceof Error && (err.name === 'MalformedFrameError' || err.name === 'FrameTooLargeError')
}
