import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { ManualClock } from '../../util/clock.ts'
import { silentLogger } from '../../util/log.ts'
import { createDialler, type DialNetwork, type Dialler } from '../../p2p/dialler.ts'
import { createLoops } from '../../p2p/loops.ts'
import { createMembership } from '../../p2p/membership.ts'
import { meshLinks } from '../../p2p/mesh.ts'
import { loadPeerBook } from '../../p2p/peer-book.ts'
import { LAB, flush, peerIds } from './fake-net.ts'

/** A network where a dial succeeds unless the peer is cut off; it remembers who was dialled. */
class FakeDialNet implements DialNetwork {
  readonly open = new Set<string>()
  readonly dialled: string[] = []
  readonly down = new Set<string>()
  connections = (peer: string): number => this.open.has(peer) ? 1 : 0
  openConnections = (peer: string): number => this.connections(peer)
  dial = async (peer: string, addresses: string[]): Promise<number> => {
    this.dialled.push(peer)
    await Promise.resolve()
    if (this.down.has(peer)) throw new Error(`connection refused by ${peer.slice(-4)}`)
    this.open.add(peer)
    return addresses.length
  }

  dialAddress = async (): Promise<void> => {}
  outbound = (): [] => []
}

describe('dialler on a fake network', () => {
  const dirs: string[] = []
  let controller = new AbortController()
  afterEach(async () => {
    controller.abort()
    await Promise.all(dirs.splice(0).map(async (d) => { await rm(d, { recursive: true, force: true, maxRetries: 5 }) }))
  })

  const setup = async (options: { links?: number, maxCandidates?: number } = {}): Promise<{ dialler: Dialler, net: FakeDialNet, self: string, clock: ManualClock, membership: ReturnType<typeof createMembership> }> => {
    controller = new AbortController()
    const dir = await mkdtemp(join(tmpdir(), 'kp2p-dialler-'))
    dirs.push(dir)
    const [self] = await peerIds(1) as [string]
    const clock = new ManualClock(1_000_000)
    const net = new FakeDialNet()
    const membership = createMembership({ timing: LAB, self, incarnation: 1 })
    const dialler = createDialler({
      self,
      clock,
      log: silentLogger,
      timing: LAB,
      network: net,
      book: await loadPeerBook(dir, silentLogger),
      membership,
      // Every open connection here passed admission.
      admitted: net.open,
      bootstrap: [],
      linkCount: options.links ?? 2,
      dialTimeoutMs: 1_000,
      ...(options.maxCandidates === undefined ? {} : { maxCandidates: options.maxCandidates })
    })
    dialler.start(controller.signal, createLoops(clock, controller.signal, silentLogger))
    return { dialler, net, self, clock, membership }
  }

  it('dials its ring links among the peers it learns of, not every peer', async () => {
    const { dialler, net, self, clock } = await setup({ links: 2 })
    const peers = await peerIds(8)
    for (const p of peers) dialler.learn(p, [`/ip4/127.0.0.1/tcp/${4000 + peers.indexOf(p)}`], 'mdns')
    // Past the yield a lower-id mutual link gets before we dial it.
    await flush()
    await clock.advanceAsync(300)
    await flush()
    const links = meshLinks(self, peers, 2)
    for (const l of links) expect(net.open.has(l)).toBe(true)
    // While a mutual link waits for the lower id to dial, the next peer along the ring may fill in: never more than that.
    expect(net.open.size).toBeLessThanOrEqual(2 * links.length)
    expect(net.open.size).toBeLessThan(peers.length)
  })

  it('a member held dead is dialled again once it is sighted (a partition healed), and not before', async () => {
    const { dialler, net, clock, membership } = await setup({ links: 2 })
    const [peer] = await peerIds(1) as [string]
    membership.learn(peer, clock.now())
    membership.rumour({ peer, state: 'dead', incarnation: 1 }, clock.now())
    expect(membership.get(peer)?.liveness).toBe('dead')
    // The redial round does not dial a dead member by itself.
    await dialler.redial()
    for (let i = 0; i < 5; i++) { await flush(); await clock.advanceAsync(100) }
    expect(net.dialled).not.toContain(peer)
    // Its mDNS answer arrives: it is dialled like a newcomer.
    dialler.learn(peer, ['/ip4/127.0.0.1/tcp/4001'], 'mdns')
    for (let i = 0; i < 5; i++) { await flush(); await clock.advanceAsync(100) }
    expect(net.dialled).toContain(peer)
    expect(net.open.has(peer)).toBe(true)
  })

  it('a failed dial holds the peer off a fifth of the redial interval at first, doubling with each failure in a row', async () => {
    const { dialler, net, clock } = await setup({ links: 1 })
    const [peer] = await peerIds(1) as [string]
    net.down.add(peer)
    dialler.learn(peer, ['/ip4/127.0.0.1/tcp/4001'], 'mdns')
    // Dialled at once, or after the yield a lower-id mutual link gets.
    for (let i = 0; i < 40 && !net.dialled.includes(peer); i++) { await clock.advanceAsync(10); await flush() }
    const first = clock.now()
    expect(net.dialled.filter((p) => p === peer)).toHaveLength(1)
    expect(dialler.holdingOff(peer, first + LAB.redialIntervalMs * 0.2 - 1)).toBe(true)
    expect(dialler.holdingOff(peer, first + LAB.redialIntervalMs * 0.2 + 1)).toBe(false)
    // Dialled again when the hold-off ends, without waiting for the redial round; held off twice as long.
    for (let i = 0; i < 3; i++) { await clock.advanceAsync(LAB.redialIntervalMs * 0.1 + 1); await flush() }
    expect(net.dialled.filter((p) => p === peer)).toHaveLength(2)
    // The second failure came as the first hold-off ended: held off until 0.2 + 0.4 redial intervals after the first.
    expect(dialler.holdingOff(peer, first + LAB.redialIntervalMs * 0.6 - 10)).toBe(true)
    expect(dialler.holdingOff(peer, first + LAB.redialIntervalMs * 0.6 + 10)).toBe(false)
    // Up again: the next dial gets through and the count of failures starts over.
    net.down.delete(peer)
    for (let i = 0; i < 10; i++) { await clock.advanceAsync(LAB.redialIntervalMs * 0.1); await flush() }
    expect(net.open.has(peer)).toBe(true)
  })

  it('a peer whose dial fails is held off and the next peer along the ring takes its place', async () => {
    const { dialler, net, self, clock } = await setup({ links: 2 })
    const peers = await peerIds(8)
    const links = meshLinks(self, peers, 2)
    net.down.add(links[0] as string)
    for (const p of peers) dialler.learn(p, ['/ip4/127.0.0.1/tcp/4001'], 'mdns')
    for (let i = 0; i < 5; i++) { await flush(); await clock.advanceAsync(100) }
    expect(dialler.holdingOff(links[0] as string, clock.now())).toBe(true)
    // The other link, and a peer further along the ring in place of the failed one.
    expect(net.open.has(links[1] as string)).toBe(true)
    expect(net.open.size).toBeGreaterThanOrEqual(2)
    expect(net.open.size).toBeLessThanOrEqual(4)
    expect(dialler.stats().failed).toBeGreaterThanOrEqual(1)
  })

  it('keeps a bounded candidate list: a flood of made-up ids is dropped and counted, and a failed candidate makes room', async () => {
    const { dialler, net, clock } = await setup({ links: 1, maxCandidates: 4 })
    const flood = await peerIds(12)
    for (const p of flood) net.down.add(p)
    for (const p of flood) dialler.learn(p, ['/ip4/127.0.0.1/tcp/4001'], 'mdns')
    expect(dialler.candidates().length).toBeLessThanOrEqual(4)
    expect(dialler.stats().candidatesDropped).toBeGreaterThan(0)
    // Their dials fail, so they are held off; an honest peer found later gets a place and a dial.
    for (let i = 0; i < 5; i++) { await flush(); await clock.advanceAsync(100) }
    const [honest] = await peerIds(1) as [string]
    dialler.learn(honest, ['/ip4/127.0.0.1/tcp/4002'], 'mdns')
    expect(dialler.candidates()).toContain(honest)
    // The flood is held off after its failed dials: still candidates, no longer pending.
    expect(dialler.pending()).toEqual([honest])
    for (let i = 0; i < 5; i++) { await flush(); await clock.advanceAsync(100) }
    expect(net.open.has(honest)).toBe(true)
  })
})
