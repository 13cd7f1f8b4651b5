import { afterEach, describe, expect, it } from 'vitest'
import { ringOrder } from '../../p2p/heartbeat.ts'
import { FakeNet, LAB, peerIds } from './fake-net.ts'

/** Long enough for any death, even with the detector's patience stretched to its bound (10×). */
const PATIENT_MS = 10 * LAB.deadAfterMs + 1_000

describe('liveness on a fake network', () => {
  let net: FakeNet
  afterEach(async () => { await net.stop() })

  it('three members heartbeating each other stay alive everywhere', async () => {
    net = new FakeNet()
    const ids = await peerIds(3)
    await net.start(ids)
    await net.run(3_000)
    for (const a of ids) for (const b of ids) if (a !== b) expect(net.liveness(a, b)).toBe('alive')
    for (const m of net.members.values()) expect(m.liveness.stats().refutations).toBe(0)
  })

  it('an isolated member is declared dead by the others, and refutes once the network heals', async () => {
    net = new FakeNet()
    const ids = await peerIds(3)
    const [a, b, c] = ids as [string, string, string]
    await net.start(ids)
    await net.run(1_000)
    net.isolate(c)
    await net.run(PATIENT_MS)
    expect(net.liveness(a, c), net.describe()).toBe('dead')
    expect(net.liveness(b, c), net.describe()).toBe('dead')
    // c heard nobody either: from its side the peer it watched is gone.
    expect([net.liveness(c, a), net.liveness(c, b)]).toContain('dead')
    net.heal()
    // Nothing first-hand flows while each side holds the other dead: an exchange carries each its own row, and it refutes.
    net.exchangeAll()
    await net.run(PATIENT_MS)
    expect(net.members.get(c)?.liveness.stats().refutations).toBeGreaterThan(0)
    for (const x of ids) for (const y of ids) if (x !== y) expect(net.liveness(x, y), `${x.slice(-4)} on ${y.slice(-4)}`).toBe('alive')
  })

  it('a member cut from its watcher is suspected; heard again first-hand it is in dispute, told by an exchange, and refutes', async () => {
    net = new FakeNet()
    const ids = await peerIds(3)
    await net.start(ids)
    await net.run(1_000)
    const [a] = ids as [string, string, string]
    // a watches whoever heartbeats it: cut that one off from a alone.
    const watched = net.members.get(a)?.membership.watching()[0]
    if (watched === undefined) throw new Error('a watches nobody after a second of heartbeats')
    net.cut(a, watched)
    await net.run(PATIENT_MS)
    expect(net.liveness(a, watched)).toBe('dead')
    net.heal()
    await net.run(PATIENT_MS)
    // a heard it again first-hand (its heartbeats), held the dispute, and asked for an exchange with it.
    expect(net.members.get(a)?.exchanges).toContain(watched)
    for (const x of ids) for (const y of ids) if (x !== y) expect(net.liveness(x, y), `${x.slice(-4)} on ${y.slice(-4)}`).toBe('alive')
  })

  it('a minority cut off from the rest finds every member of the other side dead, also one whose expectation a stale alive row withdrew', async () => {
    net = new FakeNet()
    const ids = ringOrder(await peerIds(5))
    await net.start(ids)
    await net.run(1_000)
    // Two ring neighbours on one side: the second watches the first, so the first alone
    // watches across the cut, one member after another as the ring closes over the dead.
    const minority = ids.slice(0, 2)
    const majority = ids.slice(2)
    for (const x of minority) for (const y of majority) net.cut(x, y)
    // Whenever a minority member starts to watch one of the other side, a peer's exchange
    // hands it an `alive` row for that member at a newer incarnation (news from before the
    // cut): an expectation not yet confirmed by a heartbeat is withdrawn by it.
    const told = new Set<string>()
    for (let t = 0; t < 6 * PATIENT_MS; t += 100) {
      for (const x of minority) {
        const m = net.members.get(x)
        for (const y of m?.membership.watching() ?? []) {
          if (!majority.includes(y) || told.has(`${x}>${y}`) || m === undefined) continue
          told.add(`${x}>${y}`)
          m.liveness.applyRumour({ peer: y, state: 'alive', incarnation: (m.membership.incarnationOf(y) ?? 0) + 1 }, false)
        }
      }
      await net.run(100)
    }
    expect(told.size, net.describe()).toBeGreaterThan(0)
    for (const x of minority) for (const y of majority) expect(net.liveness(x, y), `${x.slice(-4)} on ${y.slice(-4)}: ${net.describe()}`).toBe('dead')
    for (const x of majority) for (const y of minority) expect(net.liveness(x, y), `${x.slice(-4)} on ${y.slice(-4)}: ${net.describe()}`).toBe('dead')
    for (const x of minority) for (const y of minority) if (x !== y) expect(net.liveness(x, y)).toBe('alive')
  })

  it('a peer that moved to its new successor and whose connection closed before its LAST frame is watched no more (no suspicions for good)', async () => {
    net = new FakeNet()
    const ring = ringOrder(await peerIds(4))
    const [p, s1, s2] = ring as [string, string, string, string]
    // p is not connected to its ring successor s1 yet: it heartbeats s2, which watches it.
    const members = await net.start(ring)
    const byId = new Map(members.map((m) => [m.id, m]))
    byId.get(p)?.admitted.delete(s1)
    byId.get(s1)?.admitted.delete(p)
    await net.run(2_000)
    expect(byId.get(s2)?.membership.watching()).toContain(p)
    // p connects to s1, and its connection to s2 closes before the LAST frame gets there (the dialler pruned it).
    net.cut(p, s2)
    byId.get(p)?.admitted.add(s1)
    byId.get(s1)?.admitted.add(p)
    byId.get(p)?.liveness.admitted(s1, true, {})
    byId.get(s1)?.liveness.admitted(p, true, {})
    byId.get(p)?.admitted.delete(s2)
    byId.get(s2)?.admitted.delete(p)
    await net.run(200)
    net.heal()
    const before = byId.get(p)?.liveness.stats().refutations ?? 0
    await net.run(PATIENT_MS)
    expect(byId.get(s2)?.membership.watching(), net.describe()).not.toContain(p)
    expect((byId.get(p)?.liveness.stats().refutations ?? 0) - before, net.describe()).toBeLessThanOrEqual(1)
    for (const x of ring) for (const y of ring) if (x !== y) expect(net.liveness(x, y), `${x.slice(-4)} on ${y.slice(-4)}`).toBe('alive')
  })

  it('a round that throws is counted and the loop carries on: the member keeps heartbeating and stays alive', async () => {
    net = new FakeNet()
    const ids = await peerIds(3)
    let failures = 5
    const [a] = ids as [string]
    await net.start(ids.slice(1))
    await net.start([a], { digestHash: () => { if (failures-- > 0) throw new RangeError('digest exploded'); return 0 } })
    await net.run(3_000)
    const m = net.members.get(a)
    expect(m?.loops.errors()).toBeGreaterThan(0)
    for (const x of ids) for (const y of ids) if (x !== y) expect(net.liveness(x, y), net.describe()).toBe('alive')
  })

  it('a rumour that it is dead at 2^53 - 1 changes nothing: no refutation, heartbeats go on', async () => {
    net = new FakeNet()
    const ids = await peerIds(2)
    const [a, b] = ids as [string, string]
    await net.start(ids)
    await net.run(500)
    net.members.get(a)?.liveness.applyRumour({ peer: a, state: 'dead', incarnation: Number.MAX_SAFE_INTEGER }, true)
    await net.run(2_000)
    expect(net.members.get(a)?.liveness.stats().refutations).toBe(0)
    expect(net.members.get(a)?.loops.errors()).toBe(0)
    expect(net.liveness(b, a)).toBe('alive')
  })
})
