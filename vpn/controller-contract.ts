/**
 * The VPN controller's contract: its options and defaults, the events it emits, and
 * what `status()` and a reconcile pass report. The controller itself is in
 * `controller.ts`; how its status is assembled in `controller-status.ts`.
 */
import type { ClusterState, Liveness } from '../p2p/types.ts'
import type { Timing, VpnConfig } from '../config/types.ts'
import type { Clock } from '../util/clock.ts'
import type { Logger } from '../util/log.ts'
import type { AddressClaim } from './address.ts'
import type { InterfaceKind, WireGuardDriver } from './driver.ts'
import type { HostAddress } from './endpoints.ts'
import type { DuplicateKey, IgnoredReason } from './peers.ts'

/** Options of `createVpnController`. */
export interface VpnControllerInit {
  /** `p2p.vpn`. With `create: false` the controller configures and publishes nothing. */
  vpn: VpnConfig
  /** Reconcile ticker and handshake staleness. */
  timing: Pick<Timing, 'vpnReconcileMs' | 'vpnHandshakeStaleMs'>
  /** The replicated state: adverts are read from and published to it. */
  state: ClusterState
  /** The caller's driver; `stop()` leaves it open and the interface up. */
  driver: WireGuardDriver
  /** `p2p.state_dir`: the key (`vpn/wireguard.key`) and the claim (`vpn/claim.json`) live here. */
  stateDir: string
  /** @default systemClock */
  clock?: Clock
  /** @default silentLogger */
  logger?: Logger
  /** The host's addresses, for the advertised endpoints. @default systemHostAddresses */
  hostAddresses?: () => HostAddress[]
  /** WireGuard persistent keepalive towards the peers that need one (`keepaliveFor`), seconds. @default DEFAULT_KEEPALIVE_SECONDS */
  keepaliveSeconds?: number
  /** Age after which `status()` starts a background `wg show`, ms. @default DEFAULT_STATUS_MAX_AGE_MS */
  statusMaxAgeMs?: number
  /**
   * How often the full interface check (link, MTU, address, key, port) runs when
   * nothing changed, ms. In between, a pass reads only `wg show`, which already tells
   * a vanished interface, a dead wireguard-go or another key or port.
   * @default DEFAULT_INTERFACE_CHECK_MS
   */
  interfaceCheckMs?: number
  /** Delay before the first handshake nudge of a newly configured peer, ms. @default DEFAULT_NUDGE_DELAY_MS */
  nudgeDelayMs?: number
  /** Longest gap between two handshake nudges of one peer, ms. @default DEFAULT_NUDGE_MAX_DELAY_MS */
  nudgeMaxDelayMs?: number
  /** Keepalives sent after the first handshake of a nudged peer. @default DEFAULT_CONFIRM_NUDGES */
  nudgeConfirms?: number
  /** Handshake nudges per configured peer at most; 0 turns them off. @default DEFAULT_NUDGE_ATTEMPTS */
  nudgeAttempts?: number
  /**
   * How long a live member's peer may stay without any WireGuard handshake after it was
   * configured before `status().warnings` names it, ms. @default DEFAULT_NO_HANDSHAKE_WARN_MS
   */
  noHandshakeWarnMs?: number
  /**
   * How long a pass woken by a change waits for more changes before it runs, ms: a
   * site that boots together delivers its members and adverts one by one, and each
   * pass reads the interface and often reconfigures it (a `wg` process each, where the
   * driver uses `wg`). @default DEFAULT_COALESCE_MS
   */
  coalesceMs?: number
  /**
   * How long an advert must be held uncontested before this node holds its address
   * and key established against later contenders, ms (first claim wins; see peers.ts).
   * @default DEFAULT_ESTABLISH_MS
   */
  establishMs?: number
}

/** How often the full interface check runs when nothing changed, ms. */
export const DEFAULT_INTERFACE_CHECK_MS = 60_000

/** How old the `wg show` reading behind `status()` may get before it is refreshed, ms. */
export const DEFAULT_STATUS_MAX_AGE_MS = 1_000
/**
 * A configured peer of a live member with no handshake for this long is a warning, ms:
 * WireGuard retries every 5 s, so a minute without one is twelve lost initiations, not a
 * slow boot. @default 60000
 */
export const DEFAULT_NO_HANDSHAKE_WARN_MS = 60_000

/** How long a woken pass waits for more changes, ms. */
export const DEFAULT_COALESCE_MS = 250

/**
 * How long a vouch stays in the advert after its contest ended, ms. A contender that
 * withdraws and claims again would otherwise make every node that knew the holder
 * write its advert twice per round.
 */
export const VOUCH_LINGER_MS = 10 * 60_000

/** The interface was configured for the first time since start. */
export interface OverlayUp {
  interface: string
  /** Overlay address (no prefix). */
  address: string
  publicKey: string
  kind: InterfaceKind
  /** Clock time, ms. */
  at: number
}

/** What one reconcile pass did. */
export interface ReconcileResult {
  /** Peers in the desired set. */
  peers: number
  added: number
  updated: number
  removed: number
  /** Peers nudged to start a handshake. */
  nudged: number
  /** The full interface check ran (start, a change, drift, or `interfaceCheckMs` elapsed). */
  ensured: boolean
  /** The node's own address moved (it lost a conflict). */
  moved: boolean
  /** The advert was (re)published. */
  published: boolean
  /** Clock time at the end of the pass, ms. */
  at: number
  /** Duration of the pass on the controller's clock, ms. */
  durationMs: number
}

/** One configured peer as `status()` reports it. */
export interface VpnPeerStatus {
  peerId: string
  publicKey: string
  /** The endpoint WireGuard uses now. */
  endpoint: string | undefined
  allowedIps: string[]
  /** Latest handshake, ms since the epoch; 0 = never. */
  latestHandshake: number
  rxBytes: number
  txBytes: number
  /**
   * The owner is not dead in the member view and its session is settled: a handshake
   * within `timing.vpnHandshakeStaleMs`, or an earlier one and no send left unanswered
   * (an idle pair on one link sends nothing; see `sessionSettled`).
   */
  up: boolean
  /** The owner's liveness in the member view; `unknown` when not a member. */
  liveness: Liveness | 'unknown'
}

/** What `status()` and `refresh()` return. */
export interface VpnStatus {
  /** Overlay address, once claimed. */
  address: string | undefined
  cidr: string
  interface: string
  publicKey: string | undefined
  kind: InterfaceKind | undefined
  peers: VpnPeerStatus[]
  /** Adverts left out of the peer set and why. */
  ignored: Array<{ peerId: string, reason: IgnoredReason }>
  /** WireGuard keys advertised by several peer ids, and who keeps each. */
  duplicateKeys: DuplicateKey[]
  /** Contested adverts this node vouches for (it held them established first). */
  vouching: string[]
  lastReconcile: ReconcileResult | undefined
  /** The last reconcile failure, cleared by a successful pass. */
  lastError: string | undefined
  /** What an operator should look at: live members' peers that never completed a handshake. */
  warnings: string[]
}

/** Events of the VPN controller, by name. */
export interface VpnControllerEvents {
  'overlay:up': CustomEvent<OverlayUp>
  'address:moved': CustomEvent<{ from: AddressClaim, to: AddressClaim }>
  reconcile: CustomEvent<ReconcileResult>
  'reconcile:error': CustomEvent<{ error: unknown }>
}

/** The running VPN controller (`createVpnController`). */
export interface VpnController {
  /**
   * Loads (or creates) the key and the claim, configures the interface, publishes
   * the advert and runs the first reconcile, then keeps reconciling on state and
   * member changes, on the ticker (a single `wg show` while nothing changed) and when
   * a handshake nudge is due. A driver failure does not fail start: it is
   * reported in `status().lastError` and retried.
   * @throws InputError for a bad `vpn` config; VpnStateFileError for an unusable key or claim file.
   */
  start(): Promise<void>
  /** Stops reconciling. Prompt and idempotent; the interface stays up. */
  stop(): Promise<void>
  /** Runs one reconcile pass now (serialized with the loop). */
  reconcile(signal?: AbortSignal): Promise<ReconcileResult>
  /**
   * The status from the latest `wg show` the controller made (synchronous, for status
   * APIs). When that reading is older than `statusMaxAgeMs`, a fresh one is started in
   * the background for the next call; `refresh()` waits for one.
   */
  status(): VpnStatus
  /** Reads `wg show` now and returns the status. */
  refresh(signal?: AbortSignal): Promise<VpnStatus>
  /** Resolves once the interface is configured (at once if it already is); rejects when `signal` aborts. */
  whenUp(signal?: AbortSignal): Promise<OverlayUp>
  addEventListener<K extends keyof VpnControllerEvents>(type: K, listener: (evt: VpnControllerEvents[K]) => void): void
  removeEventListener<K extends keyof VpnControllerEvents>(type: K, listener: (evt: VpnControllerEvents[K]) => void): void
}
