import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { VpnConfig } from '../../config/types.ts'
import { createVpnController, type VpnController } from '../../vpn/controller.ts'
import { generateKeyPair, loadOrCreateKeyPair } from '../../vpn/keys.ts'
import { createWireGuardDriver, type ExecWireGuardDriver } from '../../vpn/wireguard-driver.ts'
import { waitFor } from '../helpers/wait.ts'
import { createFakeSite, type FakeSite } from '../../sim/cluster-state.ts'
import { createNetnsPair, isRoot, type NetnsHost, type NetnsPair } from '../../netns-lab/netns-pair.ts'

const vpn: VpnConfig = { create: true, use: true, cidr: '10.88.0.0/16', interface: 'kvt0', port: 51820, mtu: 1420 }
const MAIN = new URL('../../cli/main.ts', import.meta.url).pathname
const timing = { vpnReconcileMs: 2_000, vpnHandshakeStaleMs: 10_000 }

if (!isRoot()) {
  describe('vpn over two network namespaces', () => {
    it.skip('needs root (network and mount namespaces, wireguard-go): skipped', () => {})
  })
} else {
  describe('vpn over two network namespaces', () => {
    let pair: NetnsPair | undefined
    const drivers: ExecWireGuardDriver[] = []
    const controllers: VpnController[] = []
    const dirs: string[] = []

    const teardown = async (): Promise<void> => {
      for (const c of controllers) await c.stop().catch(() => {})
      const pids = drivers.flatMap((d) => d.processes().map((p) => p.pid))
      for (const d of drivers) {
        for (const p of d.processes()) await d.remove(p.interface).catch(() => {})
        await d.close()
      }
      await pair?.cleanup(pids)
      for (const dir of dirs) await rm(dir, { recursive: true, force: true })
      controllers.length = 0
      drivers.length = 0
    }
    afterAll(teardown)

    /** `uapi`: talk to wireguard-go through its control socket, reached in the host's mount namespace, instead of `wg`. */
    const startNode = (site: FakeSite, host: NetnsHost, id: string, stateDir: string, options: { uapi?: boolean } = {}): VpnController => {
      const driver = createWireGuardDriver({ commandPrefix: host.prefix, ...(options.uapi === true ? { uapiDir: `/proc/${host.holderPid}/root/run/wireguard` } : {}) })
      drivers.push(driver)
      const controller = createVpnController({
        vpn, timing, state: site.node(id), driver, stateDir,
        hostAddresses: () => [{ interface: host.device, address: host.address, family: 'IPv4', prefixLength: host.prefixLength, internal: false }]
      })
      controllers.push(controller)
      return controller
    }

    const ping = async (from: NetnsHost, to: string): Promise<void> => {
      await waitFor(`ping ${to} from ${from.netns}`, async () => ((await from.run(['ping', '-c1', '-W1', to])).ok) || undefined, 15_000)
    }

    it('two controllers (one through wg, one through the control socket) exchange keys through the state and ping across the overlay; a restart keeps addresses', async () => {
      try {
        pair = await createNetnsPair()
        const [ha, hb] = pair.hosts
        for (let i = 0; i < 2; i++) dirs.push(await mkdtemp(join(tmpdir(), 'kairos-vpn-ns-')))
        const [da, db] = dirs as [string, string]
        const site = createFakeSite()
        const a = startNode(site, ha, 'node-a', da)
        const b = startNode(site, hb, 'node-b', db, { uapi: true })
        await Promise.all([a.start(), b.start()])
        const [ua, ub] = await Promise.all([a.whenUp(), b.whenUp()])
        expect(ua.kind).toBe('wireguard-go')
        await ping(ha, ub.address)
        await ping(hb, ua.address)

        const sa = await a.refresh()
        expect(sa.lastError).toBeUndefined()
        expect(sa.peers).toHaveLength(1)
        expect(sa.peers[0]).toMatchObject({ peerId: 'node-b', endpoint: `${hb.address}:51820`, allowedIps: [`${ub.address}/32`], up: true })
        expect(sa.peers[0]?.rxBytes).toBeGreaterThan(0)

        // The kernel side sees what we asked for.
        const link = JSON.parse((await ha.run(['ip', '-j', 'link', 'show', 'dev', 'kvt0'])).stdout) as Array<{ mtu: number }>
        expect(link[0]?.mtu).toBe(1420)

        // No private key in the argv of any process on the machine.
        const secrets = [(await loadOrCreateKeyPair(da)).privateKey, (await loadOrCreateKeyPair(db)).privateKey]
        for (const pid of await readdir('/proc')) {
          if (!/^[0-9]+$/.test(pid)) continue
          const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
          for (const s of secrets) expect(cmdline.includes(s), `argv of pid ${pid}`).toBe(false)
        }

        // wireguard-go of host a dies: the controller brings the interface and its peers back.
        const first = drivers[0]?.processes()[0]?.pid
        expect(first).toBeTypeOf('number')
        process.kill(first ?? 0, 'SIGKILL')
        await waitFor('wireguard-go restarted', () => { const p = drivers[0]?.processes()[0]?.pid; return p !== undefined && p !== first ? p : undefined }, 10_000)
        await ping(ha, ub.address)

        // Restart both agents: same addresses, same keys, interfaces adopted, tunnel intact.
        for (const c of controllers) await c.stop()
        const a2 = startNode(site, ha, 'node-a', da)
        const b2 = startNode(site, hb, 'node-b', db)
        await Promise.all([a2.start(), b2.start()])
        expect((await a2.refresh()).address).toBe(ua.address)
        expect((await b2.refresh()).address).toBe(ub.address)
        expect((await a2.refresh()).publicKey).toBe(ua.publicKey)
        await ping(ha, ub.address)

        // The CLI inside host a: `vpn status --json`, then `vpn down` (the interface and its wireguard-go go away).
        const cli = async (...args: string[]): Promise<{ ok: boolean, stdout: string, stderr: string }> => await ha.run([process.execPath, MAIN, 'vpn', ...args])
        const shown = await cli('status', '--json', '--interface', 'kvt0')
        expect(shown.ok, shown.stderr).toBe(true)
        const report = JSON.parse(shown.stdout) as { publicKey: string, addresses: string[], peers: Array<{ publicKey: string, latestHandshake: number }> }
        expect(report.publicKey).toBe(ua.publicKey)
        expect(report.addresses).toEqual([`${ua.address}/16`])
        expect(report.peers.map((p) => p.publicKey)).toEqual([ub.publicKey])
        expect(report.peers[0]?.latestHandshake).toBeGreaterThan(0)
        const goPid = drivers[0]?.processes()[0]?.pid
        expect(goPid).toBeTypeOf('number')
        await a2.stop()
        const downed = await cli('down', '--interface', 'kvt0')
        expect(downed.ok, downed.stderr).toBe(true)
        expect(downed.stdout).toBe('removed kvt0')
        expect((await ha.run(['ip', 'link', 'show', 'dev', 'kvt0'])).ok).toBe(false)
        await waitFor(`wireguard-go ${goPid ?? ''} exit`, () => (drivers[0]?.processes().length === 0) || undefined, 5_000)
      } finally {
        await teardown()
      }
    })

    it('a nudge starts a handshake that no traffic would start', async () => {
      let own: NetnsPair | undefined
      let mine: ExecWireGuardDriver[] = []
      try {
        own = await createNetnsPair()
        const hosts = own.hosts
        mine = hosts.map((h) => createWireGuardDriver({ commandPrefix: h.prefix }))
        const keyPairs = [generateKeyPair(), generateKeyPair()]
        const overlay = ['10.89.0.1', '10.89.0.2']
        for (const [i, d] of mine.entries()) {
          await d.ensureInterface({ name: 'kvn0', privateKey: keyPairs[i]?.privateKey ?? '', listenPort: 51821, address: `${overlay[i] ?? ''}/24`, mtu: 1420 })
        }
        for (const [i, d] of mine.entries()) {
          const j = 1 - i
          // Keepalive off: adding the peer sends nothing, and nothing is routed to it.
          await d.setPeers('kvn0', [{ publicKey: keyPairs[j]?.publicKey ?? '', endpoint: `${hosts[j]?.address ?? ''}:51821`, allowedIps: [`${overlay[j] ?? ''}/32`], keepalive: 0 }], [])
        }
        const handshake = async (d: ExecWireGuardDriver): Promise<number> => (await d.show('kvn0'))?.peers[0]?.latestHandshake ?? -1
        expect(await handshake(mine[0] as ExecWireGuardDriver)).toBe(0)
        await mine[0]?.nudge('kvn0', [{ publicKey: keyPairs[1]?.publicKey ?? '', endpoint: `${hosts[1]?.address ?? ''}:51821`, allowedIps: [`${overlay[1] ?? ''}/32`], keepalive: 25, recreate: true }])
        await waitFor('handshake after the nudge', async () => (await handshake(mine[1] as ExecWireGuardDriver) > 0 && await handshake(mine[0] as ExecWireGuardDriver) > 0) || undefined, 10_000)
        expect((await mine[0]?.show('kvn0'))?.peers[0]?.keepalive).toBe(25)
      } finally {
        const pids = mine.flatMap((d) => d.processes().map((p) => p.pid))
        for (const d of mine) {
          await d.remove('kvn0').catch(() => {})
          await d.close()
        }
        await own?.cleanup(pids)
      }
    })
  })
}
