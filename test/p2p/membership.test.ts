import { describe, expect, it } from 'vitest'
import { PRESETS } from '../../config/presets.ts'
import { createMembership, livenessFor } from '../../p2p/membership.ts'

const timing = PRESETS.lan

describe('livenessFor', () => {
  it.each([
    [0, 'alive'], [timing.suspectAfterMs - 1, 'alive'], [timing.suspectAfterMs, 'suspect'],
    [timing.deadAfterMs - 1, 'suspect'], [timing.deadAfterMs, 'dead']
  ] as const)('silence of %i ms is %s', (age, expected) => {
    expect(livenessFor(age, timing)).toBe(expected)
  })

  it('the lan preset declares a silent node dead within 3 s', () => {
    expect(timing.deadAfterMs).toBeLessThanOrEqual(3_000)
    expect(PRESETS.lab.deadAfterMs).toBeLessThan(timing.deadAfterMs)
  })
})

describe('membership table', () => {
  it('joins on first fresh sighting, suspects, leaves, and joins again under the same id', () => {
    const m = createMembership(timing)
    expect(m.observe('p', 1000, 1000, { direct: true, discoveredBy: 'mdns' }).map((t) => t.type)).toEqual(['join'])
    expect(m.observe('p', 1100, 1100, { direct: true })).toEqual([])
    expect(m.nextDeadline(1100)).toBe(1100 + timing.suspectAfterMs)
    expect(m.evaluate(1100 + timing.suspectAfterMs).map((t) => t.type)).toEqual(['suspect'])
    expect(m.evaluate(1100 + timing.deadAfterMs).map((t) => t.type)).toEqual(['leave'])
    expect(m.get('p')?.liveness).toBe('dead')
    expect(m.nextDeadline(10_000)).toBeUndefined()
    const back = m.observe('p', 20_000, 20_000, { direct: true })
    expect(back.map((t) => t.type)).toEqual(['join'])
    expect(back[0]?.member).toMatchObject({ peerId: 'p', liveness: 'alive', discoveredBy: 'mdns', lastSeen: 20_000 })
  })

  it('a suspect recovers on a sighting without a join event', () => {
    const m = createMembership(timing)
    m.observe('p', 0, 0)
    m.evaluate(timing.suspectAfterMs)
    expect(m.observe('p', timing.suspectAfterMs + 1, timing.suspectAfterMs + 1).map((t) => t.type)).toEqual(['recover'])
  })

  it('an old relayed sighting neither revives a dead member nor moves lastSeen back', () => {
    const m = createMembership(timing)
    m.observe('p', 0, 0)
    m.evaluate(timing.deadAfterMs)
    expect(m.observe('p', 1, timing.deadAfterMs + 10)).toEqual([])
    expect(m.get('p')?.liveness).toBe('dead')
    m.observe('q', 5000, 5000)
    m.observe('q', 4000, 5000)
    expect(m.get('q')?.lastSeen).toBe(5000)
  })

  it('a first sighting that is already old records the peer as dead without events', () => {
    const m = createMembership(timing)
    expect(m.observe('p', 0, timing.deadAfterMs * 2)).toEqual([])
    expect(m.get('p')?.liveness).toBe('dead')
  })

  it('tracks first-hand evidence separately from relayed sightings', () => {
    const m = createMembership(timing)
    m.observe('p', 100, 100, { direct: false })
    expect(m.directAt('p')).toBeUndefined()
    m.observe('p', 200, 200, { direct: true })
    expect(m.directAt('p')).toBe(200)
    expect(m.list().map((x) => x.peerId)).toEqual(['p'])
  })
})
