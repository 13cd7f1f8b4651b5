import type { Libp2p } from 'libp2p'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Timing } from '../config/types.ts'
import type { DerivedKeys } from '../token/index.ts'
import { departureOf } from './departures.ts'
import type { P2PStatus, PeerStatus } from './node-api.ts'
import type { PeerBook } from './peer-book.ts'
import type { StackServices } from './stack.ts'
import { REJECT_REASONS, type RejectReason, type StateStore } from './state/index.ts'
import type { Member } from './types.ts'
import type { Services } from './wiring.ts'

/** What the node's status is read from; `run` and `svc` only while it runs. */
export interface StatusSources {
  self: string
  keys: Pick<DerivedKeys, 'fingerprint' | 'networkId'>
  timing: Timing
  /** The members that count (the roles layer's view). */
  members: Member[]
  /** Every row of the membership table, counted or not. */
  membership: Member[]
  revoked: ReadonlySet<string>
  protocolErrors: Record<string, number>
  now: number
  forgetAfterMs: number
  run?: { node: Libp2p<StackServices>, store: StateStore, book: PeerBook }
  svc?: Services
}

/** The node's status (`P2PNode.status()`): peers as the views and connections say, counters of every service. */
export function nodeStatus (s: StatusSources): P2PStatus {
  const { run, svc } = s
  const rejections: Record<string, number> = {}
  const storeRejections = run?.store.rejections()
  for (const r of REJECT_REASONS) rejections[r] = storeRejections?.[r as RejectReason] ?? 0
  Object.assign(rejections, s.protocolErrors)
  const members = new Map(s.members.map((m) => [m.peerId, m]))
  const admitted = svc?.gate.admitted ?? new Set<string>()
  const ids = new Set<string>([...members.keys(), ...admitted].filter((id) => !s.revoked.has(id)))
  const peers: PeerStatus[] = [...ids].sort().map((id) => {
    const m = members.get(id)
    return {
      id,
      addresses: m?.addresses.length === 0 || m === undefined ? (run?.book.get(id)?.addresses ?? []) : m.addresses,
      liveness: m?.liveness ?? 'unknown',
      lastSeen: m?.lastSeen ?? 0,
      discoveredBy: svc?.dialler.discoveredBy(id) ?? m?.discoveredBy ?? 'inbound',
      connected: run !== undefined && connections(run.node, id).length > 0,
      connections: run === undefined ? 0 : connections(run.node, id).filter((c) => c.status === 'open').length,
      admitted: admitted.has(id)
    }
  })
  const failures = svc?.gate.failures() ?? { 'bad-proof': 0, timeout: 0, protocol: 0, revoked: 0 }
  const lv = svc?.liveness.stats()
  return {
    peerId: s.self,
    fingerprint: s.keys.fingerprint,
    networkId: s.keys.networkId,
    addresses: run?.node.getMultiaddrs().map((m) => m.toString()) ?? [],
    peers,
    state: run?.store.size() ?? { entries: 0, bytes: 0 },
    rejections,
    admissionFailures: Object.values(failures).reduce((a, b) => a + b, 0),
    admissionFailuresByReason: failures,
    syncs: svc?.antiEntropy.stats() ?? { ok: 0, failed: 0 },
    dials: svc?.dialler.stats() ?? { ok: 0, failed: 0, pruned: 0, candidatesDropped: 0 },
    connections: { ...(svc?.connections.stats() ?? { opened: 0, closed: 0, doubles: 0 }), admissions: svc?.gate.admissions() ?? 0 },
    rendezvous: svc?.rendezvous.stats() ?? { rounds: 0, providersFound: 0 },
    stalls: lv?.stalls ?? { count: 0, ms: 0 },
    heartbeatMs: lv?.heartbeatMs ?? s.timing.heartbeatIntervalMs,
    refutations: lv?.refutations ?? 0,
    loopErrors: svc?.loops.errors() ?? 0,
    departed: departedRows(s)
  }
}

/** Removed and forgotten identities, by id. */
function departedRows (s: StatusSources): P2PStatus['departed'] {
  const out: P2PStatus['departed'] = []
  const seen = new Set<string>()
  for (const m of s.membership) {
    const reason = departureOf(m.peerId, m, s.revoked, s.now, s.forgetAfterMs)
    if (reason === undefined) continue
    seen.add(m.peerId)
    out.push({ id: m.peerId, reason, liveness: m.liveness, lastSeen: m.lastSeen })
  }
  for (const id of s.revoked) if (!seen.has(id)) out.push({ id, reason: 'removed', liveness: 'unknown', lastSeen: 0 })
  return out.sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
}

/** Connections (in any state) to `id`; none for an id that does not parse. */
function connections (node: Libp2p<StackServices>, id: string): ReturnType<Libp2p['getConnections']> {
  try {
    return node.getConnections(peerIdFromString(id))
  } catch {
    return []
  }
}
