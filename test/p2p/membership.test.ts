import { describe, expect, it } from 'vitest'
import { PRESETS } from '../../config/presets.ts'
import { QUIET_HEARTBEAT_FACTOR, nextBeatInterval } from '../../p2p/heartbeat.ts'
import { createMembership, decodeRumour, encodeRumour, MAX_INCARNATION } from '../../p2p/membership.ts'
import { decodeHeartbeat, encodeHeartbeat } from '../../p2p/heartbeat.ts'
import { MalformedFrameError } from '../../p2p/errors.ts'
import { decodePeers, encodePeers } from '../../p2p/sync.ts'

/** A real peer id (rumours must name one). */
const PEER = '12D3KooWGzh5ctwBj6XcFfuEPYPrt9VhyEuWsxjDYuyGNGMUFa1J'

const timing = PRESETS.lan
const S = timing.suspectAfterMs
const D = timing.deadAfterMs
const types = (ts: Array<{ type: string }>): string[] => ts.map((t) => t.type)

describe('membership table', () => {
  it('the lan preset declares a silent watched node dead within 3 s, lab faster', () => {
    expect(D).toBeLessThanOrEqual(3_000)
    expect(PRESETS.lab.deadAfterMs).toBeLessThan(D)
  })

  it('a watcher suspects, then declares dead, and spreads both rumours', () => {
    const m = createMembership({ timing, self: 'me', incarnation: 1 })
    expect(types(m.watch('p', 0, 7))).toEqual(['join'])
    expect(m.nextDeadline(0)).toBe(S)
    expect(m.tick(S - 1)).toEqual({ transitions: [], publish: [] })
    const s = m.tick(S)
    expect(types(s.transitions)).toEqual(['suspect'])
    expect(s.publish).toEqual([{ peer: 'p', state: 'suspect', incarnation: 7 }])
    const d = m.tick(D)
    expect(types(d.transitions)).toEqual(['leave'])
    expect(d.publish).toEqual([{ peer: 'p', state: 'dead', incarnation: 7 }])
    expect(m.get('p')?.liveness).toBe('dead')
    expect(m.watching()).toEqual([])
  })

  it('heartbeats keep a watched member alive; unwatch stops the timers', () => {
    const m = createMembership({ timing, self: 'me', incarnation: 1 })
    m.watch('p', 0)
    for (let t = 500; t <= 10_000; t += 500) { m.watch('p', t); expect(m.tick(t).transitions).toEqual([]) }
    m.unwatch('p')
    expect(m.tick(10_000 + D).transitions).toEqual([])
    expect(m.get('p')?.liveness).toBe('alive')
  })

  it('rumours are ordered by incarnation, then dead > suspect > alive', () => {
    const m = createMembership({ timing, self: 'me', incarnation: 1 })
    m.heard('p', 0, 5)
    expect(types(m.rumour({ peer: 'p', state: 'suspect', incarnation: 4 }, 10).transitions)).toEqual([])
    expect(types(m.rumour({ peer: 'p', state: 'suspect', incarnation: 5 }, 10).transitions)).toEqual(['suspect'])
    expect(types(m.rumour({ peer: 'p', state: 'alive', incarnation: 5 }, 20).transitions)).toEqual([])
    expect(types(m.rumour({ peer: 'p', state: 'alive', incarnation: 6 }, 20).transitions)).toEqual(['recover'])
    expect(types(m.rumour({ peer: 'p', state: 'dead', incarnation: 6 }, 30).transitions)).toEqual(['leave'])
    expect(types(m.rumour({ peer: 'p', state: 'alive', incarnation: 6 }, 40).transitions)).toEqual([])
    // A restart: same peer id, a later incarnation (its start time), joins again.
    const back = m.rumour({ peer: 'p', state: 'alive', incarnation: 1_000 }, 50)
    expect(types(back.transitions)).toEqual(['join'])
    expect(back.transitions[0]?.member).toMatchObject({ peerId: 'p', liveness: 'alive' })
  })

  it('a rumour that we are suspect or dead is refuted with a higher incarnation, even an older one', () => {
    const m = createMembership({ timing, self: 'me', incarnation: 100 })
    expect(m.rumour({ peer: 'me', state: 'suspect', incarnation: 100 }, 0).refute).toEqual({ peer: 'me', state: 'alive', incarnation: 101 })
    // Older than what we hold: refuted with the incarnation we have, which already beats it.
    expect(m.rumour({ peer: 'me', state: 'dead', incarnation: 99 }, 0).refute).toEqual({ peer: 'me', state: 'alive', incarnation: 101 })
    expect(m.rumour({ peer: 'me', state: 'suspect', incarnation: 101 }, 0).refute).toEqual({ peer: 'me', state: 'alive', incarnation: 102 })
    expect(m.incarnation()).toBe(102)
    expect(m.rumour({ peer: 'me', state: 'alive', incarnation: 500 }, 0).refute).toBeUndefined()
    expect(m.list()).toEqual([])
  })

  it('a node told not to raise leaves a suspicion about an older incarnation alone', () => {
    const m = createMembership({ timing, self: 'me', incarnation: 1 })
    m.heard('p', 0, 7)
    expect(m.rumour({ peer: 'p', state: 'suspect', incarnation: 3 }, 10 * S, { raise: false })).toEqual({ transitions: [] })
    expect(m.get('p')?.liveness).toBe('alive')
  })

  it('a suspicion about an older incarnation is raised and spread again only without first-hand news', () => {
    const m = createMembership({ timing, self: 'me', incarnation: 1 })
    m.heard('p', 0, 7)
    // Fresh first-hand news: the stale rumour is ignored.
    expect(m.rumour({ peer: 'p', state: 'dead', incarnation: 0 }, 10)).toEqual({ transitions: [] })
    // No news for a while: raised to incarnation 7 as a suspicion, to be refuted or confirmed.
    const r = m.rumour({ peer: 'p', state: 'dead', incarnation: 0 }, S + 10)
    expect(types(r.transitions)).toEqual(['suspect'])
    expect(r.relay).toEqual({ peer: 'p', state: 'suspect', incarnation: 7 })
    expect(types(m.rumour({ peer: 'p', state: 'alive', incarnation: 8 }, S + 20).transitions)).toEqual(['recover'])
  })

  it('a suspicion nobody refutes becomes dead after deadAfter − suspectAfter, also without a watcher', () => {
    const m = createMembership({ timing, self: 'me', incarnation: 1 })
    m.heard('p', 0, 3)
    m.rumour({ peer: 'p', state: 'suspect', incarnation: 3 }, 100)
    expect(m.nextDeadline(100)).toBe(100 + D - S)
    expect(types(m.tick(100 + D - S).transitions)).toEqual(['leave'])
  })

  it('learned members start alive; stale unwatched members drop to dead; touch keeps them fresh', () => {
    const m = createMembership({ timing, self: 'me', incarnation: 1, staleAfterMs: 10_000 })
    expect(types(m.learn('p', 0, { discoveredBy: 'peer-exchange', addresses: ['/ip4/10.0.0.1/tcp/1'] }))).toEqual(['join'])
    expect(m.learn('p', 5)).toEqual([])
    m.learn('q', 0)
    m.touch('q', 9_000)
    expect(types(m.tick(10_000).transitions)).toEqual(['leave'])
    expect(m.get('p')?.liveness).toBe('dead')
    expect(m.get('q')?.liveness).toBe('alive')
    expect(m.get('p')).toMatchObject({ discoveredBy: 'peer-exchange', addresses: ['/ip4/10.0.0.1/tcp/1'] })
  })

  it('a member restarted with a clock that has sub-millisecond time comes back at a newer incarnation its peers take', () => {
    const peer = createMembership({ timing, self: 'me', incarnation: 1_000 })
    peer.heard(PEER, 0, 1_000)
    peer.rumour({ peer: PEER, state: 'dead', incarnation: 1_000 }, 0)
    // The member restarted at 7 239.73 ms: its heartbeats carry its incarnation.
    const restarted = createMembership({ timing, self: PEER, incarnation: 7_239.726 })
    expect(restarted.incarnation()).toBe(7_239)
    expect(types(peer.watch(PEER, 1, restarted.incarnation()))).toEqual(['join'])
    expect(peer.incarnationOf(PEER)).toBe(7_239)
  })

  it('first-hand evidence revives a dead member', () => {
    const m = createMembership({ timing, self: 'me', incarnation: 1 })
    m.watch('p', 0)
    m.tick(D)
    expect(types(m.heard('p', D + 1))).toEqual(['join'])
  })

  it('rumours round-trip through their encoding; junk decodes to undefined', () => {
    const r = { peer: PEER, state: 'dead' as const, incarnation: 1_795_780_851_872 }
    expect(decodeRumour(encodeRumour(r))).toEqual(r)
    const p = PEER
    for (const junk of ['', '[', '{}', `["${p}","zombie",1]`, `["${p}","alive",-1]`, '["","alive",1]', `["${p}","alive",1.5]`, '["not-a-peer-id","alive",1]']) {
      expect(decodeRumour(new TextEncoder().encode(junk))).toBeUndefined()
    }
  })
})

describe('expected heartbeats', () => {
  it('a peer that never heartbeats after we expected it is suspected, then dead, one suspicion period later than a watched one', () => {
    const m = createMembership({ timing, self: 'me', incarnation: 1 })
    m.heard('p', 0, 2)
    m.expect('p', 0)
    expect(m.nextDeadline(0)).toBe(2 * S)
    expect(m.tick(2 * S - 1).transitions).toEqual([])
    expect(types(m.tick(2 * S).transitions)).toEqual(['suspect'])
    expect(types(m.tick(S + D).transitions)).toEqual(['leave'])
  })

  it('an expectation is dropped when the peer refutes without ever heartbeating us', () => {
    const m = createMembership({ timing, self: 'me', incarnation: 1 })
    m.heard('p', 0, 2)
    m.expect('p', 0)
    m.tick(2 * S)
    expect(types(m.rumour({ peer: 'p', state: 'alive', incarnation: 3 }, 2 * S + 10).transitions)).toEqual(['recover'])
    expect(m.watching()).toEqual([])
    expect(m.tick(2 * S + 10 + D).transitions).toEqual([])
  })

  it('a peer that disowned our expectation is not expected again for ten suspicion periods, unless it heartbeats us', () => {
    const m = createMembership({ timing, self: 'me', incarnation: 1 })
    m.heard('p', 0, 2)
    m.expect('p', 0)
    m.tick(2 * S)
    m.rumour({ peer: 'p', state: 'alive', incarnation: 3 }, 2 * S + 10)
    // Renewed on the next membership change: ignored, so no new suspicion and refutation.
    m.expect('p', 2 * S + 20)
    expect(m.watching()).toEqual([])
    expect(m.tick(6 * S).transitions).toEqual([])
    m.expect('p', 2 * S + 10 + 10 * S)
    expect(m.watching()).toEqual(['p'])
    // A heartbeat ends the disowning at once.
    const n = createMembership({ timing, self: 'me', incarnation: 1 })
    n.heard('p', 0, 2)
    n.expect('p', 0)
    n.tick(2 * S)
    n.rumour({ peer: 'p', state: 'alive', incarnation: 3 }, 2 * S + 10)
    n.watch('p', 2 * S + 20, 3)
    n.unwatch('p')
    n.expect('p', 2 * S + 30)
    expect(n.watching()).toEqual(['p'])
  })

  it('a stale suspicion is not raised again about a member that refuted within the last suspicion period', () => {
    const m = createMembership({ timing, self: 'me', incarnation: 1 })
    m.heard('p', 0, 7)
    expect(types(m.rumour({ peer: 'p', state: 'suspect', incarnation: 7 }, 2 * S).transitions)).toEqual(['suspect'])
    expect(types(m.rumour({ peer: 'p', state: 'alive', incarnation: 8 }, 2 * S + 10).transitions)).toEqual(['recover'])
    // An older suspicion still in flight arrives: ignored while the refutation is fresh ...
    expect(m.rumour({ peer: 'p', state: 'suspect', incarnation: 7 }, 2 * S + 20)).toEqual({ transitions: [] })
    // ... and raised once the member has been quiet for a whole period since.
    expect(m.rumour({ peer: 'p', state: 'suspect', incarnation: 7 }, 3 * S + 10).relay).toEqual({ peer: 'p', state: 'suspect', incarnation: 8 })
  })

  it('a peer whose heartbeats come with long gaps (a starved box) gets proportionally longer before a suspicion', () => {
    const m = createMembership({ timing, self: 'me', incarnation: 1 })
    const beat = timing.heartbeatIntervalMs
    // Healthy: one heartbeat per interval, suspected after the configured silence.
    for (let t = 0; t <= 10 * beat; t += beat) m.watch('p', t, 2)
    expect(m.nextDeadline(10 * beat)).toBe(10 * beat + S)
    // A 2 s gap (its box stalled): from now on it needs 3 × 2 s of silence to be suspected.
    const last = 10 * beat + 2_000
    m.watch('p', last, 2)
    expect(m.nextDeadline(last)).toBe(last + 6_000)
    expect(m.tick(last + S).transitions).toEqual([])
    expect(types(m.tick(last + 6_000).transitions)).toEqual(['suspect'])
    expect(types(m.tick(last + 6_000 * D / S).transitions)).toEqual(['leave'])
  })

  it('a peer that slows its heartbeats on a quiet site is never suspected for it, and is still found dead', () => {
    const m = createMembership({ timing, self: 'me', incarnation: 1 })
    const base = timing.heartbeatIntervalMs
    let t = 0
    for (let i = 0; i < 20; i++) m.watch('p', (t += base), 2)
    // The sender's pace from here on, as the node computes it (see nextBeatInterval).
    let pace = base
    for (let i = 0; i < 50; i++) {
      pace = nextBeatInterval(pace, base, true)
      // Just before each beat arrives, the watcher has nothing to say.
      expect(m.tick(t + pace - 1).transitions).toEqual([])
      m.watch('p', (t += pace), 2)
    }
    expect(pace).toBe(QUIET_HEARTBEAT_FACTOR * base)
    // Silent from now on: suspected after three of its gaps, dead after four times the configured threshold.
    expect(m.tick(t + 3 * pace - 1).transitions).toEqual([])
    expect(types(m.tick(t + 3 * pace).transitions)).toEqual(['suspect'])
    expect(types(m.tick(t + QUIET_HEARTBEAT_FACTOR * D).transitions)).toEqual(['leave'])
  })

  it('patience shrinks back as heartbeats come regularly again, and is capped', () => {
    const m = createMembership({ timing, self: 'me', incarnation: 1 })
    const beat = timing.heartbeatIntervalMs
    m.watch('p', 0, 2)
    m.watch('p', 60_000, 2)
    // A minute-long gap: capped at ten times the configured thresholds.
    expect(m.nextDeadline(60_000)).toBe(60_000 + 10 * S)
    let t = 60_000
    for (let i = 0; i < 200; i++) m.watch('p', (t += beat), 2)
    expect(m.nextDeadline(t)).toBe(t + S)
    // A break in watching (the ring moved) starts the gap count afresh.
    m.unwatch('p')
    m.watch('p', t + 30_000, 2)
    expect(m.nextDeadline(t + 30_000)).toBe(t + 30_000 + S)
  })

  it('our own stall does not count as a watched peer\'s silence', () => {
    const m = createMembership({ timing, self: 'me', incarnation: 1 })
    m.watch('p', 0, 2)
    m.watch('q', 0, 2)
    m.rumour({ peer: 'q', state: 'suspect', incarnation: 2 }, 10)
    // Asleep from 10 to 10 + D: nothing was heard, but nothing could have been.
    m.pause(D)
    expect(m.tick(10 + D).transitions).toEqual([])
    expect(m.nextDeadline(10 + D)).toBe(D + S)
    expect(types(m.tick(D + S).transitions)).toEqual(['suspect'])
    expect(types(m.tick(2 * D).transitions)).toEqual(['leave', 'leave'])
    m.pause(0)
    m.pause(-5)
    expect(m.tick(3 * D).transitions).toEqual([])
  })

  it('a confirmed watch survives a refutation', () => {
    const m = createMembership({ timing, self: 'me', incarnation: 1 })
    m.expect('p', 0)
    expect(m.watching()).toEqual([])
    m.watch('p', 0, 2)
    m.tick(S)
    m.rumour({ peer: 'p', state: 'alive', incarnation: 3 }, S + 10)
    expect(m.watching()).toEqual(['p'])
  })

  it('a member back from the dead by first-hand evidence stays in dispute until its own refutation', () => {
    const m = createMembership({ timing, self: 'me', incarnation: 1 })
    m.heard('p', 0, 5)
    expect(m.disputed('p')).toBeUndefined()
    m.rumour({ peer: 'p', state: 'dead', incarnation: 5 }, 10)
    expect(m.disputed('p')).toBeUndefined()
    // Its heartbeat at the same incarnation brings it back here, but the site still holds the rumour.
    expect(types(m.heard('p', 20, 5))).toEqual(['join'])
    expect(m.get('p')?.liveness).toBe('alive')
    expect(m.disputed('p')).toBe(5)
    // An older alive rumour settles nothing; its refutation does.
    m.rumour({ peer: 'p', state: 'alive', incarnation: 5 }, 30)
    expect(m.disputed('p')).toBe(5)
    m.rumour({ peer: 'p', state: 'alive', incarnation: 6 }, 40)
    expect(m.disputed('p')).toBeUndefined()
    // A suspicion heard back the same way, settled by a heartbeat from a newer incarnation.
    m.rumour({ peer: 'p', state: 'suspect', incarnation: 6 }, 50)
    expect(types(m.watch('p', 60, 6))).toEqual(['recover'])
    expect(m.disputed('p')).toBe(6)
    m.watch('p', 70, 7)
    expect(m.disputed('p')).toBeUndefined()
    // A restart (newer incarnation) is no dispute, and neither is a new member.
    m.rumour({ peer: 'p', state: 'dead', incarnation: 7 }, 80)
    expect(types(m.heard('p', 90, 8))).toEqual(['join'])
    expect(m.disputed('p')).toBeUndefined()
    m.heard('q', 100)
    expect(m.disputed('q')).toBeUndefined()
  })
})

describe('membership digest', () => {
  it('tables that hold the same rumours agree; a rumour one of them missed, or our own refutation, shows until it is known', () => {
    const m = { a: createMembership({ timing, self: 'a', incarnation: 10 }), b: createMembership({ timing, self: 'b', incarnation: 20 }) }
    m.a.heard('b', 0, 20)
    m.b.heard('a', 0, 10)
    for (const t of [m.a, m.b]) t.heard('c', 0, 30)
    expect(m.a.digest()).toBe(m.b.digest())
    // A rumour only one of them heard.
    m.a.rumour({ peer: 'c', state: 'dead', incarnation: 30 }, 1)
    expect(m.a.digest()).not.toBe(m.b.digest())
    m.b.rumour({ peer: 'c', state: 'dead', incarnation: 30 }, 2)
    expect(m.a.digest()).toBe(m.b.digest())
    // b refutes a suspicion of itself: its own row moves up, and a agrees once it hears the refutation.
    const { refute } = m.b.rumour({ peer: 'b', state: 'suspect', incarnation: 20 }, 3)
    expect(refute?.incarnation).toBe(21)
    expect(m.a.digest()).not.toBe(m.b.digest())
    if (refute !== undefined) m.a.rumour(refute, 4)
    expect(m.a.digest()).toBe(m.b.digest())
    // A member only one of them knows of.
    m.a.learn('d', 5)
    expect(m.a.digest()).not.toBe(m.b.digest())
  })

  it('changedAt moves with what the digest hashes, not with heartbeats, touches or rumours that change nothing', () => {
    const m = createMembership({ timing, self: 'a', incarnation: 10 })
    expect(m.changedAt()).toBe(-Infinity)
    m.heard('b', 100, 20)
    expect(m.changedAt()).toBe(100)
    m.watch('b', 200, 20)
    m.touch('b', 300)
    m.rumour({ peer: 'b', state: 'alive', incarnation: 20 }, 400)
    m.learn('b', 500)
    expect(m.changedAt()).toBe(100)
    m.rumour({ peer: 'b', state: 'suspect', incarnation: 20 }, 600)
    expect(m.changedAt()).toBe(600)
    m.rumour({ peer: 'b', state: 'alive', incarnation: 21 }, 700)
    expect(m.changedAt()).toBe(700)
    m.rumour({ peer: 'a', state: 'suspect', incarnation: 10 }, 800)
    expect(m.changedAt()).toBe(800)
    m.learn('c', 900)
    expect(m.changedAt()).toBe(900)
  })
})

describe('numbers from the wire', () => {
  const me = PEER
  it('a dead rumour at the top of the safe integers is refused on the wire, and by the table', () => {
    for (const incarnation of [Number.MAX_SAFE_INTEGER, MAX_INCARNATION, MAX_INCARNATION + 1]) {
      expect(decodeRumour(encodeRumour({ peer: me, state: 'dead', incarnation }))).toBeUndefined()
    }
    // An alive rumour may carry the bound itself: a refutation of a dead rumour just below it.
    expect(decodeRumour(encodeRumour({ peer: me, state: 'alive', incarnation: MAX_INCARNATION }))?.incarnation).toBe(MAX_INCARNATION)
    const m = createMembership({ timing, self: me, incarnation: 1_000 })
    expect(m.rumour({ peer: me, state: 'dead', incarnation: Number.MAX_SAFE_INTEGER }, 0)).toEqual({ transitions: [] })
    expect(m.incarnation()).toBe(1_000)
  })

  it('a refutation saturates at the bound, and the heartbeat that carries it still encodes', () => {
    const m = createMembership({ timing, self: me, incarnation: 1_000 })
    const { refute } = m.rumour({ peer: me, state: 'dead', incarnation: MAX_INCARNATION - 1 }, 0)
    expect(refute).toEqual({ peer: me, state: 'alive', incarnation: MAX_INCARNATION })
    expect(m.rumour({ peer: me, state: 'suspect', incarnation: MAX_INCARNATION - 1 }, 0).refute?.incarnation).toBe(MAX_INCARNATION)
    const hb = decodeHeartbeat(encodeHeartbeat({ flags: 0, incarnation: m.incarnation(), digestHash: 7 }))
    expect(hb.incarnation).toBe(MAX_INCARNATION)
  })

  it('a heartbeat or a peer-exchange row with an incarnation out of range is a MalformedFrameError naming the bound', () => {
    const over = encodeHeartbeat({ flags: 0, incarnation: MAX_INCARNATION + 1, digestHash: 7 })
    expect(() => decodeHeartbeat(over)).toThrow(MalformedFrameError)
    expect(() => decodeHeartbeat(over)).toThrow(/at most/)
    const row = encodePeers([{ id: me, addresses: [], ageMs: 0, liveness: 'dead', incarnation: Number.MAX_SAFE_INTEGER }]).subarray(1)
    expect(() => decodePeers(row)).toThrow(MalformedFrameError)
    expect(() => decodePeers(row)).toThrow(/out of range/)
  })

  it('rows about unknown members from second-hand news stop at the bound; first-hand evidence still counts', () => {
    const m = createMembership({ timing, self: 'me', incarnation: 1, maxMembers: 3 })
    for (let i = 0; i < 10; i++) m.rumour({ peer: `x${i}`, state: 'dead', incarnation: 5 }, 0)
    m.learn('y', 0)
    expect(m.list().length).toBe(3)
    m.heard('z', 0)
    expect(m.get('z')?.liveness).toBe('alive')
    expect(m.firstHand('z')).toBe(true)
    expect(m.firstHand('x0')).toBe(false)
  })
})
