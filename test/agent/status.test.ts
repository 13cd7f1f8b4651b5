import { describe, expect, it } from 'vitest'
import { formatStatus, type AgentStatus } from '../../agent/status.ts'
import { renderMetrics } from '../../agent/metrics.ts'
import { Timeline } from '../../agent/timeline.ts'
import { ManualClock } from '../../util/clock.ts'

const status: AgentStatus = {
  peerId: '12D3KooWAbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdef',
  fingerprint: 'kp-7h3k-q2xm',
  networkId: 'shop-12',
  startedAt: 1_000_000,
  now: 1_004_000,
  phase: 'waiting',
  awaiting: 2,
  role: undefined,
  warnings: ['p2p.minimum_nodes (1) is not more than half of the fleet'],
  addresses: ['/ip4/10.1.0.2/tcp/4001'],
  peers: [{ id: '12D3KooWPeer1111111111111111111111', addresses: ['/ip4/10.1.0.3/tcp/4001'], liveness: 'alive', lastSeen: 1_003_500, discoveredBy: 'mdns' }],
  state: { entries: 4, bytes: 1200 },
  rejections: { forged: 2, stale: 0 },
  admissionFailures: 1,
  overlay: { address: '10.88.3.4', interface: 'kairos0', peers: [{ peerId: '12D3KooWPeer1111111111111111111111', allowedIps: ['10.88.9.9/32'], up: true, latestHandshake: 1_003_000 }] },
  timeline: [{ event: 'started', at: 1_000_000 }, { event: 'discovered', at: 1_000_350 }]
}

describe('formatStatus', () => {
  it('shows phase with the reason, peers, overlay, rejections and timeline', () => {
    const text = formatStatus({ ...status, reason: { code: 'more-nodes', text: 'waiting for 2 more nodes: minimum_nodes is 3 (for 4 s): boot more boxes', since: 1_000_000, hint: 'boot more boxes' } })
    expect(text).toContain('phase       waiting\n')
    expect(text).toContain('why         waiting for 2 more nodes: minimum_nodes is 3 (for 4 s): boot more boxes')
    expect(text).toContain('forged 2')
    expect(text).not.toContain('stale 0')
    expect(text).toContain('10.88.3.4 on kairos0')
    expect(text).toContain('mdns')
    expect(text).toContain('+   0.35s  discovered')
    expect(text).toContain('warning     p2p.minimum_nodes')
    // An older agent without a reason: the number of awaited nodes at least.
    expect(formatStatus(status)).toContain('waiting (waiting for 2 more nodes)')
  })
})

describe('renderMetrics', () => {
  it('renders Prometheus text with HELP/TYPE for each metric', () => {
    const text = renderMetrics(status)
    expect(text).toContain('kairos_p2p_peers{liveness="alive"} 1')
    expect(text).toContain('kairos_p2p_state_rejected_total{reason="forged"} 2')
    expect(text).toContain('kairos_p2p_phase{phase="waiting"} 1')
    expect(text).toContain('kairos_p2p_overlay_peers{state="up"} 1')
    expect(text).toContain('kairos_p2p_timeline_seconds{event="discovered"} 0.35')
    // Mesh health, when the agent reports it.
    expect(text).not.toContain('kairos_p2p_connections')
    const mesh = renderMetrics({ ...status, mesh: { connections: 7, dials: { ok: 9, failed: 2, pruned: 1 }, stalls: { count: 3, ms: 4500 }, refutations: 1, heartbeatMs: 2000 } })
    expect(mesh).toContain('kairos_p2p_connections 7')
    expect(mesh).toContain('kairos_p2p_heartbeat_interval_seconds 2')
    expect(mesh).toContain('kairos_p2p_dials_total{result="pruned"} 1')
    expect(mesh).toContain('kairos_p2p_stall_seconds_total 4.5')
    expect(mesh).toContain('kairos_p2p_refutations_total 1')
    const waiting = renderMetrics({ ...status, reason: { code: 'more-nodes', text: '…', since: 1_001_000, hint: '' }, installer: { failures: 2 } })
    expect(waiting).toContain('kairos_p2p_waiting{reason="more-nodes"} 1')
    expect(waiting).toContain('kairos_p2p_waiting{reason="partitioned"} 0')
    expect(waiting).toContain('kairos_p2p_waiting_seconds 3')
    expect(waiting).toContain('kairos_p2p_installer_failures_total 2')
    expect(text).not.toContain('kairos_p2p_waiting_seconds')
    const names = new Set(text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).map((l) => l.split(/[{ ]/)[0]))
    for (const n of names) expect(text).toContain(`# TYPE ${n} `)
  })
})

describe('Timeline', () => {
  it('keeps the first occurrence of each event, sorted by time', () => {
    const clock = new ManualClock(100)
    const t = new Timeline(clock)
    expect(t.record('started')).toBe(true)
    clock.advance(50)
    expect(t.record('started')).toBe(false)
    t.merge([{ event: 'elected', at: 400 }, { event: 'discovered', at: 120 }])
    t.merge([{ event: 'elected', at: 500 }])
    expect(t.list()).toEqual([{ event: 'started', at: 100 }, { event: 'discovered', at: 120 }, { event: 'elected', at: 400 }])
  })
})
