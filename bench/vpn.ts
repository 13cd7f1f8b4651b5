// WireGuard overlay benchmarks. Prints one JSON line (the last line of stdout).
//  - reconcile of a 30-peer mesh with the in-memory driver: first pass (all peers
//    added), a no-op pass, and a pass after one advert changed;
//  - the same with the real tools (wireguard-go, wg, ip) inside a network namespace;
//  - two nodes, each in its own namespace: from both controllers started (in this
//    process) to the first ping reply across the overlay. Issue 4 quotes 1.5 s from
//    agent spawn for a throw-away agent; this figure leaves out process boot.
// The real-tool parts need root and are reported as skipped otherwise.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { VpnConfig } from '../config/types.ts'
import { ManualClock } from '../util/clock.ts'
import { seededRandom } from '../util/random.ts'
import { overlayAddress, parseOverlayCidr, type AddressClaim } from '../vpn/address.ts'
import { createVpnController, type VpnController } from '../vpn/controller.ts'
import type { WireGuardDriver } from '../vpn/driver.ts'
import { createFakeWireGuardDriver } from '../vpn/fake-driver.ts'
import { generateKeyPair } from '../vpn/keys.ts'
import { advertValue, VPN_ADVERT_KEY } from '../vpn/peers.ts'
import { createWireGuardDriver, type ExecWireGuardDriver } from '../vpn/wireguard-driver.ts'
import { waitFor } from '../util/wait.ts'
import { createFakeSite, type FakeSite } from '../sim/cluster-state.ts'
import { createNetnsPair, isRoot, type NetnsHost } from '../netns-lab/netns-pair.ts'
import { randomPeerId } from '../sim/random-ids.ts'

const PEERS = 30
const vpn: VpnConfig = { create: true, use: true, cidr: '10.88.0.0/16', interface: 'kvb0', port: 51820, mtu: 1420 }
const timing = { vpnReconcileMs: 600_000, vpnHandshakeStaleMs: 180_000 }

function stats (samples: number[]): { median: number, min: number, max: number, runs: number } {
  const s = [...samples].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  const median = s.length % 2 === 1 ? s[mid] as number : ((s[mid - 1] as number) + (s[mid] as number)) / 2
  const r = (x: number): number => Math.round(x * 100) / 100
  return { median: r(median), min: r(s[0] ?? 0), max: r(s.at(-1) ?? 0), runs: s.length }
}

/** Publishes `n` synthetic adverts with valid claims into `site`. */
function seedPeers (site: FakeSite, n: number, seed: number): string[] {
  const net = parseOverlayCidr(vpn.cidr)
  const rng = seededRandom(seed)
  const claims: Array<{ peerId: string } & AddressClaim> = []
  for (let i = 0; i < n; i++) {
    const peerId = randomPeerId(rng)
    const claim = overlayAddress(net, peerId, undefined, claims)
    claims.push({ peerId, ...claim })
    site.inject(peerId, VPN_ADVERT_KEY, advertValue({
      publicKey: generateKeyPair().publicKey, port: 51820, endpoints: [`10.202.${i >> 8}.${(i & 255) + 1}:51820`], ...claim
    }))
  }
  return claims.map((c) => c.peerId)
}

interface MeshTimes { firstMs: number, noopMs: number, changeMs: number }

/** Start (interface + all peers), a no-op pass and a pass after one advert changed, on the wall clock. */
async function meshOnce (driver: WireGuardDriver, seed: number, hostAddress: string): Promise<{ times: MeshTimes, controller: VpnController, dir: string }> {
  const site = createFakeSite()
  const ids = seedPeers(site, PEERS, seed)
  const dir = await mkdtemp(join(tmpdir(), 'kairos-vpn-bench-'))
  const controller = createVpnController({
    vpn, timing, state: site.node('bench-self'), driver, stateDir: dir, clock: new ManualClock(Date.now()),
    hostAddresses: () => [{ interface: 'eth0', address: hostAddress, family: 'IPv4', prefixLength: 24, internal: false }]
  })
  let t = performance.now()
  await controller.start()
  const firstMs = performance.now() - t
  const status = await controller.status()
  if (status.peers.length !== PEERS || status.lastError !== undefined) throw new Error(`mesh incomplete: ${status.peers.length} peers, ${status.lastError ?? ''}`)
  t = performance.now()
  await controller.reconcile()
  const noopMs = performance.now() - t
  const victim = ids[0] as string
  const old = site.node('bench-self').get(victim, VPN_ADVERT_KEY)?.value as Record<string, unknown>
  site.inject(victim, VPN_ADVERT_KEY, { ...old, endpoints: ['10.203.0.1:51820'] })
  t = performance.now()
  const result = await controller.reconcile()
  const changeMs = performance.now() - t
  if (result.peers !== PEERS) throw new Error('peer lost after change')
  return { times: { firstMs, noopMs, changeMs }, controller, dir }
}

async function fakeMesh (): Promise<Record<string, unknown>> {
  const samples: MeshTimes[] = []
  for (let run = 0; run < 20; run++) {
    const { times, controller, dir } = await meshOnce(createFakeWireGuardDriver(), run, '192.168.1.2')
    samples.push(times)
    await controller.stop()
    await rm(dir, { recursive: true, force: true })
  }
  return {
    peers: PEERS,
    startWithAllPeersMs: stats(samples.map((s) => s.firstMs)),
    noopReconcileMs: stats(samples.map((s) => s.noopMs)),
    oneChangeReconcileMs: stats(samples.map((s) => s.changeMs))
  }
}

async function realMesh (): Promise<Record<string, unknown>> {
  const samples: MeshTimes[] = []
  for (let run = 0; run < 3; run++) {
    const pair = await createNetnsPair()
    const host = pair.hosts[0]
    const driver = createWireGuardDriver({ commandPrefix: host.prefix })
    let dir: string | undefined
    let controller: VpnController | undefined
    try {
      const r = await meshOnce(driver, 100 + run, host.address)
      dir = r.dir
      controller = r.controller
      samples.push(r.times)
      const dump = await driver.show(vpn.interface)
      if (dump?.peers.length !== PEERS) throw new Error(`wg shows ${dump?.peers.length ?? 0} peers, expected ${PEERS}`)
    } finally {
      await controller?.stop()
      const pids = driver.processes().map((p) => p.pid)
      await driver.remove(vpn.interface).catch(() => {})
      await driver.close()
      await pair.cleanup(pids)
      if (dir !== undefined) await rm(dir, { recursive: true, force: true })
    }
  }
  return {
    peers: PEERS,
    tools: 'wireguard-go + wg + ip via nsenter',
    startWithAllPeersMs: stats(samples.map((s) => s.firstMs)),
    noopReconcileMs: stats(samples.map((s) => s.noopMs)),
    oneChangeReconcileMs: stats(samples.map((s) => s.changeMs))
  }
}

interface PingTimes { upMs: number, peersMs: number, handshakeMs: number, pingMs: number }

async function pingOnce (): Promise<PingTimes> {
  const pair = await createNetnsPair()
  const drivers: ExecWireGuardDriver[] = []
  const controllers: VpnController[] = []
  const dirs: string[] = []
  try {
    const site = createFakeSite()
    const make = async (host: NetnsHost, id: string): Promise<VpnController> => {
      const dir = await mkdtemp(join(tmpdir(), 'kairos-vpn-bench-'))
      dirs.push(dir)
      const driver = createWireGuardDriver({ commandPrefix: host.prefix })
      drivers.push(driver)
      const c = createVpnController({
        vpn, timing: { vpnReconcileMs: 2_000, vpnHandshakeStaleMs: 10_000 }, state: site.node(id), driver, stateDir: dir,
        hostAddresses: () => [{ interface: host.device, address: host.address, family: 'IPv4', prefixLength: host.prefixLength, internal: false }]
      })
      controllers.push(c)
      return c
    }
    const [ha, hb] = pair.hosts
    const a = await make(ha, 'node-a')
    const b = await make(hb, 'node-b')
    const t0 = performance.now()
    await Promise.all([a.start(), b.start()])
    const [, ub] = await Promise.all([a.whenUp(), b.whenUp()])
    const upMs = performance.now() - t0
    const configured = async (c: VpnController): Promise<boolean> => (await c.status()).peers.length === 1
    await waitFor('peers configured', async () => (await configured(a) && await configured(b)) || undefined, 15_000)
    const peersMs = performance.now() - t0
    // The persistent keepalive set with each new peer starts the handshake without traffic.
    const driverA = drivers[0] as ExecWireGuardDriver
    await waitFor('handshake', async () => (((await driverA.show(vpn.interface))?.peers[0]?.latestHandshake ?? 0) > 0) || undefined, 15_000)
    const handshakeMs = performance.now() - t0
    await waitFor('ping over the overlay', async () => ((await ha.run(['ping', '-c1', '-W1', ub.address])).ok) || undefined, 15_000)
    return { upMs, peersMs, handshakeMs, pingMs: performance.now() - t0 }
  } finally {
    for (const c of controllers) await c.stop()
    const pids = drivers.flatMap((d) => d.processes().map((p) => p.pid))
    for (const d of drivers) await d.close()
    await pair.cleanup(pids)
    for (const d of dirs) await rm(d, { recursive: true, force: true })
  }
}

async function twoNodePing (): Promise<Record<string, unknown>> {
  const samples: PingTimes[] = []
  for (let run = 0; run < 5; run++) samples.push(await pingOnce())
  return {
    from: 'both controllers started in-process on empty state dirs (key generation included, process boot excluded)',
    bothInterfacesUpMs: stats(samples.map((s) => s.upMs)),
    bothPeersConfiguredMs: stats(samples.map((s) => s.peersMs)),
    firstHandshakeMs: stats(samples.map((s) => s.handshakeMs)),
    firstPingReplyMs: stats(samples.map((s) => s.pingMs))
  }
}

const result: Record<string, unknown> = { fakeDriver: await fakeMesh() }
if (isRoot()) {
  result.realTools = await realMesh()
  result.twoNodePing = await twoNodePing()
} else {
  result.realTools = 'skipped: needs root'
  result.twoNodePing = 'skipped: needs root'
}
process.stdout.write(JSON.stringify(result) + '\n')
