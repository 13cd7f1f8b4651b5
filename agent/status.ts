import type { TokenStatus } from './rotation.ts'
import type { TimelineEvent } from './timeline.ts'
import { shortPeer, type InstallerFailure, type StatusReason } from './reason.ts'

export interface AgentPeerStatus {
  id: string
  addresses: string[]
  liveness: string
  lastSeen: number
  discoveredBy: string
  connected?: boolean
}

export interface OverlayPeerStatus {
  peerId: string
  publicKey?: string
  endpoint?: string
  allowedIps?: string[]
  latestHandshake?: number
  rxBytes?: number
  txBytes?: number
  up: boolean
}

/** A node of the site as it published itself in the cluster state (`roles/status`). */
export interface SiteMember {
  peerId: string
  /** Its k3s role, once it has one. */
  role?: string
  /** 'installing' or 'joined', once it has a role. */
  phase?: string
  /** The address k3s listens on, published by the init server. */
  address?: string
}

/** What `GET /status` returns and `kairos-p2p status --json` prints. */
export interface AgentStatus {
  peerId: string
  fingerprint: string
  /** The network token's generation, and the replaced token while a rotation's grace runs. */
  token?: TokenStatus
  networkId: string
  startedAt: number
  now: number
  phase: string
  /** Why a node in a non-final phase waits: what for, on whom, since when, what to do. Absent once joined, and from older agents. */
  reason?: StatusReason | undefined
  awaiting?: number | undefined
  role?: string | undefined
  leader?: string | undefined
  clusterId?: string | undefined
  /** Configuration that weakens the guarantees, and installer failures with their message and next try. */
  warnings: string[]
  /** Hand-offs the installer failed since start, and the current run of failures (cleared by a hand-off that succeeds). */
  installer?: { failures: number, last?: InstallerFailure | undefined } | undefined
  addresses: string[]
  peers: AgentPeerStatus[]
  state: { entries: number, bytes: number }
  rejections: Record<string, number>
  admissionFailures: number
  /** Admission failures by reason (`revoked`: a removed node tried to connect). Absent from older agents. */
  admissionFailuresByReason?: Record<string, number> | undefined
  /**
   * How the node's share of the mesh is doing: open connections, dials (and connections
   * closed as outside its links), liveness-loop stalls (the box is starved) and
   * refutations (suspicions of this node that reached it), and the heartbeat interval
   * in use (longer on a quiet site), and connections since start (opened, closed, opened
   * while another to the same peer was open, token proofs passed). Absent from older
   * agents; `heartbeatMs` and `connectionsSinceStart` too.
   */
  mesh?: { connections: number, dials: { ok: number, failed: number, pruned: number, candidatesDropped?: number }, connectionsSinceStart?: { opened: number, closed: number, doubles: number, admissions: number } | undefined, stalls: { count: number, ms: number }, refutations: number, heartbeatMs?: number | undefined, loopErrors?: number } | undefined
  overlay?: { address?: string | undefined, interface?: string | undefined, publicKey?: string | undefined, peers: OverlayPeerStatus[] } | undefined
  /** Highest election term (ballot round) this node promised. */
  term?: number | undefined
  /** Every node this one knows, self first, with the role and phase it published. */
  site?: SiteMember[] | undefined
  /** Nodes removed from the site (`kairos-p2p node remove`) whose removal this node applied. Absent from older agents. */
  removed?: Array<{ peerId: string, basis: string, by: string[], at: number }> | undefined
  /** Nodes dead longer than `p2p.forget_after`: out of WireGuard and the counts, not revoked. */
  forgotten?: Array<{ peerId: string, lastSeen: number }> | undefined
  timeline: TimelineEvent[]
}

function ago (now: number, at: number | undefined): string {
  if (at === undefined || at <= 0) return 'never'
  const s = Math.max(0, Math.round((now - at) / 1000))
  return s < 120 ? `${s}s ago` : `${Math.round(s / 60)}m ago`
}

const short = shortPeer

/** The human view of a status, for a terminal. */
export function formatStatus (s: AgentStatus): string {
  const lines: string[] = []
  // An older agent reports no reason: the number of awaited nodes at least.
  const phase = s.reason === undefined && s.awaiting !== undefined && s.awaiting > 0 ? `${s.phase} (waiting for ${s.awaiting} more node${s.awaiting === 1 ? '' : 's'})` : s.phase
  lines.push(`node        ${s.peerId}`)
  lines.push(`network     fingerprint ${s.fingerprint}${s.networkId === '' ? '' : `, network id ${s.networkId}`}`)
  if (s.token !== undefined) lines.push(`token       generation ${s.token.generation}${s.token.source === 'state' ? ' (switched by a rotation)' : ''}${s.token.previous === undefined ? '' : `; grace for ${s.token.previous.fingerprint} until ${new Date(s.token.previous.until).toISOString()}`}`)
  lines.push(`phase       ${phase}`)
  if (s.reason !== undefined) lines.push(`why         ${s.reason.text}`)
  lines.push(`role        ${s.role ?? '-'}${s.leader === undefined ? '' : `   init server ${short(s.leader)}`}`)
  if (s.overlay !== undefined) lines.push(`overlay     ${s.overlay.address ?? '-'} on ${s.overlay.interface ?? '-'}`)
  lines.push(`state       ${s.state.entries} entries, ${s.state.bytes} bytes`)
  const rejected = Object.entries(s.rejections).filter(([, n]) => n > 0)
  lines.push(`rejected    ${rejected.length === 0 ? 'none' : rejected.map(([k, n]) => `${k} ${n}`).join(', ')}; admission failures ${s.admissionFailures}`)
  for (const w of s.warnings) lines.push(`warning     ${w}`)
  lines.push('', `peers (${s.peers.length})`)
  lines.push(`  ${'peer'.padEnd(16)} ${'liveness'.padEnd(8)} ${'last seen'.padEnd(10)} ${'via'.padEnd(9)} address`)
  for (const p of s.peers) {
    lines.push(`  ${short(p.id).padEnd(16)} ${p.liveness.padEnd(8)} ${ago(s.now, p.lastSeen).padEnd(10)} ${p.discoveredBy.padEnd(9)} ${p.addresses[0] ?? '-'}`)
  }
  if (s.removed !== undefined && s.removed.length > 0) {
    lines.push('', `removed (${s.removed.length})`)
    for (const r of s.removed) lines.push(`  ${short(r.peerId).padEnd(16)} ${r.basis.padEnd(11)} ${ago(s.now, r.at).padEnd(10)} by ${r.by.map(short).join(', ')}`)
  }
  if (s.forgotten !== undefined && s.forgotten.length > 0) {
    lines.push('', `forgotten (${s.forgotten.length}): dead longer than p2p.forget_after`)
    for (const f of s.forgotten) lines.push(`  ${short(f.peerId).padEnd(16)} last seen ${ago(s.now, f.lastSeen)}`)
  }
  if (s.overlay !== undefined) {
    lines.push('', `overlay peers (${s.overlay.peers.length})`)
    for (const p of s.overlay.peers) {
      lines.push(`  ${short(p.peerId).padEnd(16)} ${(p.up ? 'up' : 'down').padEnd(5)} ${(p.allowedIps?.[0] ?? '-').padEnd(18)} handshake ${ago(s.now, p.latestHandshake)}  ${p.endpoint ?? ''}`)
    }
  }
  lines.push('', 'timeline')
  for (const e of s.timeline) lines.push(`  +${((e.at - s.startedAt) / 1000).toFixed(2).padStart(7)}s  ${e.event}`)
  return lines.join('\n') + '\n'
}
