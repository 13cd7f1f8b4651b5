/**
 * The VPN controller's status: the desired peers joined with the latest `wg show`
 * reading and the member view. Pure; the controller supplies what it holds.
 */
import type { Liveness } from '../p2p/types.ts'
import type { AddressClaim, OverlayNetwork } from './address.ts'
import type { InterfaceDump, InterfaceKind, PeerDump } from './driver.ts'
import type { WireGuardKeyPair } from './keys.ts'
import type { DesiredPeer, DuplicateKey } from './peers.ts'
import type { ReconcileResult, VpnPeerStatus, VpnStatus } from './controller-contract.ts'

/** What the controller holds that its status is made of. */
export interface StatusInputs {
  /** The latest `wg show` reading, if any. */
  lastDump: InterfaceDump | undefined
  /** Liveness of the members, by peer id. */
  members: Array<{ peerId: string, liveness: Liveness }>
  /** Clock time, ms. */
  now: number
  /** `timing.vpnHandshakeStaleMs`. */
  handshakeStaleMs: number
  /** When each desired peer was first configured, by public key (clock ms). */
  configuredAt: ReadonlyMap<string, number>
  /** Since when a send to each peer has gone unanswered, by public key (clock ms; `trackWaiting`). */
  waitingSince: ReadonlyMap<string, number>
  /** See `VpnControllerInit.noHandshakeWarnMs`. */
  noHandshakeWarnMs: number
  desired: DesiredPeer[]
  claim: AddressClaim | undefined
  network: OverlayNetwork | undefined
  /** `vpn.cidr`, reported until the network is parsed. */
  configuredCidr: string
  interfaceName: string
  keys: WireGuardKeyPair | undefined
  kind: InterfaceKind | undefined
  ignored: VpnStatus['ignored']
  duplicateKeys: DuplicateKey[]
  vouching: string[]
  lastReconcile: ReconcileResult | undefined
  lastError: string | undefined
}

/** Assembles the controller's status from `s`. */
export function vpnStatus (s: StatusInputs): VpnStatus {
  const byKey = new Map<string, PeerDump>((s.lastDump?.peers ?? []).map((p) => [p.publicKey, p]))
  const liveness = new Map(s.members.map((m) => [m.peerId, m.liveness]))
  const now = s.now
  const peers = s.desired.map((d): VpnPeerStatus => {
    const p = byKey.get(d.publicKey)
    const latestHandshake = (p?.latestHandshake ?? 0) * 1000
    const memberLiveness = liveness.get(d.peerId) ?? 'unknown'
    return {
      peerId: d.peerId,
      publicKey: d.publicKey,
      endpoint: p?.endpoint,
      allowedIps: p?.allowedIps ?? [],
      latestHandshake,
      rxBytes: p?.rxBytes ?? 0,
      txBytes: p?.txBytes ?? 0,
      up: memberLiveness !== 'dead' && sessionSettled(latestHandshake, s.waitingSince.get(d.publicKey), now, s.handshakeStaleMs),
      liveness: memberLiveness
    }
  })
  return {
    warnings: noHandshakeWarnings(peers, s),
    address: s.claim?.address,
    cidr: s.network?.cidr ?? s.configuredCidr,
    interface: s.interfaceName,
    publicKey: s.keys?.publicKey,
    kind: s.kind,
    peers,
    ignored: s.ignored,
    duplicateKeys: s.duplicateKeys,
    vouching: s.vouching,
    lastReconcile: s.lastReconcile,
    lastError: s.lastError
  }
}

/*
 * A peer's WireGuard session without traffic to judge it by. A pair on one link sends no
 * keepalives (`keepaliveFor`), so once idle its handshake grows older than
 * `vpnHandshakeStaleMs` while nothing is wrong. What tells a broken session from an idle
 * one is a send that gets no answer: past that age WireGuard handshakes before it sends
 * (its keys expire after 180 s), and a peer answers data with at least a keepalive within
 * 10 s, so a send after the handshake went stale (the peer's tx counter rose) is followed
 * by a handshake or by received bytes within seconds, else by WireGuard's retries every 5 s.
 */

/**
 * How long a send may go unanswered before the session counts as broken, ms: three of
 * WireGuard's 5 s initiation retries.
 */
export const WAITING_GRACE_MS = 15_000

/** What the controller remembers of a peer's counters to tell an unanswered send (see above). */
export interface WaitTrack {
  /** The peer's tx and rx bytes when its handshake was first seen stale, or when it last answered; undefined while fresh. */
  staleTx?: number
  staleRx?: number
  /** When a send after that was first seen (clock ms). */
  waitingSince?: number
}

/** Updates `track` from one `wg show` reading of the peer at `now`; `latestHandshake` in ms (0 = never). */
export function trackWaiting (track: WaitTrack, peer: { latestHandshake: number, txBytes: number, rxBytes: number }, now: number, staleMs: number): void {
  if (peer.latestHandshake > 0 && now - peer.latestHandshake <= staleMs) {
    delete track.staleTx
    delete track.staleRx
    delete track.waitingSince
  } else if (track.staleTx === undefined || peer.txBytes < track.staleTx || peer.rxBytes !== track.staleRx) {
    // First seen stale, an answer (rx rose), or a peer WireGuard made anew (its counts start over).
    track.staleTx = peer.txBytes
    track.staleRx = peer.rxBytes
    delete track.waitingSince
  } else if (peer.txBytes > track.staleTx) {
    track.waitingSince ??= now
  }
}

/**
 * A session that needs nothing: a handshake within `staleMs`, or an earlier one and no
 * send unanswered for `WAITING_GRACE_MS`. Never for a peer without a handshake.
 */
export function sessionSettled (latestHandshake: number, waitingSince: number | undefined, now: number, staleMs: number): boolean {
  if (latestHandshake <= 0) return false
  return now - latestHandshake <= staleMs || waitingSince === undefined || now - waitingSince < WAITING_GRACE_MS
}

/** Peers shown in a warning before it says "and N more". */
const WARN_PEERS_SHOWN = 5

/**
 * One warning naming the live members whose peer has had no WireGuard handshake since it
 * was configured `noHandshakeWarnMs` ago or longer: both sides hold each other's key and
 * endpoint, so the initiations are lost on the way (a blocked UDP port, or sends that fail
 * on the host, such as a full kernel neighbour table).
 */
function noHandshakeWarnings (peers: VpnPeerStatus[], s: StatusInputs): string[] {
  if (s.lastDump === undefined) return []
  const silent = peers.filter((p) => {
    const since = s.configuredAt.get(p.publicKey)
    return p.liveness === 'alive' && p.latestHandshake === 0 && since !== undefined && s.now - since >= s.noHandshakeWarnMs
  })
  if (silent.length === 0) return []
  const oldest = Math.min(...silent.map((p) => s.configuredAt.get(p.publicKey) ?? s.now))
  const named = silent.slice(0, WARN_PEERS_SHOWN).map((p) => `${p.peerId.slice(-6)} at ${p.endpoint ?? 'no endpoint'}`).join(', ')
  const more = silent.length > WARN_PEERS_SHOWN ? ` and ${silent.length - WARN_PEERS_SHOWN} more` : ''
  return [`${silent.length} overlay peer${silent.length === 1 ? '' : 's'} of live members never completed a WireGuard handshake (configured up to ${Math.round((s.now - oldest) / 1000)} s ago): ${named}${more}; check that UDP reaches them both ways and that sends from this host do not fail (a full kernel neighbour table fails them with ENOBUFS)`]
}
