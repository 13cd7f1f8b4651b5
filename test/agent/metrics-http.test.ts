// The Prometheus endpoint of `p2p.metrics.listen`, scraped over HTTP on loopback and read
// with a Prometheus text-format parser, as a Prometheus server would read it.
import { afterAll, describe, expect, it } from 'vitest'
import { createServer } from 'node:net'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import { queryAgent } from '../../agent/api.ts'
import { startMetricsServer } from '../../agent/metrics-server.ts'
import type { AgentStatus } from '../../agent/status.ts'
import { startLoneAgent, type LoneAgent } from '../helpers/lone-agent.ts'
import { waitFor } from '../helpers/wait.ts'

let lone: LoneAgent | undefined
afterAll(async () => { await lone?.stop() })

/** A port free on loopback right now. */
async function freePort (): Promise<number> {
  const srv = createServer()
  await new Promise<void>((resolve) => { srv.listen(0, '127.0.0.1', resolve) })
  const addr = srv.address()
  await new Promise<void>((resolve) => { srv.close(() => { resolve() }) })
  if (typeof addr !== 'object' || addr === null) throw new Error('no port')
  return addr.port
}

async function scrape (url: string): Promise<{ status: number, type: string, text: string }> {
  const res = await fetch(url)
  return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() }
}

describe('metrics over HTTP (p2p.metrics.listen)', () => {
  it('a waiting node serves the socket\'s families on GET /metrics, with the reason it waits', async () => {
    const port = await freePort()
    lone = await startLoneAgent({ name: 'metrics', tokenByte: 21, p2p: [`  metrics: {listen: '127.0.0.1:${port}'}`] })
    const { agent, stateDir } = lone
    const url = `http://127.0.0.1:${port}/metrics`

    const status = await waitFor('the node alone, discovering', async () => {
      const s = JSON.parse(await queryAgent(stateDir, '/status')) as AgentStatus
      return s.reason?.code === 'discovering' ? s : undefined
    })
    expect(status.reason?.text).toContain('looking for other nodes')

    const res = await scrape(url)
    expect(res.status).toBe(200)
    expect(res.type).toContain('text/plain; version=0.0.4')
    const families = parsePrometheusTextFormat(res.text)
    const byName = new Map(families.map((f) => [f.name, f]))
    const sample = (name: string, labels: Record<string, string> = {}): number => {
      const f = byName.get(name)
      const m = f?.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v))
      if (m === undefined) throw new Error(`no sample ${name}${JSON.stringify(labels)} in:\n${res.text}`)
      return Number(m.value)
    }
    expect(sample('kairos_p2p_phase', { phase: 'discovering' })).toBe(1)
    expect(sample('kairos_p2p_waiting', { reason: 'discovering' })).toBe(1)
    expect(sample('kairos_p2p_waiting', { reason: 'more-nodes' })).toBe(0)
    expect(sample('kairos_p2p_waiting_seconds')).toBeGreaterThanOrEqual(0)
    expect(sample('kairos_p2p_node_info', { peer_id: agent.peerId })).toBe(1)
    expect(sample('kairos_p2p_installer_failures_total')).toBe(0)
    expect(sample('kairos_p2p_start_time_seconds')).toBeGreaterThan(1.7e9)
    expect(sample('kairos_p2p_loop_errors_total')).toBe(0)
    expect(sample('kairos_p2p_candidates_dropped_total')).toBe(0)

    // Prometheus conventions: counters end in _total, every family has help, units in the name.
    for (const f of families) {
      expect(f.name).toMatch(/^kairos_p2p_[a-z_]+$/)
      expect(f.help).not.toBe('')
      expect(f.type === 'COUNTER').toBe(f.name.endsWith('_total'))
      expect(f.name).not.toMatch(/_(ms|milliseconds|kb|mb)(_|$)/)
    }
    // The same families as the agent socket's /metrics.
    const socketFamilies = parsePrometheusTextFormat(await queryAgent(stateDir, '/metrics')).map((f) => f.name).sort()
    expect(families.map((f) => f.name).sort()).toEqual(socketFamilies)

    // Only /metrics is served here; the status stays on the socket.
    expect((await scrape(`http://127.0.0.1:${port}/status`)).status).toBe(404)
    expect((await fetch(url, { method: 'POST' })).status).toBe(405)
  }, 30_000)

  it('a taken port stops the start with MetricsListenError naming p2p.metrics.listen', async () => {
    const first = await startMetricsServer('127.0.0.1:0', () => '')
    const port = Number(new URL(first.url).port)
    try {
      const err = await startMetricsServer(`127.0.0.1:${port}`, () => '').then(() => undefined, (e: unknown) => e)
      expect((err as Error).name).toBe('MetricsListenError')
      expect((err as Error).message).toContain(`p2p.metrics.listen: cannot serve metrics on 127.0.0.1:${port}`)
    } finally {
      await first.close()
    }
  })
})
