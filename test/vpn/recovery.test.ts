import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { VpnConfig } from '../../config/types.ts'
import { ManualClock } from '../../util/clock.ts'
import type { Logger } from '../../util/log.ts'
import { createVpnController, type VpnController } from '../../vpn/controller.ts'
import { createFakeWireGuardDriver, type FakeWireGuardDriver } from '../../vpn/fake-driver.ts'
import { waitFor } from '../helpers/wait.ts'
import { createFakeSite, type FakeSite } from '../../sim/cluster-state.ts'

const vpn: VpnConfig = { create: true, use: true, cidr: '10.88.7.0/24', interface: 'kairos0', port: 51820, mtu: 1420 }
const timing = { vpnReconcileMs: 60_000, vpnHandshakeStaleMs: 10_000 }

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

function start (site: FakeSite, clock: ManualClock, id: string, dir: string, driver: FakeWireGuardDriver, host: number, logs: string[]): VpnController {
  const record = (msg: string): void => { logs.push(msg) }
  const logger: Logger = { debug: () => {}, info: () => {}, warn: record, error: record, child: () => logger }
  const controller = createVpnController({
    vpn, timing, state: site.node(id), driver, stateDir: dir, clock, coalesceMs: 0, logger,
    hostAddresses: () => [{ interface: 'eth0', address: `192.168.1.${host}`, family: 'IPv4', prefixLength: 24, internal: false }]
  })
  cleanups.push(async () => { await controller.stop() })
  return controller
}

describe('damaged VPN files', () => {
  it('vpn/wireguard.key and vpn/claim.json: set aside, a new key published to the peers, the same overlay address from the advert; one line each', async () => {
    const site = createFakeSite()
    const clock = new ManualClock(1_796_000_000_000)
    const dirs = [await mkdtemp(join(tmpdir(), 'kairos-vpn-rec-')), await mkdtemp(join(tmpdir(), 'kairos-vpn-rec-'))]
    for (const d of dirs) cleanups.push(async () => { await rm(d, { recursive: true, force: true }) })
    const drivers = [createFakeWireGuardDriver(), createFakeWireGuardDriver()]
    const logs: string[] = []
    const a = start(site, clock, 'node-a', dirs[0] as string, drivers[0] as FakeWireGuardDriver, 10, logs)
    const b = start(site, clock, 'node-b', dirs[1] as string, drivers[1] as FakeWireGuardDriver, 11, [])
    await a.start()
    await b.start()
    const peerKeys = (): string[] => [...(drivers[1]?.interfaces.get('kairos0')?.peers.values() ?? [])].map((p) => p.publicKey)
    const before = await a.refresh()
    await waitFor('mesh', () => peerKeys().includes(before.publicKey ?? '') || undefined, 5_000, 5)
    await a.stop()
    site.leave('node-a')

    await writeFile(join(dirs[0] as string, 'vpn', 'wireguard.key'), 'not a key\n')
    await writeFile(join(dirs[0] as string, 'vpn', 'claim.json'), '{"cidr": ')
    const again = start(site, clock, 'node-a', dirs[0] as string, drivers[0] as FakeWireGuardDriver, 10, logs)
    await again.start()
    const after = await again.refresh()
    expect(after.address).toBe(before.address)
    expect(after.publicKey).not.toBe(before.publicKey)
    await b.refresh()
    await waitFor('the peer has the new key', () => (peerKeys().includes(after.publicKey ?? '') && !peerKeys().includes(before.publicKey ?? '')) || undefined, 5_000, 5)
    expect(logs).toEqual([
      expect.stringMatching(/^vpn\/wireguard\.key is damaged .*: set aside as wireguard\.key\.corrupt-\d{8}T\d{6}Z; a new WireGuard key is made and published$/),
      expect.stringMatching(/^vpn\/claim\.json is damaged .*: set aside as claim\.json\.corrupt-\d{8}T\d{6}Z; the overlay address is claimed again/)
    ])
    expect((await readdir(join(dirs[0] as string, 'vpn'))).filter((f) => f.includes('.corrupt-')).sort()).toHaveLength(2)
  })
})
