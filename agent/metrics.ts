import type { AgentStatus } from './status.ts'
import { REASON_CODES } from './reason.ts'

const PHASES = ['discovering', 'waiting', 'electing', 'installing', 'joined'] as const

function esc (v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

/**
 * Prometheus text exposition (format 0.0.4) of an agent status: the same families on the
 * agent socket's `/metrics` and on `p2p.metrics.listen`. Names follow Prometheus's
 * conventions: `kairos_p2p_` prefix, base units in the name (`_seconds`, `_bytes`),
 * `_total` on counters, `_info` for the identity. The README lists them.
 */
export function renderMetrics (s: AgentStatus): string {
  const out: string[] = []
  const metric = (name: string, help: string, type: 'gauge' | 'counter', samples: Array<[Record<string, string>, number]>): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
    for (const [labels, value] of samples) {
      const l = Object.entries(labels).map(([k, v]) => `${k}="${esc(v)}"`).join(',')
      out.push(`${name}${l === '' ? '' : `{${l}}`} ${value}`)
    }
  }
  metric('kairos_p2p_node_info', 'This node: peer id, network fingerprint and role (value 1).', 'gauge',
    [[{ peer_id: s.peerId, fingerprint: s.fingerprint, network_id: s.networkId, role: s.role ?? '' }, 1]])
  metric('kairos_p2p_start_time_seconds', 'When the agent started, seconds since the Unix epoch.', 'gauge', [[{}, s.startedAt / 1000]])
  const byLiveness = new Map<string, number>([['alive', 0], ['suspect', 0], ['dead', 0]])
  for (const p of s.peers) byLiveness.set(p.liveness, (byLiveness.get(p.liveness) ?? 0) + 1)
  metric('kairos_p2p_peers', 'Known peers by liveness.', 'gauge', [...byLiveness].map(([liveness, n]) => [{ liveness }, n]))
  metric('kairos_p2p_state_entries', 'Entries in the local replica of the cluster state.', 'gauge', [[{}, s.state.entries]])
  metric('kairos_p2p_state_bytes', 'Wire bytes held by the local replica.', 'gauge', [[{}, s.state.bytes]])
  metric('kairos_p2p_state_rejected_total', 'Refused state entries by reason.', 'counter', Object.entries(s.rejections).map(([reason, n]) => [{ reason }, n]))
  metric('kairos_p2p_admission_failures_total', 'Connections refused by the admission proof.', 'counter', [[{}, s.admissionFailures]])
  if (s.mesh !== undefined) {
    metric('kairos_p2p_connections', 'Open libp2p connections (about twice the mesh links).', 'gauge', [[{}, s.mesh.connections]])
    metric('kairos_p2p_dials_total', 'Dials by outcome, and connections closed as outside our links.', 'counter', [[{ result: 'ok' }, s.mesh.dials.ok], [{ result: 'failed' }, s.mesh.dials.failed], [{ result: 'pruned' }, s.mesh.dials.pruned]])
    const since = s.mesh.connectionsSinceStart
    if (since !== undefined) {
      metric('kairos_p2p_connections_total', 'Connections opened and closed since start, and those opened while another to the same peer was open.', 'counter', [[{ event: 'opened' }, since.opened], [{ event: 'closed' }, since.closed], [{ event: 'double' }, since.doubles]])
      metric('kairos_p2p_admissions_total', 'Token proofs passed (one per connection admitted).', 'counter', [[{}, since.admissions]])
    }
    metric('kairos_p2p_stalls_total', 'Times the liveness loop woke up a heartbeat interval late (a starved box).', 'counter', [[{}, s.mesh.stalls.count]])
    metric('kairos_p2p_stall_seconds_total', 'Time lost to those stalls.', 'counter', [[{}, s.mesh.stalls.ms / 1000]])
    metric('kairos_p2p_refutations_total', 'Suspicions of this node that reached it and were refuted.', 'counter', [[{}, s.mesh.refutations]])
    metric('kairos_p2p_candidates_dropped_total', 'Discovered peers not kept because the candidate list was full.', 'counter', [[{}, s.mesh.dials.candidatesDropped ?? 0]])
    metric('kairos_p2p_loop_errors_total', 'Rounds of a p2p loop that threw and were skipped (the loop carries on).', 'counter', [[{}, s.mesh.loopErrors ?? 0]])
    if (s.mesh.heartbeatMs !== undefined) metric('kairos_p2p_heartbeat_interval_seconds', 'Heartbeat interval in use (longer once the site is quiet).', 'gauge', [[{}, s.mesh.heartbeatMs / 1000]])
  }
  metric('kairos_p2p_phase', 'Formation phase (1 for the current one).', 'gauge', PHASES.map((p) => [{ phase: p }, s.phase === p ? 1 : 0]))
  metric('kairos_p2p_waiting', 'Why the node waits (1 for the current reason; all 0 once joined); status shows the text.', 'gauge',
    REASON_CODES.map((code) => [{ reason: code }, s.reason?.code === code ? 1 : 0]))
  if (s.reason !== undefined) metric('kairos_p2p_waiting_seconds', 'How long the node has waited for the current reason.', 'gauge', [[{}, Math.max(0, Math.round(s.now - s.reason.since)) / 1000]])
  metric('kairos_p2p_installer_failures_total', 'Hand-offs the installer failed since the agent started.', 'counter', [[{}, s.installer?.failures ?? 0]])
  metric('kairos_p2p_warnings', 'Warnings in status: configuration that weakens the guarantees, installer failures, overlay peers that never handshook.', 'gauge', [[{}, s.warnings.length]])
  if (s.overlay !== undefined) {
    metric('kairos_p2p_overlay_peers', 'WireGuard peers by state.', 'gauge', [
      [{ state: 'up' }, s.overlay.peers.filter((p) => p.up).length],
      [{ state: 'down' }, s.overlay.peers.filter((p) => !p.up).length]
    ])
  }
  metric('kairos_p2p_timeline_seconds', 'Seconds from agent start to each formation milestone.', 'gauge',
    s.timeline.map((e) => [{ event: e.event }, Math.round(e.at - s.startedAt) / 1000]))
  return out.join('\n') + '\n'
}
