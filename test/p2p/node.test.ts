import { afterEach, describe, expect, it } from 'vitest'
import type { Member, P2PNode } from '../../p2p/index.ts'
import { Cluster, alivePeers, fullyAdmitted, labConfig, newToken } from './harness.ts'
import { waitFor } from '../helpers/wait.ts'
import { QUIET_HEARTBEAT_FACTOR } from '../../p2p/heartbeat.ts'
import { MUTUAL_DIAL_YIELD_MS, QUIET_AFTER_DEAD_PERIODS } from '../../p2p/node.ts'

// mDNS is off in most tests (each node would answer every query); one test below
// checks it on loopback, where multicast works on this machine. Elsewhere discovery
// is bootstrap + DHT rendezvous + peer exchange.

/**
 * How long a test waits for a death: the detector's patience stretches its thresholds up to
 * ten times for a peer whose heartbeats came with long gaps (a busy test machine, a quiet site).
 */
// Retried (RETRY): five nodes in one process on a shared 2-core machine. While other
// work loads it (P2P-36 in bench/RESULTS.md: load 30 to 140), they now and then do not
// form within the wait, or a hung node's watchers, crediting their stalls to its timers,
// take longer than the bound. A rumour a node missed no longer waits for a safety round:
// a ring neighbour's heartbeat shows it (P2P-36). Each attempt is still a full check of
// the property, and three failures in a row fail the run.
const RETRY = { retry: 2 } as const
const PATIENT_MS = 10 * labConfig().timing.deadAfterMs + 3_000

/** Three nodes admitted pairwise; `freeze(true)` makes c hang (connections up, silent). */
async function trioWithHangingC (cluster: Cluster): Promise<{ a: P2PNode, b: P2PNode, c: P2PNode, freeze: (on: boolean) => void }> {
  const token = newToken()
  let frozen = false
  const a = await cluster.node(token)
  const boot = [a.addresses()[0] as string]
  const b = await cluster.node(token, { bootstrapPeers: boot })
  const c = await cluster.node(token, { bootstrapPeers: boot }, { hooks: { freeze: () => frozen } })
  const all = [a, b, c]
  await waitFor('all alive and admitted pairwise', () => (all.every((n) => alivePeers(n).length === 2) && fullyAdmitted(all)) || undefined)
  return { a, b, c, freeze: (on) => { frozen = on } }
}

describe('p2p node', () => {
  let cluster: Cluster
  afterEach(async () => { await cluster.close() })

  it('five nodes converge through one bootstrap peer: every member alive everywhere, every entry everywhere', async () => {
    cluster = new Cluster()
    const token = newToken()
    const seed = await cluster.node(token)
    const boot = [seed.addresses()[0] as string]
    const others = await Promise.all([1, 2, 3, 4].map(async () => await cluster.node(token, { bootstrapPeers: boot })))
    const all = [seed, ...others]
    for (const n of all) await n.state.put(`hello/${n.peerId.slice(-4)}`, { from: n.peerId })
    await waitFor('every node sees the 4 others alive', () => (all.every((n) => alivePeers(n).length === 4)) || undefined, 20_000)
    await waitFor('every node holds all 5 entries', () => (all.every((n) => n.state.list('hello/').length === 5)) || undefined, 20_000)
    for (const n of all) {
      expect(alivePeers(n)).toEqual(all.filter((o) => o !== n).map((o) => o.peerId).sort())
      // Token holders never fail the proof (a timeout under heavy machine load is retried by the redial path).
      expect(n.status().admissionFailuresByReason['bad-proof']).toBe(0)
    }
    // Peers beyond the bootstrap node were learned without it dialling them for us.
    const via = new Set(others[3]?.status().peers.map((p) => p.discoveredBy))
    expect(via.has('bootstrap')).toBe(true)
  }, 60_000)

  it('a gossip delta dropped on the way in is repaired by anti-entropy', async () => {
    cluster = new Cluster()
    const token = newToken()
    let dropped = 0
    const a = await cluster.node(token)
    const b = await cluster.node(token, { bootstrapPeers: [a.addresses()[0] as string] }, {
      hooks: { dropGossip: (e) => { if (e.direction === 'in') { dropped++; return true } return false } }
    })
    await waitFor('mutual membership', () => (alivePeers(a).includes(b.peerId) && alivePeers(b).includes(a.peerId)) || undefined)
    // Let the gossip mesh form, so the delta really goes out and is really dropped.
    await a.state.put('probe', 0)
    await waitFor('b repaired the probe', () => (b.state.get(a.peerId, 'probe') !== undefined) || undefined)
    const syncsBefore = b.status().syncs.ok + a.status().syncs.ok
    const puts: Array<Promise<unknown>> = []
    await waitFor('a gossip delta reached b and was dropped', () => { puts.push(a.state.put('probe', dropped)); return (dropped > 0) || undefined }, 10_000)
    await Promise.all(puts)
    await a.state.put('value', { v: 42 })
    await waitFor('b has the value through anti-entropy', () => (b.state.get(a.peerId, 'value') !== undefined) || undefined)
    expect(b.state.get(a.peerId, 'value')?.value).toEqual({ v: 42 })
    expect(b.status().syncs.ok + a.status().syncs.ok).toBeGreaterThan(syncsBefore)
  })

  it('an entry whose gossip reached nobody is pushed by a sync at once, not left to anti-entropy', async () => {
    cluster = new Cluster()
    const token = newToken()
    // Anti-entropy ticks once in ten minutes here: only the catch-up sync can deliver within the test.
    const slowAntiEntropy = { timing: { ...labConfig().timing, antiEntropyIntervalMs: 600_000 } }
    let withheld = 0
    const a = await cluster.node(token, slowAntiEntropy, {
      hooks: { dropGossip: (e) => { if (e.direction === 'out') { withheld++; return true } return false } }
    })
    const b = await cluster.node(token, { ...slowAntiEntropy, bootstrapPeers: [a.addresses()[0] as string] })
    await waitFor('mutual membership', () => (alivePeers(a).includes(b.peerId) && alivePeers(b).includes(a.peerId)) || undefined)
    // The exchange on admission is over: what a holds now, b holds.
    await waitFor('the admission sync', () => (a.status().syncs.ok > 0 && b.status().syncs.ok > 0) || undefined)
    const syncsBefore = a.status().syncs.ok
    await a.state.put('credential/for-b', { sealed: 'x' })
    await a.state.put('roles/status', { phase: 'installing' })
    await waitFor('b holds both entries', () => (b.state.get(a.peerId, 'credential/for-b') !== undefined && b.state.get(a.peerId, 'roles/status') !== undefined) || undefined, 5_000)
    expect(withheld).toBeGreaterThanOrEqual(2)
    expect(a.status().syncs.ok).toBeGreaterThan(syncsBefore)
  })

  it('two nodes that dial each other at once still exchange what they held before', async () => {
    cluster = new Cluster()
    const token = newToken()
    // Anti-entropy ticks once in ten minutes: only the exchange on admission can carry the entries.
    const slowAntiEntropy = { timing: { ...labConfig().timing, antiEntropyIntervalMs: 600_000 } }
    const a = await cluster.node(token, slowAntiEntropy)
    const b = await cluster.node(token, slowAntiEntropy)
    // Written while alone: their gossip reached nobody.
    await a.state.put('roles/node', { from: 'a' })
    await b.state.put('roles/node', { from: 'b' })
    // Each admits the other first as the answering side of the other's connection.
    await Promise.all([a.dial(b.addresses()[0] as string), b.dial(a.addresses()[0] as string)])
    await waitFor('both hold both entries', () => (a.state.get(b.peerId, 'roles/node') !== undefined && b.state.get(a.peerId, 'roles/node') !== undefined) || undefined, 5_000)
    expect(a.status().peers.find((p) => p.id === b.peerId)?.admitted).toBe(true)
  })

  it('a restarted node keeps its peer id and state and re-dials known peers without bootstrap', async () => {
    cluster = new Cluster()
    const token = newToken()
    const a = await cluster.node(token)
    const dirB = await cluster.dir()
    const b1 = await cluster.node(token, { bootstrapPeers: [a.addresses()[0] as string] }, { stateDir: dirB })
    await b1.state.put('mine', 'kept')
    await waitFor('a has b entry', () => (a.state.get(b1.peerId, 'mine') !== undefined) || undefined)
    const id = b1.peerId
    await b1.stop()
    await waitFor('a sees b dead', () => (a.state.members().find((m) => m.peerId === id)?.liveness === 'dead') || undefined)

    const b2 = await cluster.node(token, { bootstrapPeers: [] }, { stateDir: dirB })
    expect(b2.peerId).toBe(id)
    expect(b2.state.get(id, 'mine')?.value).toBe('kept')
    await waitFor('b re-dialled a from its known peers', () => (alivePeers(b2).includes(a.peerId) && alivePeers(a).includes(id)) || undefined)
    expect(b2.status().peers.find((p) => p.id === a.peerId)?.connected).toBe(true)
  })

  it('membership marks a stopped node dead and the same node alive again when it returns', RETRY, async () => {
    cluster = new Cluster()
    const token = newToken()
    const a = await cluster.node(token)
    const dirC = await cluster.dir()
    const b = await cluster.node(token, { bootstrapPeers: [a.addresses()[0] as string] })
    const c1 = await cluster.node(token, { bootstrapPeers: [a.addresses()[0] as string] }, { stateDir: dirC })
    const id = c1.peerId
    const joins: Member[] = []
    const leaves: Member[] = []
    b.state.addEventListener('member:join', (e) => { joins.push(e.detail) })
    b.state.addEventListener('member:leave', (e) => { leaves.push(e.detail) })
    await waitFor('b sees c alive and is connected to it', () => (alivePeers(b).includes(id) && b.status().peers.some((p) => p.id === id && p.admitted)) || undefined)

    await c1.stop()
    await waitFor('b declares c dead', () => (leaves.some((m) => m.peerId === id)) || undefined, 5_000)
    expect(b.state.members().find((m) => m.peerId === id)?.liveness).toBe('dead')
    expect(alivePeers(b)).toContain(a.peerId)

    const joinsBefore = joins.filter((m) => m.peerId === id).length
    const c2 = await cluster.node(token, { bootstrapPeers: [a.addresses()[0] as string] }, { stateDir: dirC })
    expect(c2.peerId).toBe(id)
    await waitFor('b sees c join again', () => (joins.filter((m) => m.peerId === id).length > joinsBefore) || undefined)
    expect(b.state.members().find((m) => m.peerId === id)?.liveness).toBe('alive')
  })

  it('a member gone longer than forget_after has its entries collected everywhere, and they come back with it', async () => {
    cluster = new Cluster()
    const token = newToken()
    const forget = { forgetAfterMs: 1_500 }
    const gc = { collectIntervalMs: 250 }
    const a = await cluster.node(token, forget, gc)
    const dirC = await cluster.dir()
    const b = await cluster.node(token, { ...forget, bootstrapPeers: [a.addresses()[0] as string] }, gc)
    const c1 = await cluster.node(token, { ...forget, bootstrapPeers: [a.addresses()[0] as string] }, { ...gc, stateDir: dirC })
    const id = c1.peerId
    await c1.state.put('advert', 'c')
    await waitFor('a and b hold c\'s entry', () => (a.state.get(id, 'advert') !== undefined && b.state.get(id, 'advert') !== undefined) || undefined)

    await c1.stop()
    await waitFor('a and b forget c\'s entries', () => (a.state.get(id, 'advert') === undefined && b.state.get(id, 'advert') === undefined) || undefined, 45_000)
      .catch((err: unknown) => { throw new Error(`${String(err)}: ${JSON.stringify([a, b].map((n) => ({ held: n.state.get(id, 'advert') !== undefined, member: n.state.members().find((m) => m.peerId === id)?.liveness, peer: n.status().peers.find((p) => p.id === id), departed: n.status().departed.find((d) => d.id === id), loopErrors: n.status().loopErrors })))}`) })
    expect(a.state.get(b.peerId, 'p2p/member')).toBeDefined()

    const c2 = await cluster.node(token, { ...forget, bootstrapPeers: [a.addresses()[0] as string] }, { ...gc, stateDir: dirC })
    expect(c2.peerId).toBe(id)
    await waitFor('c\'s entry is back on a and b once c is', () => (a.state.get(id, 'advert') !== undefined && b.state.get(id, 'advert') !== undefined) || undefined, 30_000)
  }, 120_000)

  it('a hung node (connections up, silent) is declared dead by its watchers and alive again when it resumes', async () => {
    cluster = new Cluster()
    const { a, b, c, freeze } = await trioWithHangingC(cluster)
    const left: string[] = []
    a.state.addEventListener('member:leave', (e) => { left.push(e.detail.peerId) })
    const t0 = Date.now()
    freeze(true)
    await waitFor('a and b declare c dead', () => ([a, b].every((n) => n.state.members().find((m) => m.peerId === c.peerId)?.liveness === 'dead')) || undefined, PATIENT_MS)
    expect(left).toContain(c.peerId)
    // Detection follows the preset: dead after deadAfterMs of silence (plus scheduling slack, not a timing bound).
    expect(Date.now() - t0).toBeGreaterThanOrEqual(labConfig().timing.suspectAfterMs)
    freeze(false)
    await waitFor('c refuted and is alive everywhere again', () => ([a, b].every((n) => alivePeers(n).includes(c.peerId))) || undefined)
  })

  it('a quiet site heartbeats more slowly with no false suspicion, and a change brings the pace back', async () => {
    cluster = new Cluster()
    const timing = labConfig().timing
    const { a, b, c, freeze } = await trioWithHangingC(cluster)
    const all = [a, b, c]
    expect(all.map((n) => n.status().heartbeatMs)).toEqual([timing.heartbeatIntervalMs, timing.heartbeatIntervalMs, timing.heartbeatIntervalMs])
    const quietMs = QUIET_AFTER_DEAD_PERIODS * timing.deadAfterMs
    await waitFor('every node at the quiet pace', () => (all.every((n) => n.status().heartbeatMs === QUIET_HEARTBEAT_FACTOR * timing.heartbeatIntervalMs)) || undefined, quietMs + 15_000)
    const refutations = all.map((n) => n.status().refutations)
    await new Promise((resolve) => setTimeout(resolve, 10 * QUIET_HEARTBEAT_FACTOR * timing.heartbeatIntervalMs))
    expect(all.every((n) => alivePeers(n).length === 2)).toBe(true)
    expect(all.map((n) => n.status().refutations)).toEqual(refutations)

    // c hangs: found dead on the quiet site too, and the news makes a and b heartbeat at the configured pace again.
    freeze(true)
    await waitFor('a and b declare c dead', () => ([a, b].every((n) => n.state.members().find((m) => m.peerId === c.peerId)?.liveness === 'dead')) || undefined, PATIENT_MS)
    await waitFor('a and b back at the configured pace', () => ([a, b].every((n) => n.status().heartbeatMs === timing.heartbeatIntervalMs)) || undefined, 5_000)
  })

  it('between equal replicas, anti-entropy safety rounds run at most once a minute, however short the interval', async () => {
    cluster = new Cluster()
    const token = newToken()
    // A 100 ms interval: safety rounds every 12 intervals would be one every 1.2 s.
    const timing = { ...labConfig().timing, antiEntropyIntervalMs: 100 }
    const a = await cluster.node(token, { timing })
    const b = await cluster.node(token, { timing, bootstrapPeers: [a.addresses()[0] as string] })
    await waitFor('admitted both ways, replicas equal', () => (fullyAdmitted([a, b]) && a.status().state.entries === b.status().state.entries) || undefined)
    await new Promise((resolve) => setTimeout(resolve, 500))
    const before = [a, b].map((n) => n.status().syncs.ok + n.status().syncs.failed)
    await new Promise((resolve) => setTimeout(resolve, 3_000))
    expect([a, b].map((n) => n.status().syncs.ok + n.status().syncs.failed)).toEqual(before)
  })

  it('stop() is idempotent and releases every socket and timer it made', async () => {
    cluster = new Cluster()
    const token = newToken()
    const handles = (): number => process.getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap' || r === 'TCPSocketWrap').length
    const before = handles()
    const a = await cluster.node(token)
    const b = await cluster.node(token, { bootstrapPeers: [a.addresses()[0] as string] })
    await waitFor('connected', () => (alivePeers(b).includes(a.peerId)) || undefined)
    expect(handles()).toBeGreaterThan(before)
    await Promise.all([a.stop(), a.stop(), b.stop()])
    await b.stop()
    await waitFor('sockets closed', () => (handles() <= before) || undefined, 5_000)
    expect(a.addresses()).toEqual([])
  })
})

describe('mDNS', () => {
  let cluster: Cluster
  afterEach(async () => { await cluster.close() })

  it('two nodes with no bootstrap peer find each other over mDNS with the token-derived tag', async () => {
    cluster = new Cluster()
    const token = newToken()
    const a = await cluster.node(token, { mdns: true, disableDht: true })
    const b = await cluster.node(token, { mdns: true, disableDht: true })
    await waitFor('mDNS discovery and admission', () => (alivePeers(a).includes(b.peerId) && alivePeers(b).includes(a.peerId)) || undefined)
    expect(a.status().peers.find((p) => p.id === b.peerId)?.discoveredBy).toBe('mdns')
  })

  it('two nodes that find each other at once keep one connection: the higher id leaves the dial to the lower', async () => {
    cluster = new Cluster()
    const token = newToken()
    const [a, b] = await Promise.all([cluster.node(token, { mdns: true, disableDht: true }), cluster.node(token, { mdns: true, disableDht: true })])
    if (a === undefined || b === undefined) throw new Error('two nodes expected')
    await waitFor('mDNS discovery and admission', () => (fullyAdmitted([a, b])) || undefined)
    // Long enough for a yielded dial to have gone out after all.
    await new Promise((resolve) => setTimeout(resolve, 2 * MUTUAL_DIAL_YIELD_MS))
    expect(a.status().peers.find((p) => p.id === b.peerId)?.connections).toBe(1)
    expect(b.status().peers.find((p) => p.id === a.peerId)?.connections).toBe(1)
  })
})

describe('DHT rendezvous', () => {
  let cluster: Cluster
  afterEach(async () => { await cluster.close() })

  it('nodes that only share a bootstrap peer find each other through the DHT alone (no peer exchange)', async () => {
    cluster = new Cluster()
    const token = newToken()
    const seed = await cluster.node(token, {}, { peerExchange: false })
    const boot = [seed.addresses()[0] as string]
    const others = await Promise.all([1, 2, 3].map(async () => await cluster.node(token, { bootstrapPeers: boot }, { peerExchange: false })))
    await waitFor('every node is connected to every other', () => (others.every((n) => alivePeers(n).length === 3) && fullyAdmitted(others)) || undefined, 20_000)
    const via = others.flatMap((n) => n.status().peers.filter((p) => p.id !== seed.peerId).map((p) => p.discoveredBy))
    expect(via.length).toBeGreaterThan(0)
    // Found by the DHT; a peer first named in a membership rumour is labelled peer-exchange.
    expect(via).toContain('dht')
    expect(via.every((v) => v === 'dht' || v === 'peer-exchange')).toBe(true)
    // The epoch rendezvous record is found too (it is what reaches peers beyond the routing table).
    await waitFor('a rendezvous provider record was found', () => (others.some((n) => n.status().rendezvous.providersFound > 0)) || undefined, 10_000)
  })

  it('only nodes with bootstrap peers run rendezvous rounds: on one LAN, mDNS and peer exchange find everyone', async () => {
    cluster = new Cluster()
    const token = newToken()
    const quickRounds = { mdns: true, timing: { ...labConfig().timing, rendezvousIntervalMs: 100 } }
    const a = await cluster.node(token, quickRounds)
    const b = await cluster.node(token, quickRounds)
    const c = await cluster.node(token, { ...quickRounds, mdns: false, bootstrapPeers: [a.addresses()[0] as string] })
    await waitFor('every node is connected to every other', () => (fullyAdmitted([a, b, c])) || undefined, 20_000)
    await waitFor('the node with a bootstrap peer ran rounds', () => (c.status().rendezvous.rounds > 1) || undefined, 10_000)
    expect(a.status().rendezvous.rounds).toBe(0)
    expect(b.status().rendezvous.rounds).toBe(0)
  })
})

describe('watcher failures', RETRY, () => {
  let cluster: Cluster
  afterEach(async () => { await cluster.close() })

  it('with one watcher per node, a node that hangs together with its watcher is still declared dead', async () => {
    cluster = new Cluster()
    const token = newToken()
    const frozen = new Set<number>()
    const nodes: P2PNode[] = []
    // A hung node sends nothing: no heartbeat, rumour or state gossip (which would count as first-hand news of it).
    const hang = (idx: number): NonNullable<Parameters<Cluster['node']>[2]>['hooks'] =>
      ({ freeze: () => frozen.has(idx), dropGossip: (e) => e.direction === 'out' && frozen.has(idx) })
    const seed = await cluster.node(token, {}, { heartbeatFanout: 1, hooks: hang(0) })
    nodes.push(seed)
    for (let i = 1; i < 5; i++) {
      nodes.push(await cluster.node(token, { bootstrapPeers: [seed.addresses()[0] as string] }, { heartbeatFanout: 1, hooks: hang(i) }))
    }
    // Five nodes in one process form slowly on a loaded machine; forming is not what this test is about.
    await waitFor('all alive and admitted pairwise', () => (nodes.every((n) => alivePeers(n).length === 4) && fullyAdmitted(nodes)) || undefined, 40_000)
    // Pick a node and its only watcher (its ring successor) and hang both.
    const { ringSuccessors } = await import('../../p2p/heartbeat.ts')
    const ids = nodes.map((n) => n.peerId)
    const x = 1
    const w = ids.indexOf(ringSuccessors(ids[x] as string, ids, 1)[0] as string)
    frozen.add(x).add(w)
    const others = nodes.filter((_, i) => i !== x && i !== w)
    const state = (n: P2PNode, i: number): string | undefined => n.state.members().find((m) => m.peerId === ids[i])?.liveness
    // Two detections in a row (w by its watcher, then x by w's watcher, which only then expects x's heartbeats),
    // each within PATIENT_MS when the machine is quiet; a busy one adds the stalls the watchers credit to their
    // timers (P2P-10, shown on failure), so the bound is what "still declared dead" needs, not a speed.
    await waitFor('both hung nodes dead everywhere else', () => (others.every((n) => state(n, x) === 'dead' && state(n, w) === 'dead')) || undefined, 5 * PATIENT_MS)
      .catch((err: unknown) => { throw new Error(`${String(err)}: ${JSON.stringify(others.map((n) => ({ x: state(n, x), w: state(n, w), stalls: n.status().stalls })))}`) })
  }, 40_000 + 5 * PATIENT_MS + 20_000)

  it('a node that was declared dead and missed the rumour is told by the watcher that hears it again, and is alive everywhere', async () => {
    cluster = new Cluster()
    const token = newToken()
    let frozen = false
    let xId = ''
    const nodes: P2PNode[] = []
    const seed = await cluster.node(token, {}, { heartbeatFanout: 1 })
    nodes.push(seed)
    const boot = [seed.addresses()[0] as string]
    // x hangs, and every rumour about itself that reaches it by gossip is lost (a box starved at boot).
    const x = await cluster.node(token, { bootstrapPeers: boot }, { heartbeatFanout: 1, hooks: { freeze: () => frozen, dropRumour: (r) => r.peer === xId } })
    xId = x.peerId
    nodes.push(x)
    for (let i = 2; i < 5; i++) nodes.push(await cluster.node(token, { bootstrapPeers: boot }, { heartbeatFanout: 1 }))
    await waitFor('all alive and admitted pairwise', () => (nodes.every((n) => alivePeers(n).length === 4) && fullyAdmitted(nodes)) || undefined, 40_000)
    const others = nodes.filter((n) => n !== x)
    const liveness = (n: P2PNode): string | undefined => n.state.members().find((m) => m.peerId === xId)?.liveness
    // A starved boot may have had x refute a false suspicion already: count from here. (While
    // frozen, x may hear its own row in an exchange and count a refutation it cannot send.)
    const refutedBefore = x.status().refutations
    frozen = true
    // As above: the stalls a busy machine adds are credited to the watchers' timers.
    await waitFor('x dead everywhere else', () => (others.every((n) => liveness(n) === 'dead')) || undefined, 5 * PATIENT_MS)
      .catch((err: unknown) => { throw new Error(`${String(err)}: ${JSON.stringify(others.map((n) => ({ x: liveness(n), stalls: n.status().stalls })))}`) })
    // Only x's watcher (heartbeat fanout 1) hears from x again; the other three hold the rumour it never saw.
    frozen = false
    await waitFor('x alive everywhere again', () => (others.every((n) => liveness(n) === 'alive')) || undefined, 20_000)
      .catch((err: unknown) => { throw new Error(`${String(err)}: ${JSON.stringify(others.map(liveness))}`) })
    // x's own messages (the gossip it passes on again) may bring it back everywhere before it is
    // told; each node that heard it so tells it in turn (P2P-9), and it refutes.
    await waitFor('x refuted the rumour it missed', () => (x.status().refutations > refutedBefore) || undefined, 20_000)
  }, 40_000 + 5 * PATIENT_MS + 40_000)

  it('a node that misses every gossip rumour about a hung member learns of its death from its ring neighbours, long before a safety round', async () => {
    cluster = new Cluster()
    const token = newToken()
    const frozen = new Set<number>()
    const ids: string[] = []
    let deaf = -1
    const nodes: P2PNode[] = []
    // Node `deaf` loses every rumour about node 1 that comes by gossip; node 1 hangs as in the test above.
    const hooks = (idx: number): NonNullable<Parameters<Cluster['node']>[2]>['hooks'] => ({
      freeze: () => frozen.has(idx),
      dropGossip: (e) => e.direction === 'out' && frozen.has(idx),
      dropRumour: (r) => idx === deaf && r.peer === ids[1]
    })
    const seed = await cluster.node(token, {}, { heartbeatFanout: 1, hooks: hooks(0) })
    nodes.push(seed)
    for (let i = 1; i < 4; i++) nodes.push(await cluster.node(token, { bootstrapPeers: [seed.addresses()[0] as string] }, { heartbeatFanout: 1, hooks: hooks(i) }))
    ids.push(...nodes.map((n) => n.peerId))
    await waitFor('all alive and admitted pairwise', () => (nodes.every((n) => alivePeers(n).length === 3) && fullyAdmitted(nodes)) || undefined, 40_000)
    const { ringPredecessors } = await import('../../p2p/heartbeat.ts')
    // The deaf node is the hung one's ring predecessor: it heartbeats the hung node, so only the
    // heartbeats it gets from its own predecessor can show it what it missed.
    deaf = ids.indexOf(ringPredecessors(ids[1] as string, ids, 1)[0] as string)
    const before = nodes[deaf]?.status().syncs.ok ?? 0
    frozen.add(1)
    const others = nodes.filter((_, i) => i !== 1)
    const state = (n: P2PNode): string | undefined => n.state.members().find((m) => m.peerId === ids[1])?.liveness
    const report = (err: unknown): never => { throw new Error(`${String(err)}: ${JSON.stringify(others.map((n) => ({ x: state(n), stalls: n.status().stalls })))}`) }
    const hearing = others.filter((n) => n !== nodes[deaf])
    await waitFor('the hung node dead on the nodes that hear rumours', () => (hearing.every((n) => state(n) === 'dead')) || undefined, 5 * PATIENT_MS).catch(report)
    // A safety round comes at most once a minute; within this bound, the members hash is what tells the deaf node.
    await waitFor('the hung node dead on the deaf node too', () => (state(nodes[deaf] as P2PNode) === 'dead') || undefined, 10_000).catch(report)
    expect(nodes[deaf]?.status().syncs.ok).toBeGreaterThan(before)
  }, 40_000 + 5 * PATIENT_MS + 30_000)
})
