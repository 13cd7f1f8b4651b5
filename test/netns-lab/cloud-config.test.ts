import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../config/index.ts'
import { hostCloudConfig, LAB_SITE_TIMING, renderCloudConfig } from '../../netns-lab/cloud-config.ts'
import { encodeToken } from '../../token/index.ts'

const host = { name: 'n1', address: '10.100.0.10', stateDir: '/tmp/lab/n1/state' }
const token = encodeToken(new Uint8Array(32).fill(7))

function timingOf (doc: Parameters<typeof renderCloudConfig>[0]): Record<string, number> {
  return parseConfig([{ name: 'n1.yaml', text: renderCloudConfig(doc, 'n1.yaml') }]).config.p2p.timing as unknown as Record<string, number>
}

describe('hostCloudConfig', () => {
  it('gives lab hosts the lab preset with the site timing beneath it', () => {
    const timing = timingOf(hostCloudConfig({ host, token, minimumNodes: 2, bootstrapPeers: [], installerCommand: ['/bin/true'] }))
    expect(timing.deadAfterMs).toBe(LAB_SITE_TIMING.dead_after_ms)
    expect(timing.heartbeatIntervalMs).toBe(LAB_SITE_TIMING.heartbeat_interval_ms)
    expect(timing.mdnsIntervalMs).toBe(LAB_SITE_TIMING.mdns_interval_ms)
    // What the site timing leaves alone stays the lab preset's.
    expect(timing.electionSettleMs).toBe(300)
    expect(timing.rolesTickMs).toBe(200)
  })

  it("lets the user's p2p.timing win over the site timing", () => {
    const base = { p2p: { timing: { dead_after_ms: 4000, suspect_after_ms: 2000 } } }
    const timing = timingOf(hostCloudConfig({ host, token, minimumNodes: 2, bootstrapPeers: [], installerCommand: ['/bin/true'], base }))
    expect(timing.deadAfterMs).toBe(4000)
    expect(timing.suspectAfterMs).toBe(2000)
    expect(timing.heartbeatIntervalMs).toBe(LAB_SITE_TIMING.heartbeat_interval_ms)
  })

  it('gives each host its own k3s data dir after the user\'s k3s.args, unless the user set one', () => {
    const k3sOf = (doc: Parameters<typeof renderCloudConfig>[0]): unknown => parseConfig([{ name: 'n1.yaml', text: renderCloudConfig(doc, 'n1.yaml') }]).config.k3s.args
    const init = { host, token, minimumNodes: 2, bootstrapPeers: [], installerCommand: ['/bin/true'], k3sDataDir: '/tmp/lab/n1/k3s/data' }
    expect(k3sOf(hostCloudConfig(init))).toEqual(['--data-dir', '/tmp/lab/n1/k3s/data'])
    expect(k3sOf(hostCloudConfig({ ...init, base: { k3s: { args: ['--disable=traefik'] } } }))).toEqual(['--disable=traefik', '--data-dir', '/tmp/lab/n1/k3s/data'])
    expect(k3sOf(hostCloudConfig({ ...init, base: { k3s: { args: ['--data-dir=/srv/k3s'] } } }))).toEqual(['--data-dir=/srv/k3s'])
  })
})
