import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { P2PConfig } from '../config/types.ts'
import type { DerivedKeys, NetworkToken } from '../token/index.ts'
import type { Clock } from '../util/clock.ts'
import type { RandomSource } from '../util/random.ts'
import type { Logger } from '../util/log.ts'
import { errorMessage, KairosError } from '../util/errors.ts'
import type { StateLimits } from './state/index.ts'
import type { ClusterState, Member } from './types.ts'
import type { Libp2pOverrides } from './stack.ts'
import { P2PAddressError, type AdmissionFailure } from './errors.ts'
import type { GossipHooks } from './gossip.ts'
import type { PeerAdvert } from './sync.ts'

/** The p2p node's public contract: its options, its status and the node itself (see node.ts). */

/** Test hooks. Never set in production. */
export interface P2PNodeHooks extends GossipHooks {
  /** While it returns true the node sends no heartbeats and no rumours, dials no one and runs no admission, like a hung process whose connections stay up. */
  freeze?: () => boolean
  /** Rewrites the membership rows we send `to` in a peer exchange (tests: a member that lies about others, or sends bad numbers). */
  tamperAdverts?: (to: string, adverts: PeerAdvert[]) => PeerAdvert[]
}

/** Options of `createP2PNode`. */
export interface P2PNodeInit {
  /** The validated `p2p` section: listen addresses, bootstrap peers, mDNS, DHT, timing. */
  p2p: P2PConfig
  /** The parsed network token; every key and protocol id is derived from it with `p2p.networkId`. */
  token: NetworkToken
  /**
   * A token rotation's previous generation: its token, honoured until `until` (ms since
   * the Unix epoch) on connections (pnet), admission, state and mDNS, beside `token`
   * (docs/decisions.md, LIFE-5). @default none
   */
  previousToken?: { token: NetworkToken, until: number }
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
  /** How often the state's garbage collection runs besides member joins and leaves, ms. @default DEFAULT_COLLECT_INTERVAL_MS (60000) */
  collectIntervalMs?: number
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
  /** Dials that succeeded and failed, connections we closed because they were outside our links, and discovered peers dropped because the candidate list was full. */
  dials: { ok: number, failed: number, pruned: number, candidatesDropped: number }
  /** Connections opened and closed since start, those opened while another to the same peer was open (see connections.ts), and token proofs passed. */
  connections: { opened: number, closed: number, doubles: number, admissions: number }
  /** DHT rendezvous rounds run and other providers of our rendezvous keys found, since start. */
  rendezvous: { rounds: number, providersFound: number }
  /** Times the liveness loop woke up over a heartbeat interval late, and the milliseconds lost (credited to every watch timer). */
  stalls: { count: number, ms: number }
  /** The current heartbeat interval, ms: the configured one, or up to `QUIET_HEARTBEAT_FACTOR` times it on a quiet site (see heartbeat.ts). */
  heartbeatMs: number
  /** Refutations we published (suspicions of us that reached us). */
  refutations: number
  /** Rounds of the node's long-running loops that threw and were carried on from (each is logged). */
  loopErrors: number
  /** Identities that no longer count (not in `peers`): removed from the site, or dead longer than `p2p.forget_after`. */
  departed: Array<{ id: string, reason: 'removed' | 'forgotten', liveness: Member['liveness'] | 'unknown', lastSeen: number }>
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
  /**
   * Sets the identities removed from the site (the removals this node applied):
   * each is refused admission, disconnected, left out of `state.members()`, and its
   * state entries are dropped and refused. Replaces the previous set; kept across
   * `stop()`/`start()`. Our own id is ignored.
   */
  revoke(peers: ReadonlySet<string>): void
  /** The identities revoked now (see `revoke`). */
  revoked(): ReadonlySet<string>
  /**
   * Writes again, under the current token's state key, every own entry sealed under an
   * older one, except keys `skip` keeps (after a token rotation). Resolves to how many.
   */
  reseal(skip?: (key: string) => boolean): Promise<number>
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

/** The peer id in a multiaddr's `/p2p/` part. */
export function peerIdOf (ma: Multiaddr): string | undefined {
  return ma.getComponents().find((c) => c.name === 'p2p')?.value
}

