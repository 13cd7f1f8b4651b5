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
      up: memberLiveness !== 'dead' && latestHandshake > 0 && now - latestHandshake <= s.handshakeStaleMs,
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
