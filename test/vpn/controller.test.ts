import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { seededRandom } from '../../util/random.ts'
import { compareClaims, overlayCandidate, parseOverlayCidr } from '../../vpn/address.ts'
import { saveClaim } from '../../vpn/claim-file.ts'
import { createVpnController, type ReconcileResult, type VpnController, type VpnControllerInit } from '../../vpn/controller.ts'
import { WAITING_GRACE_MS } from '../../vpn/controller-status.ts'
import { createFakeWireGuardDriver } from '../../vpn/fake-driver.ts'
import { generateKeyPair } from '../../vpn/keys.ts'
import { advertValue, parseAdvert, VPN_ADVERT_KEY } from '../../vpn/peers.ts'
import { createWireGuardDriver, type ExecWireGuardDriver } from '../../vpn/wireguard-driver.ts'
import type { HostAddress } from '../../vpn/endpoints.ts'
import { waitFor } from '../helpers/wait.ts'
import { createFakeTools, type FakeTools } from './fake-tools.ts'
import { collidingPeerIds, peersOf, TIMING, VPN, vpnFixture, type VpnTestNode } from './fixture.ts'
import { randomPeerId } from '../../sim/random-ids.ts'

const fx = vpnFixture()
const node = fx.node
type Node = VpnTestNode

async function publicKeyOf (n: Node): Promise<string> {
  return (await n.controller.refresh()).publicKey ?? ''
}

/** A host on two subnets: the same subnet as node-a's first, another one second. */
const twoSubnets = (): HostAddress[] => [
  { interface: 'eth0', address: '192.168.1.20', family: 'IPv4', prefixLength: 24, internal: false },
  { interface: 'eth1', address: '172.16.0.20', family: 'IPv4', prefixLength: 16, internal: false }
]
/** node-a meshed with node-b (given `bExtra`), and node-b's public key. */
const meshedPair = async (bExtra?: Partial<VpnControllerInit>): Promise<{ a: Node, keyB: string }> => {
  const a = await node('node-a')
  const b = await node('node-b', bExtra === undefined ? {} : { extra: bExtra })
  await a.controller.start()
  await b.controller.start()
  await waitFor('mesh', () => (peersOf(a).size === 1) || undefined, 5_000, 5)
  return { a, keyB: await publicKeyOf(b) }
}

describe('createVpnController', () => {
  it('builds a full mesh from the adverts of three nodes', async () => {
    const nodes = [await node('node-a'), await node('node-b'), await node('node-c')]
    const ups: unknown[] = []
    for (const n of nodes) n.controller.addEventListener('overlay:up', (e) => { ups.push(e.detail) })
    for (const n of nodes) await n.controller.start()
    expect(ups).toHaveLength(3)
    await waitFor('full mesh', () => (nodes.every((n) => peersOf(n).size === 2)) || undefined, 5_000, 5)
    const statuses = await Promise.all(nodes.map(async (n) => await n.controller.refresh()))
    const addresses = statuses.map((s) => s.address)
    expect(new Set(addresses).size).toBe(3)
    for (const [i, n] of nodes.entries()) {
      const s = statuses[i]
      const iface = n.driver.interfaces.get('kairos0')
      expect(iface?.spec).toMatchObject({ address: `${s?.address ?? ''}/24`, mtu: 1420, listenPort: 51820 })
      for (const [j, other] of statuses.entries()) {
        if (j === i) continue
        expect(peersOf(n).get(other.publicKey ?? '')).toEqual([`${other.address ?? ''}/32`])
      }
      expect(s?.peers.map((p) => p.peerId)).toEqual(nodes.filter((o) => o !== n).map((o) => o.id).sort())
      expect(s?.peers.every((p) => !p.up && p.endpoint?.startsWith('192.168.1.') === true && p.liveness === 'alive')).toBe(true)
      // The advert names the host endpoints, not loopback.
      const advert = parseAdvert(fx.site.node(n.id).get(n.id, VPN_ADVERT_KEY)?.value ?? null)
      expect(advert?.endpoints).toEqual([`192.168.1.${11 + i}:51820`])
    }
    expect(await nodes[0]?.controller.whenUp()).toMatchObject({ interface: 'kairos0', address: addresses[0], kind: 'wireguard-go' })
  })

  it('prunes a peer whose advert left the state; keeps a dead one and reports it down', async () => {
    const [a, b, c] = [await node('node-a'), await node('node-b'), await node('node-c')]
    for (const n of [a, b, c]) await n.controller.start()
    await waitFor('mesh', () => (peersOf(a).size === 2) || undefined, 5_000, 5)
    const keyB = await publicKeyOf(b)
    const keyC = await publicKeyOf(c)

    fx.site.setLiveness(b.id, 'dead')
    await a.controller.reconcile()
    let status = await a.controller.refresh()
    expect(status.peers.find((p) => p.peerId === b.id)).toMatchObject({ liveness: 'dead', up: false })
    expect(peersOf(a).has(keyB)).toBe(true)

    // A handshake within the stale window makes a peer up.
    a.driver.handshake('kairos0', keyC, Math.floor(fx.clock.now() / 1000) - 2, { rx: 100, tx: 200 })
    status = await a.controller.refresh()
    expect(status.peers.find((p) => p.peerId === c.id)).toMatchObject({ up: true, rxBytes: 100, txBytes: 200, latestHandshake: (Math.floor(fx.clock.now() / 1000) - 2) * 1000 })
    // Older than the stale window but idle, nothing sent since: still up.
    fx.clock.advance(TIMING.vpnHandshakeStaleMs + 3_000)
    await a.controller.reconcile()
    status = await a.controller.refresh()
    expect(status.peers.find((p) => p.peerId === c.id)?.up).toBe(true)
    // A send that waits on a new handshake for WAITING_GRACE_MS makes it down.
    a.driver.handshake('kairos0', keyC, Math.floor(fx.clock.now() / 1000) - 15, { rx: 100, tx: 348 })
    await a.controller.reconcile()
    fx.clock.advance(WAITING_GRACE_MS - 1)
    expect((await a.controller.refresh()).peers.find((p) => p.peerId === c.id)?.up).toBe(true)
    fx.clock.advance(1)
    expect((await a.controller.refresh()).peers.find((p) => p.peerId === c.id)?.up).toBe(false)

    // A dead owner is down even right after a handshake.
    a.driver.handshake('kairos0', keyB, Math.floor(fx.clock.now() / 1000))
    expect((await a.controller.refresh()).peers.find((p) => p.peerId === b.id)?.up).toBe(false)

    await c.controller.stop()
    await fx.site.node(c.id).put(VPN_ADVERT_KEY, null)
    await waitFor('prune', () => (!peersOf(a).has(keyC) && !peersOf(b).has(keyC)) || undefined, 5_000, 5)
    expect(peersOf(a).has(keyB)).toBe(true)
    expect((await a.controller.refresh()).peers.map((p) => p.peerId)).toEqual([b.id])
  })

  it('keeps key, address and interface across a restart, and republishes nothing', async () => {
    const a = await node('node-a')
    const b = await node('node-b')
    await a.controller.start()
    await b.controller.start()
    await waitFor('mesh', () => (peersOf(a).size === 1) || undefined, 5_000, 5)
    const before = await a.controller.refresh()
    const puts = fx.site.node('node-a').puts
    await a.controller.stop()
    await a.controller.stop() // idempotent

    const again = await node('node-a', { dir: a.dir, driver: a.driver, host: 11 })
    const calls = a.driver.calls.length
    await again.controller.start()
    const after = await again.controller.refresh()
    expect(after.address).toBe(before.address)
    expect(after.publicKey).toBe(before.publicKey)
    expect(fx.site.node('node-a').puts).toBe(puts)
    // Same interface, same peers: ensure is a no-op and no peer is touched.
    const newCalls = a.driver.calls.slice(calls)
    expect(newCalls.filter((c) => c.op === 'setPeers' && (c.peers.length > 0 || c.remove.length > 0))).toEqual([])
    expect(peersOf(a).size).toBe(1)

    // A fresh start on an empty state dir is a different node identity-wise: new key.
    const other = await node('node-a2')
    await other.controller.start()
    expect((await other.controller.refresh()).publicKey).not.toBe(before.publicKey)
  })

  it('takes its claim back from its advert in the state when the claim file is gone', async () => {
    const net = parseOverlayCidr(VPN.cidr)
    const a = await node('node-a')
    const held = { address: overlayCandidate(net, 'node-a', 2), attempt: 2 }
    await saveClaim(a.dir, { cidr: net.cidr, ...held })
    await a.controller.start()
    expect((await a.controller.refresh()).address).toBe(held.address)
    await a.controller.stop()
    await rm(join(a.dir, 'vpn', 'claim.json'))
    const again = await node('node-a', { dir: a.dir, driver: a.driver, host: 11 })
    await again.controller.start()
    expect((await again.controller.refresh()).address).toBe(held.address)
  })

  it('settles a claim conflict: the lower-ranked claim moves, the other stays', async () => {
    const net = parseOverlayCidr(VPN.cidr)
    const pair = collidingPeerIds(net, seededRandom(77))
    const address = overlayCandidate(net, pair[0], 0)
    const [winner, loser] = compareClaims({ peerId: pair[0], address, attempt: 0 }, { peerId: pair[1], address, attempt: 0 }) < 0 ? pair : [pair[1], pair[0]]
    const w = await node(winner)
    const l = await node(loser)
    // Both claimed the address while they could not see each other.
    await saveClaim(w.dir, { cidr: net.cidr, address, attempt: 0 })
    await saveClaim(l.dir, { cidr: net.cidr, address, attempt: 0 })
    const moves: Array<{ from: { address: string }, to: { address: string } }> = []
    l.controller.addEventListener('address:moved', (e) => { moves.push(e.detail) })
    w.controller.addEventListener('address:moved', () => { throw new Error('the winner must not move') })
    await l.controller.start()
    expect((await l.controller.refresh()).address).toBe(address)
    await w.controller.start()
    await waitFor('loser moves', () => (moves.length === 1) || undefined, 5_000, 5)
    expect(moves[0]?.from.address).toBe(address)
    const ws = await w.controller.refresh()
    await waitFor('mesh after move', async () => ((await l.controller.refresh()).address !== address && peersOf(w).size === 1 && peersOf(l).size === 1) || undefined, 5_000, 5)
    const ls = await l.controller.refresh()
    expect(ws.address).toBe(address)
    expect(ls.address).not.toBe(address)
    expect(peersOf(w).get(ls.publicKey ?? '')).toEqual([`${ls.address ?? ''}/32`])
    expect(l.driver.interfaces.get('kairos0')?.spec.address).toBe(`${ls.address ?? ''}/24`)
    // The move is persisted: a restart keeps the new address.
    await l.controller.stop()
    const again = await node(loser, { dir: l.dir, driver: l.driver })
    await again.controller.start()
    expect((await again.controller.refresh()).address).toBe(ls.address)
  })

  it('status() answers at once from the last wg reading and refreshes it in the background', async () => {
    const { a, keyB } = await meshedPair()
    a.driver.handshake('kairos0', keyB, Math.floor(fx.clock.now() / 1000))
    await a.controller.refresh()
    a.driver.handshake('kairos0', keyB, Math.floor(fx.clock.now() / 1000), { rx: 7, tx: 9 })
    expect(a.controller.status().peers[0]?.rxBytes).toBe(0) // the reading is fresh enough: no new wg call
    fx.clock.advance(1_500)
    expect(a.controller.status().peers[0]?.rxBytes).toBe(0) // stale: returns at once, refreshes behind
    await waitFor('background refresh', () => (a.controller.status().peers[0]?.rxBytes === 7) || undefined, 5_000, 5)
    expect(a.controller.status().peers[0]).toMatchObject({ peerId: 'node-b', up: true, txBytes: 9 })
  })

  it('warns about a live member whose peer never completed a handshake a minute after it was configured', async () => {
    const a = await node('node-a')
    const b = await node('node-b')
    const c = await node('node-c')
    for (const n of [a, b, c]) await n.controller.start()
    await waitFor('mesh', () => (peersOf(a).size === 2) || undefined, 5_000, 5)
    const keyB = await publicKeyOf(b)
    expect((await a.controller.refresh()).warnings).toEqual([]) // just configured: WireGuard still retries
    fx.clock.advance(30_000)
    a.driver.handshake('kairos0', keyB, Math.floor(fx.clock.now() / 1000))
    fx.clock.advance(31_000)
    const s = await a.controller.refresh()
    expect(s.warnings).toHaveLength(1)
    expect(s.warnings[0]).toMatch(/^1 overlay peer of live members never completed a WireGuard handshake \(configured up to 61 s ago\): node-c at 192\.168\.1\.\d+:51820; check that UDP/)
    a.driver.handshake('kairos0', await publicKeyOf(c), Math.floor(fx.clock.now() / 1000))
    expect((await a.controller.refresh()).warnings).toEqual([])
  })

  it('20 nodes booting at once in a /24 end with unique addresses and a full mesh', async () => {
    const net = parseOverlayCidr(VPN.cidr)
    const rng = seededRandom(2024)
    let ids: string[] = []
    // Pick identities whose first choices collide, so the race has to be settled.
    do ids = Array.from({ length: 20 }, () => randomPeerId(rng))
    while (new Set(ids.map((id) => overlayCandidate(net, id, 0))).size === ids.length)
    const nodes = await Promise.all(ids.map(async (id, i) => await node(id, { host: 30 + i })))
    let moves = 0
    for (const n of nodes) n.controller.addEventListener('address:moved', () => { moves++ })
    // Every node claims its address before any advert is visible, as on a real boot.
    const held = fx.site.hold()
    const started = Promise.all(nodes.map(async (n) => { await n.controller.start() }))
    await waitFor('every node publishing its first advert', () => (held.waiting() === nodes.length) || undefined, 10_000, 5)
    held.release()
    await started
    await waitFor('full mesh of 20', () => (nodes.every((n) => peersOf(n).size === 19)) || undefined, 10_000, 5)
    expect(moves).toBeGreaterThan(0) // the race really happened and was settled by moving
    await waitFor('unique addresses', () => (new Set(nodes.map((n) => n.controller.status().address)).size === 20) || undefined, 10_000, 5)
    const statuses = nodes.map((n) => n.controller.status())
    for (const [i, n] of nodes.entries()) {
      expect(n.driver.interfaces.get('kairos0')?.spec.address).toBe(`${statuses[i]?.address ?? ''}/24`)
      for (const [j, other] of statuses.entries()) {
        if (i !== j) expect(peersOf(n).get(other.publicKey ?? '')).toEqual([`${other.address ?? ''}/32`])
      }
    }
  })

  it('recreates the interface when wireguard-go dies', async () => {
    const a = await node('node-a')
    const b = await node('node-b')
    await a.controller.start()
    await b.controller.start()
    await waitFor('mesh', () => (peersOf(a).size === 1) || undefined, 5_000, 5)
    a.driver.crash('kairos0')
    expect(a.driver.interfaces.has('kairos0')).toBe(false)
    await waitFor('interface restored with its peers', () => (peersOf(a).size === 1) || undefined, 5_000, 5)
  })

  it('rotates a silent peer through its endpoints', async () => {
    const { a, keyB } = await meshedPair({ hostAddresses: twoSubnets })
    const endpoint = (): string | undefined => a.driver.interfaces.get('kairos0')?.peers.get(keyB)?.endpoint
    expect(endpoint()).toBe('192.168.1.20:51820') // same subnet first
    await a.controller.reconcile()
    expect(endpoint()).toBe('192.168.1.20:51820')
    fx.clock.advance(TIMING.vpnHandshakeStaleMs)
    await a.controller.reconcile()
    expect(endpoint()).toBe('172.16.0.20:51820')
    // Once a handshake happened the endpoint WireGuard uses is left alone.
    a.driver.handshake('kairos0', keyB, Math.floor(fx.clock.now() / 1000))
    fx.clock.advance(TIMING.vpnHandshakeStaleMs)
    await a.controller.reconcile()
    expect(endpoint()).toBe('172.16.0.20:51820')
  })

  it('keeps no keepalive towards a handshaken peer on its own subnet, leaves it alone while idle, and repairs it once a send waits', async () => {
    const { a, keyB } = await meshedPair({ hostAddresses: twoSubnets })
    const peer = (): { endpoint?: string, keepalive: number } | undefined => a.driver.interfaces.get('kairos0')?.peers.get(keyB)
    const upB = async (): Promise<boolean | undefined> => (await a.controller.refresh()).peers[0]?.up
    // No handshake yet: the keepalive keeps WireGuard initiating.
    expect(peer()).toMatchObject({ endpoint: '192.168.1.20:51820', keepalive: 25 })
    a.driver.handshake('kairos0', keyB, Math.floor(fx.clock.now() / 1000), { rx: 92, tx: 148 })
    await a.controller.reconcile()
    expect(peer()?.keepalive).toBe(0)
    // Idle far past the stale window: up, same endpoint, no keepalive.
    for (let i = 0; i < 3; i++) { fx.clock.advance(TIMING.vpnHandshakeStaleMs); await a.controller.reconcile() }
    expect(peer()).toMatchObject({ endpoint: '192.168.1.20:51820', keepalive: 0 })
    expect(await upB()).toBe(true)
    // A send that gets no handshake: down after the grace, and repaired like a silent peer (keepalive on, next endpoint).
    a.driver.handshake('kairos0', keyB, Math.floor((fx.clock.now() - 3 * TIMING.vpnHandshakeStaleMs) / 1000), { rx: 92, tx: 296 })
    await a.controller.reconcile()
    expect(await upB()).toBe(true)
    fx.clock.advance(WAITING_GRACE_MS)
    await a.controller.reconcile()
    expect(await upB()).toBe(false)
    expect(peer()).toMatchObject({ endpoint: '172.16.0.20:51820', keepalive: 25 })
    // Its new handshake settles it again.
    a.driver.handshake('kairos0', keyB, Math.floor(fx.clock.now() / 1000), { rx: 184, tx: 444 })
    await a.controller.reconcile()
    expect(await upB()).toBe(true)
    expect(peer()?.keepalive).toBe(25) // now reached on a routed path: the keepalive stays
  })

  it('keeps the keepalive towards a peer on its own subnet that WireGuard hears from another address (behind NAT)', async () => {
    const { a, keyB } = await meshedPair()
    const dumped = a.driver.interfaces.get('kairos0')?.peers.get(keyB)
    if (dumped === undefined) throw new Error('no peer')
    dumped.endpoint = '192.168.1.1:40312'
    a.driver.handshake('kairos0', keyB, Math.floor(fx.clock.now() / 1000), { rx: 92, tx: 148 })
    await a.controller.reconcile()
    expect(a.driver.interfaces.get('kairos0')?.peers.get(keyB)).toMatchObject({ endpoint: '192.168.1.1:40312', keepalive: 25 })
  })

  it('survives a driver failure at start and retries', async () => {
    const driver = createFakeWireGuardDriver()
    driver.failNext('ensureInterface', new Error('wireguard-go: not found'))
    const a = await node('node-a', { driver })
    await a.controller.start()
    expect((await a.controller.refresh()).lastError).toContain('not found')
    const up = a.controller.whenUp()
    await fx.clock.advanceAsync(100)
    expect((await up).interface).toBe('kairos0')
    await waitFor('recovery', async () => ((await a.controller.refresh()).lastError === undefined) || undefined, 5_000, 5)
  })

  it('with vpn.create false it configures and publishes nothing', async () => {
    const a = await node('node-a', { extra: { vpn: { ...VPN, create: false } } })
    await a.controller.start()
    expect(a.driver.calls).toEqual([])
    expect(fx.site.node('node-a').puts).toBe(0)
  })

  it('rejects a bad config at start with the key path', async () => {
    const a = await node('node-a', { extra: { vpn: { ...VPN, cidr: '10.88.7.1/24' } } })
    await expect(a.controller.start()).rejects.toMatchObject({ name: 'OverlayCidrError' })
    const b = await node('node-b', { extra: { vpn: { ...VPN, interface: 'an-interface-name-too-long' } } })
    await expect(b.controller.start()).rejects.toMatchObject({ name: 'InterfaceNameError', message: expect.stringContaining('vpn.interface') })
  })

  it('stop() is prompt and ends reconciling', async () => {
    const a = await node('node-a')
    await a.controller.start()
    await a.controller.stop()
    const calls = a.driver.calls.length
    const b = await node('node-b')
    await b.controller.start()
    await new Promise<void>((resolve) => { setImmediate(resolve) })
    expect(a.driver.calls.length).toBe(calls)
    expect(a.driver.interfaces.has('kairos0')).toBe(true) // the interface stays up
  })
})

describe('createVpnController with the exec driver on fake ip / wg / wireguard-go', () => {
  const tick = 1_000
  let tools: FakeTools
  let driver: ExecWireGuardDriver
  /** wireguard-go PIDs this test started that the driver no longer tracks. */
  let orphans: number[]

  beforeEach(async () => {
    tools = await createFakeTools()
    driver = createWireGuardDriver({ ip: tools.ip, wg: tools.wg, wireguardGo: tools.wireguardGo, uapiDir: false, processStopTimeoutMs: 500 })
    orphans = []
  })
  afterEach(async () => {
    for (const c of fx.controllers) await c.stop()
    for (const pid of [...driver.processes().map((p) => p.pid), ...orphans]) { try { process.kill(pid, 'SIGTERM') } catch {} }
    await driver.close()
    await tools.cleanup()
  })

  /** Node a with one peer (node-b) in the state; every pass's result is recorded. */
  async function withPeer (extra: Partial<VpnControllerInit> = {}): Promise<{ controller: VpnController, results: ReconcileResult[], keyB: string }> {
    const net = parseOverlayCidr(VPN.cidr)
    const keyB = generateKeyPair().publicKey
    fx.site.inject('node-b', VPN_ADVERT_KEY, advertValue({ publicKey: keyB, port: 51820, endpoints: ['192.168.1.20:51820'], address: overlayCandidate(net, 'node-b', 0), attempt: 0 }))
    const dir = await mkdtemp(join(tmpdir(), 'kairos-vpn-ctl-'))
    fx.dirs.push(dir)
    const controller = createVpnController({
      vpn: VPN, timing: { ...TIMING, vpnReconcileMs: tick }, state: fx.site.node('node-a'), driver, stateDir: dir, clock: fx.clock, coalesceMs: 0,
      hostAddresses: () => [{ interface: 'eth0', address: '192.168.1.10', family: 'IPv4', prefixLength: 24, internal: false }],
      ...extra
    })
    fx.controllers.push(controller)
    const results: ReconcileResult[] = []
    controller.addEventListener('reconcile', (e) => { results.push(e.detail) })
    await controller.start()
    expect(results).toHaveLength(1)
    return { controller, results, keyB }
  }

  /** Moves the clock by `ms` and returns the commands of the pass that wakes up. */
  async function pass (results: ReconcileResult[], ms: number): Promise<{ result: ReconcileResult | undefined, commands: string[] }> {
    const before = (await tools.commands()).length
    const count = results.length
    await fx.clock.advanceAsync(ms)
    await waitFor('a reconcile pass', () => (results.length > count) || undefined, 5_000, 5)
    return { result: results.at(-1), commands: (await tools.commands()).slice(before).map((c) => c.join(' ')) }
  }

  /** A nudge re-creates the peer as configured (endpoint, keepalive, allowed IPs). */
  const nudgeOf = (key: string): string => `wg set kairos0 peer ${key} remove peer ${key} endpoint 192.168.1.20:51820 persistent-keepalive 25 allowed-ips `

  it('an idle tick runs one wg show; a change, drift or the periodic check runs the full path', async () => {
    // Without the confirming keepalives after the first handshake (tested on their own below).
    const { results, keyB } = await withPeer({ interfaceCheckMs: 5 * tick, nudgeConfirms: 0 })
    await tools.handshake('kairos0', keyB, Math.floor(fx.clock.now() / 1000))
    const show = 'wg show kairos0 dump'
    // Before, every tick ran `ip link show`, `wg show`, `ip address show` and `wg show` again.
    // The full check asks `ip` once, for the link and its addresses together.
    // The first pass after the handshake turns the keepalive off (a peer on our subnet), once.
    const keepaliveOff = `wg set kairos0 peer ${keyB} persistent-keepalive off allowed-ips ${(await driver.show('kairos0'))?.peers[0]?.allowedIps.join(',') ?? ''}`
    for (let i = 1; i <= 4; i++) {
      const { result, commands } = await pass(results, tick)
      expect(commands).toEqual(i === 1 ? [show, keepaliveOff] : [show])
      expect(result).toMatchObject({ peers: 1, added: 0, updated: i === 1 ? 1 : 0, removed: 0, nudged: 0, ensured: false })
    }
    // interfaceCheckMs elapsed: the full check, which finds nothing to change.
    const periodic = await pass(results, tick)
    expect(periodic.result?.ensured).toBe(true)
    expect(periodic.commands).toEqual(['ip -d -j -4 address show dev kairos0', show, show])
    expect((await pass(results, tick)).commands).toEqual([show])

    // The interface vanishes behind our back (no process exit): rebuilt on the next tick, peer included.
    const [old] = driver.processes()
    orphans.push(old?.pid ?? 0)
    await rm(join(tools.dir, 'link-kairos0'))
    const rebuilt = await pass(results, tick)
    expect(rebuilt.result).toMatchObject({ ensured: true, added: 1 })
    expect(rebuilt.commands[0]).toBe(show)
    expect(rebuilt.commands).toContain('wireguard-go kairos0')
    expect(rebuilt.commands.filter((c) => c.startsWith(`wg set kairos0 peer ${keyB} endpoint 192.168.1.20:51820`))).toHaveLength(1)
    await tools.handshake('kairos0', keyB, Math.floor(fx.clock.now() / 1000))
    expect((await pass(results, tick)).commands).toEqual([show, keepaliveOff])
    expect((await pass(results, tick)).commands).toEqual([show])

    // A new peer in the state: one wg show and one wg set, no interface check.
    const keyC = generateKeyPair().publicKey
    // Counted before the advert lands: it wakes the loop at once, which may run its wg show before we look.
    const count = results.length
    const before = (await tools.commands()).length
    fx.site.inject('node-c', VPN_ADVERT_KEY, advertValue({ publicKey: keyC, port: 51820, endpoints: ['192.168.1.30:51820'], address: overlayCandidate(parseOverlayCidr(VPN.cidr), 'node-c', 0), attempt: 0 }))
    await waitFor('the pass woken by the new advert', () => (results.length > count) || undefined, 5_000, 5)
    expect(results.at(-1)).toMatchObject({ peers: 2, added: 1, ensured: false })
    expect((await tools.commands()).slice(before).map((c) => c.slice(0, 5).join(' '))).toEqual([show, `wg set kairos0 peer ${keyC}`])
  })

  it('a burst of new adverts is applied by one pass after the coalescing delay', async () => {
    const { results, keyB } = await withPeer({ coalesceMs: 250, timing: { vpnReconcileMs: 60_000, vpnHandshakeStaleMs: 600_000 }, interfaceCheckMs: 600_000, nudgeAttempts: 0, nudgeConfirms: 0 })
    await tools.handshake('kairos0', keyB, Math.floor(fx.clock.now() / 1000))
    const net = parseOverlayCidr(VPN.cidr)
    const before = (await tools.commands()).length
    const keys = ['node-c', 'node-d', 'node-e'].map((id, i) => {
      const key = generateKeyPair().publicKey
      fx.site.inject(id, VPN_ADVERT_KEY, advertValue({ publicKey: key, port: 51820, endpoints: [`192.168.1.${30 + i}:51820`], address: overlayCandidate(net, id, 0), attempt: 0 }))
      return key
    })
    const settle = async (): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, 50)) }
    await settle() // the woken loop starts its coalescing wait
    await fx.clock.advanceAsync(249)
    await settle()
    expect(results).toHaveLength(1)
    const { result, commands } = await pass(results, 1)
    expect(result).toMatchObject({ peers: 4, added: 3 })
    expect(commands.map((c) => c.split(' ').slice(0, 3).join(' '))).toEqual(['wg show kairos0', 'wg set kairos0'])
    for (const key of keys) expect(commands[1]).toContain(`peer ${key} endpoint`)
  })

  it('nudges a peer without a handshake 1 s after adding it, then every 2 s, four times in all here, then leaves it to WireGuard', async () => {
    const { results, keyB } = await withPeer({ timing: { vpnReconcileMs: 60_000, vpnHandshakeStaleMs: 600_000 }, interfaceCheckMs: 600_000, nudgeAttempts: 4 })
    const added = results[0]?.at ?? 0
    const nudges: number[] = []
    for (const ms of [1_000, 2_000, 2_000, 2_000]) {
      const { result, commands } = await pass(results, ms) // the loop wakes for the nudge, not for the 60 s ticker
      expect(result?.nudged).toBe(1)
      expect(commands).toHaveLength(2)
      expect(commands[0]).toBe('wg show kairos0 dump')
      expect(commands[1]).toContain(nudgeOf(keyB))
      nudges.push((result?.at ?? 0) - added)
    }
    expect(nudges).toEqual([1_000, 3_000, 5_000, 7_000])
    const { result, commands } = await pass(results, 60_000)
    expect(result?.at).toBe(added + 67_000) // nothing woke the loop before its ticker
    expect(result?.nudged).toBe(0)
    expect(commands).toEqual(['wg show kairos0 dump'])
  })

  it('a peer heard from (an initiation we answered) is nudged without being re-created: it may hold the session the other side uses', async () => {
    const { results, keyB } = await withPeer({ timing: { vpnReconcileMs: 60_000, vpnHandshakeStaleMs: 600_000 }, interfaceCheckMs: 600_000 })
    await tools.setDumpPeers('kairos0', [[keyB, '(none)', '192.168.1.20:51820', (await driver.show('kairos0'))?.peers[0]?.allowedIps.join(',') ?? '', '0', '148', '92', '25'].join('\t')])
    const { result, commands } = await pass(results, 1_000)
    expect(result?.nudged).toBe(1)
    expect(commands).toEqual(['wg show kairos0 dump', `wg set kairos0 peer ${keyB} persistent-keepalive off peer ${keyB} persistent-keepalive 25`])
  })

  it('after the first handshake of a nudged peer, sends it confirming keepalives (plain nudges) one per gap, then stops', async () => {
    const { results, keyB } = await withPeer({ timing: { vpnReconcileMs: 60_000, vpnHandshakeStaleMs: 600_000 }, interfaceCheckMs: 600_000, nudgeConfirms: 2 })
    expect((await pass(results, 1_000)).commands.some((c) => c.startsWith(nudgeOf(keyB)))).toBe(true)
    await tools.handshake('kairos0', keyB, Math.floor(fx.clock.now() / 1000))
    // Handshaken on our subnet: its keepalive goes off, so a plain nudge turns it on and off again.
    const plain = `wg set kairos0 peer ${keyB} persistent-keepalive off peer ${keyB} persistent-keepalive 1 peer ${keyB} persistent-keepalive off`
    for (const [i, ms] of [2_000, 2_000].entries()) {
      const { result, commands } = await pass(results, ms)
      expect(result?.nudged).toBe(1)
      expect(commands).toEqual(['wg show kairos0 dump', ...(i === 0 ? [expect.stringMatching(new RegExp(`^wg set kairos0 peer ${keyB.replace(/[+/]/g, '\\$&')} persistent-keepalive off allowed-ips `))] : []), plain])
    }
    const next = await pass(results, 60_000)
    expect(next.result?.nudged).toBe(0)
  })

  it('a peer that handshook before its first nudge (WireGuard\'s own initiation) gets the confirming keepalives too', async () => {
    const { results, keyB } = await withPeer({ timing: { vpnReconcileMs: 60_000, vpnHandshakeStaleMs: 600_000 }, interfaceCheckMs: 600_000, nudgeConfirms: 2 })
    await tools.handshake('kairos0', keyB, Math.floor(fx.clock.now() / 1000))
    const plain = `wg set kairos0 peer ${keyB} persistent-keepalive off peer ${keyB} persistent-keepalive 1 peer ${keyB} persistent-keepalive off`
    let sent = 0
    for (const ms of [1_000, 2_000]) {
      const { result, commands } = await pass(results, ms)
      expect(commands.filter((c) => c.startsWith(nudgeOf(keyB)))).toEqual([])
      if (commands.includes(plain)) { sent++; expect(result?.nudged).toBe(1) }
    }
    expect(sent).toBe(2)
    expect((await pass(results, 60_000)).result?.nudged).toBe(0)
  })

  it('stops nudging once the peer has a handshake', async () => {
    const { results, keyB } = await withPeer({ timing: { vpnReconcileMs: 60_000, vpnHandshakeStaleMs: 600_000 }, interfaceCheckMs: 600_000, nudgeConfirms: 0 })
    expect((await pass(results, 1_000)).commands.some((c) => c.startsWith(nudgeOf(keyB)))).toBe(true)
    await tools.handshake('kairos0', keyB, Math.floor(fx.clock.now() / 1000))
    const { result, commands } = await pass(results, 2_000)
    expect(result?.nudged).toBe(0)
    expect(commands).toEqual(['wg show kairos0 dump', expect.stringContaining(`peer ${keyB} persistent-keepalive off allowed-ips `)])
    const next = await pass(results, 60_000)
    expect(next.result?.at).toBe((result?.at ?? 0) + 60_000)
    expect(next.commands).toEqual(['wg show kairos0 dump'])
  })
})
