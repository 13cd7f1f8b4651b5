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
