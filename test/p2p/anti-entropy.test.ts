import { streamPair } from '@libp2p/utils'
import { UnsupportedProtocolError, type Stream } from '@libp2p/interface'
import { afterEach, describe, expect, it } from 'vitest'
import { ManualClock } from '../../util/clock.ts'
import { silentLogger } from '../../util/log.ts'
import { createAntiEntropy, MAX_CATCH_UP_PUSH, type AntiEntropy, type AntiEntropyComponents } from '../../p2p/anti-entropy.ts'
import { createLoops } from '../../p2p/loops.ts'
import { createMembership, type Membership, type Rumour } from '../../p2p/membership.ts'
import { seededRandom } from '../../util/random.ts'
import { syncAsResponder, type PeerAdvert } from '../../p2p/sync.ts'
import { QUIET_AFTER_DEAD_PERIODS } from '../../p2p/liveness.ts'
import { store } from './state/fixtures.ts'
import { LAB, peerIds } from './fake-net.ts'

type Store = Awaited<ReturnType<typeof store>>

interface Side {
  ae: AntiEntropy
  st: Store
  membership: Membership
  rumours: Rumour[]
  malformed: number
  admitted: Set<string>
  /** Exchanges and pushes this side answered. */
  answered: Array<Promise<void>>
  /** The next stream this side opens is reset at once by the other end. */
  breakNext: boolean
  /** The protocol of each stream this side opened. */
  opened: Array<'sync' | 'push'>
  /** Refuse the push protocol, as a build from before it does. */
  noPush: boolean
  /** Answer exchanges as a build from before members hashes did: no hash row, its table as `oldTable` gives it. */
  oldBuild?: { oldTable: () => PeerAdvert[], heard: PeerAdvert[][] }
}

/** Two anti-entropy services joined by in-memory stream pairs, each admitting the other; rumours from exchanges are merged into each side's table. */
async function pair (extra: { a?: Partial<AntiEntropyComponents>, b?: Partial<AntiEntropyComponents> } = {}): Promise<{ a: Side, b: Side, controller: AbortController, clock: ManualClock }> {
  const controller = new AbortController()
  const clock = new ManualClock(1_000_000)
  const sides: Side[] = []
  const make = async (seed: number, more: Partial<AntiEntropyComponents> = {}): Promise<Side> => {
    const st = await store(seed)
    const membership = createMembership({ timing: LAB, self: st.self, incarnation: clock.now(), staleAfterMs: Infinity })
    const side: Side = { st, membership, rumours: [], malformed: 0, admitted: new Set(), answered: [], breakNext: false, opened: [], noPush: false, ae: undefined as unknown as AntiEntropy }
    side.ae = createAntiEntropy({
      self: st.self,
      clock,
      random: seededRandom(seed),
      log: silentLogger,
      timing: LAB,
      store: st,
      membership,
      admitted: side.admitted,
      admittedOrSoon: async () => true,
      openStream: async (peer, protocol) => {
        const other = sides.find((s) => s.st.self === peer)
        if (other === undefined) return undefined
        if (protocol === 'push' && other.noPush) throw new UnsupportedProtocolError('Protocol selection failed - could not negotiate push')
        side.opened.push(protocol)
        const [outbound, inbound] = await streamPair()
        if (side.breakNext) {
          side.breakNext = false
          inbound.abort(new Error('reset by the test'))
          return outbound as Stream
        }
        const old = other.oldBuild
        if (old !== undefined && protocol === 'sync') {
          const heard: PeerAdvert[] = []
          old.heard.push(heard)
          const bare = { store: other.st, remote: st.self, peers: old.oldTable, onPeers: (list: PeerAdvert[]) => { heard.push(...list) }, onApplied: () => {}, maxFrameBytes: 1 << 20, signal: controller.signal }
          other.answered.push(syncAsResponder(inbound as Stream, bare).then(() => {}))
          return outbound as Stream
        }
        other.answered.push(protocol === 'push' ? other.ae.handlePush(inbound as Stream, st.self) : other.ae.handle(inbound as Stream, st.self))
        return outbound as Stream
      },
      addressesOf: () => [],
      via: (_p, fallback) => fallback,
      learnPeer: () => {},
      learnMember: () => {},
      applyRumour: (r) => { side.rumours.push(r); membership.rumour(r, clock.now()) },
      peerExchange: true,
      maxFrameBytes: 1 << 20,
      timeoutMs: 5_000,
      onMalformed: () => { side.malformed++ },
      ...more
    })
    side.ae.start(controller.signal, createLoops(clock, controller.signal, silentLogger))
    sides.push(side)
    return side
  }
  const a = await make(1, extra.a)
  const b = await make(2, extra.b)
  a.admitted.add(b.st.self)
  b.admitted.add(a.st.self)
  return { a, b, controller, clock }
}

/** Each side has heard the other first-hand (as admission does), so equal knowledge makes equal members hashes. */
function acquainted (p: { a: Side, b: Side, clock: ManualClock }): void {
  p.a.membership.heard(p.b.st.self, p.clock.now(), p.b.membership.incarnation())
  p.b.membership.heard(p.a.st.self, p.clock.now(), p.a.membership.incarnation())
}

/** `side` watches `peer`: two heartbeats from it with its current hashes. */
function beatsFrom (side: Side, peer: Side): void {
  for (let i = 0; i < 2; i++) side.ae.heartbeatDigest(peer.st.self, peer.ae.digestHash(), peer.membership.digest())
}

/** How long a table must hold still before an exchange opens with the members hash alone. */
const QUIET_MS = QUIET_AFTER_DEAD_PERIODS * LAB.deadAfterMs

describe('anti-entropy over stream pairs', () => {
  let controller: AbortController | undefined
  afterEach(() => { controller?.abort() })

  it('one exchange repairs both replicas', async () => {
    const p = await pair()
    controller = p.controller
    await p.a.st.put('only-a', 1)
    await p.b.st.put('only-b', 2)
    await p.a.ae.run(p.b.st.self)
    await Promise.all(p.b.answered)
    expect(p.a.st.get(p.b.st.self, 'only-b')?.value).toBe(2)
    expect(p.b.st.get(p.a.st.self, 'only-a')?.value).toBe(1)
    expect(p.a.ae.stats().ok).toBe(1)
  })

  it('an exchange hands a member we hold dead its own row, so it can refute', async () => {
    const p = await pair()
    controller = p.controller
    const b = p.b.st.self
    p.a.membership.heard(b, 0, 42)
    p.a.membership.rumour({ peer: b, state: 'dead', incarnation: 42 }, 0)
    await p.a.ae.run(b)
    expect(p.b.rumours).toContainEqual({ peer: b, state: 'dead', incarnation: 42 })
  })

  it('a peer whose heartbeats show the same differing digest twice is a real gap; one that keeps moving is gossip in flight', async () => {
    const p = await pair()
    controller = p.controller
    const b = p.b.st.self
    const ours = p.a.ae.digestHash()
    p.a.ae.heartbeatDigest(b, ours + 1)
    p.a.ae.heartbeatDigest(b, ours + 2)
    // Moving: no exchange (and no safety round is due within a minute of the start).
    await p.a.ae.round()
    expect(p.a.ae.stats().ok).toBe(0)
    p.a.ae.heartbeatDigest(b, ours + 2)
    await p.a.ae.round()
    expect(p.a.ae.stats().ok).toBe(1)
    // Exchanged: no longer a gap until heartbeats show one again.
    await p.a.ae.round()
    expect(p.a.ae.stats().ok).toBe(1)
  })

  it('a watched peer whose members hash shows the same difference twice gets an exchange, and the rumour one side missed crosses it', async () => {
    const p = await pair()
    controller = p.controller
    acquainted(p)
    const [c] = await peerIds(1) as [string]
    for (const side of [p.a, p.b]) side.membership.heard(c, 0, 5)
    // b heard that c is dead; the gossip message never reached a.
    p.b.membership.rumour({ peer: c, state: 'dead', incarnation: 5 }, 1)
    const theirs = p.b.membership.digest()
    // Moving (b's table changed between its heartbeats): gossip may still be on its way.
    p.a.ae.heartbeatDigest(p.b.st.self, p.b.ae.digestHash(), theirs + 1)
    p.a.ae.heartbeatDigest(p.b.st.self, p.b.ae.digestHash(), theirs)
    await p.a.ae.round()
    expect(p.a.ae.stats().ok).toBe(0)
    p.a.ae.heartbeatDigest(p.b.st.self, p.b.ae.digestHash(), theirs)
    await p.a.ae.round()
    await Promise.all(p.b.answered)
    expect(p.a.ae.stats().ok).toBe(1)
    expect(p.a.membership.get(c)?.liveness).toBe('dead')
    expect(p.a.membership.digest()).toBe(p.b.membership.digest())
  })

  it('the answering side sends its table again when the rows it was sent show the asker lacks one, although it sent that table before', async () => {
    const [c] = await peerIds(1) as [string]
    // b's table reaches a without c's row once: sent as far as b can tell, never merged by a.
    let cut = 1
    const p = await pair({ b: { tamperAdverts: (_to, rows) => cut-- > 0 ? rows.filter((r) => r.id !== c) : rows } })
    controller = p.controller
    acquainted(p)
    for (const side of [p.a, p.b]) side.membership.heard(c, 0, 5)
    p.b.membership.rumour({ peer: c, state: 'dead', incarnation: 5 }, 1)
    await p.a.ae.run(p.b.st.self)
    await Promise.all(p.b.answered)
    expect(p.a.membership.get(c)?.liveness).toBe('alive')
    beatsFrom(p.a, p.b)
    await p.a.ae.round()
    await Promise.all(p.b.answered)
    expect(p.a.membership.get(c)?.liveness).toBe('dead')
  })

  it('a members difference that outlives a completed exchange starts no other until a table changes', async () => {
    const [c, d] = await peerIds(2) as [string, string]
    // b never hands over c's row (as a table at its row bound would not take it): no exchange mends this.
    const p = await pair({ b: { tamperAdverts: (_to, rows) => rows.filter((r) => r.id !== c) } })
    controller = p.controller
    acquainted(p)
    for (const side of [p.a, p.b]) side.membership.heard(c, 0, 5)
    p.b.membership.rumour({ peer: c, state: 'dead', incarnation: 5 }, 1)
    beatsFrom(p.a, p.b)
    await p.a.ae.round()
    await Promise.all(p.b.answered)
    expect(p.a.ae.stats().ok).toBe(1)
    expect(p.a.membership.digest()).not.toBe(p.b.membership.digest())
    for (let i = 0; i < 3; i++) {
      beatsFrom(p.a, p.b)
      await p.a.ae.round()
    }
    expect(p.a.ae.stats().ok).toBe(1)
    // A change on either side is a new difference: one more exchange.
    p.b.membership.learn(d, 2)
    beatsFrom(p.a, p.b)
    await p.a.ae.round()
    await Promise.all(p.b.answered)
    expect(p.a.ae.stats().ok).toBe(2)
    expect(p.a.membership.get(d)?.liveness).toBe('alive')
  })

  it('a table sent in an exchange that broke is sent in full at the next one', async () => {
    const p = await pair()
    controller = p.controller
    const [c] = await peerIds(1) as [string]
    p.a.membership.heard(c, 0, 5)
    p.a.breakNext = true
    await p.a.ae.run(p.b.st.self)
    expect(p.a.ae.stats().failed).toBe(1)
    expect(p.b.membership.get(c)).toBeUndefined()
    await p.a.ae.run(p.b.st.self)
    await Promise.all(p.b.answered)
    expect(p.b.membership.get(c)?.liveness).toBe('alive')
  })

  it('a safety round picks an admitted peer held alive, not one held dead (a hung peer would not answer)', async () => {
    const p = await pair()
    controller = p.controller
    const [z] = await peerIds(1) as [string]
    acquainted(p)
    p.a.admitted.add(z)
    p.a.membership.heard(z, 0, 5)
    p.a.membership.rumour({ peer: z, state: 'dead', incarnation: 5 }, 1)
    for (let i = 0; i < 8; i++) {
      p.clock.advance(60_000)
      await p.a.ae.round()
    }
    await Promise.all(p.b.answered)
    // One safety round per minute (ours or the loop's), each answered by b; one that picked z found no stream to it.
    expect(p.b.answered.length).toBe(8)
  })

  describe('members hashes in an exchange (P2P-40)', () => {
    /** A pair that both know `count` other members alike, with the rows each side sends per exchange recorded (`-1`: its table went unchanged from before, so none). */
    const site = async (count: number, bHidesFirst = false): Promise<{ p: Awaited<ReturnType<typeof pair>>, sent: { a: number[], b: number[] }, others: string[] }> => {
      const sent = { a: [] as number[], b: [] as number[] }
      const others = await peerIds(count)
      const record = (to: keyof typeof sent) => (_peer: string, rows: PeerAdvert[]): PeerAdvert[] => {
        const out = to === 'b' && bHidesFirst ? rows.filter((r) => r.id !== others[0]) : rows
        sent[to].push(out.length)
        return out
      }
      const p = await pair({ a: { tamperAdverts: record('a') }, b: { tamperAdverts: record('b') } })
      acquainted(p)
      for (const side of [p.a, p.b]) for (const o of others) side.membership.heard(o, 0, 5)
      p.clock.advance(QUIET_MS)
      return { p, sent, others }
    }
    const exchange = async (p: Awaited<ReturnType<typeof pair>>, from: Side, to: Side): Promise<void> => {
      await from.ae.run(to.st.self)
      await Promise.all(to.answered)
    }
    /** `site`, with the abort controller set and one exchange from a to b behind it. */
    const exchanged = async (count: number): Promise<Awaited<ReturnType<typeof site>>> => {
      const s = await site(count)
      controller = s.p.controller
      await exchange(s.p, s.p.a, s.p.b)
      return s
    }

    it('between equal tables an exchange carries the two hashes and no rows; the table goes once, to a peer that sent no hash before', async () => {
      const { p, sent, others } = await exchanged(20)
      await exchange(p, p.a, p.b)
      await exchange(p, p.b, p.a)
      // a's first exchange: b had sent it no hash yet, so the table (every member but b) goes; b's hash shows it equal.
      expect(sent.a).toEqual([others.length, 0, 0])
      expect(sent.b).toEqual([0, 0, 0])
      // Nothing left to repair: no round runs an exchange (a ran two and answered one).
      await p.a.ae.round()
      expect(p.a.ae.stats().ok).toBe(3)
    })

    it('a rumour only the answering side holds crosses in its answer', async () => {
      const { p, others } = await exchanged(5)
      const c = others[0] as string
      p.b.membership.rumour({ peer: c, state: 'dead', incarnation: 5 }, 1)
      await exchange(p, p.a, p.b)
      expect(p.a.membership.get(c)?.liveness).toBe('dead')
      expect(p.a.membership.digest()).toBe(p.b.membership.digest())
      await p.a.ae.round()
      expect(p.a.ae.stats().ok).toBe(2)
    })

    it('right after a change the opening side sends its whole table', async () => {
      const { p, sent, others } = await exchanged(5)
      const c = others[0] as string
      p.a.membership.rumour({ peer: c, state: 'dead', incarnation: 5 }, p.clock.now())
      await exchange(p, p.a, p.b)
      expect(sent.a).toEqual([others.length, others.length])
      expect(p.b.membership.get(c)?.liveness).toBe('dead')
      // Quiet again: the hash alone.
      p.clock.advance(QUIET_MS)
      await exchange(p, p.a, p.b)
      expect(sent.a.at(-1)).toBe(0)
    })

    it('a rumour only the opening side holds, which the other missed long ago, crosses in a second exchange with its table, at its next round', async () => {
      const { p, sent, others } = await exchanged(5)
      const c = others[0] as string
      p.a.membership.rumour({ peer: c, state: 'dead', incarnation: 5 }, p.clock.now())
      p.clock.advance(QUIET_MS)
      await exchange(p, p.a, p.b)
      // a sent its hash alone; b, seeing it differ, answered with its table, which holds nothing new for a.
      expect(p.b.membership.get(c)?.liveness).toBe('alive')
      expect(sent.a.at(-1)).toBe(0)
      expect(sent.b.at(-1)).toBe(others.length)
      await p.a.ae.round()
      await Promise.all(p.b.answered)
      expect(p.a.ae.stats().ok).toBe(3)
      expect(sent.a.at(-1)).toBe(others.length)
      expect(p.b.membership.get(c)?.liveness).toBe('dead')
      expect(p.a.membership.digest()).toBe(p.b.membership.digest())
      // Settled: no further round.
      await p.a.ae.round()
      expect(p.a.ae.stats().ok).toBe(3)
    })

    it('an exchange opened with the hash alone still hands a member we hold dead its own row', async () => {
      const { p, sent } = await exchanged(3)
      const b = p.b.st.self
      p.a.membership.rumour({ peer: b, state: 'dead', incarnation: p.b.membership.incarnation() }, p.clock.now())
      p.clock.advance(QUIET_MS)
      await exchange(p, p.a, p.b)
      expect(sent.a.at(-1)).toBe(1)
      expect(p.b.rumours).toContainEqual({ peer: b, state: 'dead', incarnation: p.b.membership.incarnation() - 1 })
    })

    it('a difference no table mends costs one more exchange, not one per round', async () => {
      // b never hands over c's row (as a table at its row bound would not take it).
      const { p, others } = await site(3, true)
      controller = p.controller
      const c = others[0] as string
      p.b.membership.rumour({ peer: c, state: 'dead', incarnation: 5 }, 1)
      await exchange(p, p.a, p.b)
      for (let i = 0; i < 4; i++) {
        await exchange(p, p.a, p.b)
        await p.a.ae.round()
        await Promise.all(p.b.answered)
      }
      expect(p.a.membership.get(c)?.liveness).toBe('alive')
      // The first, four opened with the hash alone, and one with a's table after the first of those.
      expect(p.a.ae.stats().ok).toBe(6)
    })

    it('a peer from before members hashes (no hash row) gets our table as before, at every exchange whose table changed', async () => {
      const { p, sent, others } = await site(4)
      controller = p.controller
      const oldTable = (): PeerAdvert[] => [{ id: others[0] as string, addresses: [], ageMs: 0, incarnation: 5, liveness: 'alive' }]
      p.b.oldBuild = { oldTable, heard: [] }
      await exchange(p, p.a, p.b)
      p.a.membership.rumour({ peer: others[1] as string, state: 'dead', incarnation: 5 }, 1)
      await exchange(p, p.a, p.b)
      expect(sent.a).toEqual([others.length, others.length])
      // It got our rows both times.
      expect(p.b.oldBuild.heard.map((rows) => rows.map((r) => r.id).sort())).toEqual([[...others].sort(), [...others].sort()])
    })
  })

  describe('catch-up of a put whose gossip missed a peer', () => {
    /** Puts `count` entries on a, reports each as gossiped to nobody, and lets the catch-up run. */
    const missed = async (p: Awaited<ReturnType<typeof pair>>, count: number): Promise<void> => {
      for (let i = 0; i < count; i++) {
        const { wire } = await p.a.st.put(`k${i}`, i)
        p.a.ae.catchUp(new Set(), wire)
      }
      await p.clock.advanceAsync(20)
      // The push or exchange runs on its own once the delay ends: wait for both sides.
      await expect.poll(() => p.b.answered.length).toBeGreaterThan(0)
      await Promise.all(p.b.answered)
      await expect.poll(() => p.a.ae.stats().ok + p.a.ae.stats().failed).toBeGreaterThan(0)
    }

    it('pushes the entries alone, one push for a burst', async () => {
      const p = await pair()
      controller = p.controller
      await p.b.st.put('only-b', 2)
      await missed(p, 3)
      expect(p.a.opened).toEqual(['push'])
      for (let i = 0; i < 3; i++) expect(p.b.st.get(p.a.st.self, `k${i}`)?.value).toBe(i)
      // A push carries no digest: what only b holds stays for gossip or anti-entropy.
      expect(p.a.st.get(p.b.st.self, 'only-b')).toBeUndefined()
    })

    it('a peer reached by the gossip gets nothing', async () => {
      const p = await pair()
      controller = p.controller
      const { wire } = await p.a.st.put('k', 1)
      p.a.ae.catchUp(new Set([p.b.st.self]), wire)
      await p.clock.advanceAsync(20)
      expect(p.a.opened).toEqual([])
    })

    it('a peer that takes no pushes gets a whole exchange', async () => {
      const p = await pair()
      controller = p.controller
      p.b.noPush = true
      await p.b.st.put('only-b', 2)
      await missed(p, 1)
      expect(p.a.opened).toEqual(['sync'])
      expect(p.b.st.get(p.a.st.self, 'k0')?.value).toBe(0)
      expect(p.a.st.get(p.b.st.self, 'only-b')?.value).toBe(2)
    })

    it(`a backlog past ${MAX_CATCH_UP_PUSH} entries goes by a whole exchange`, async () => {
      const p = await pair()
      controller = p.controller
      await missed(p, MAX_CATCH_UP_PUSH + 1)
      expect(p.a.opened).toEqual(['sync'])
      expect(p.b.st.get(p.a.st.self, `k${MAX_CATCH_UP_PUSH}`)?.value).toBe(MAX_CATCH_UP_PUSH)
    })
  })
})
