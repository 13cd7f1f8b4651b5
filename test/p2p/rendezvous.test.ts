import { describe, expect, it } from 'vitest'
import { deriveKeys } from '../../token/index.ts'
import { ManualClock } from '../../util/clock.ts'
import { silentLogger } from '../../util/log.ts'
import { createLoops } from '../../p2p/loops.ts'
import { createRendezvous, type RendezvousDht, type RendezvousEvent } from '../../p2p/rendezvous.ts'
import { LAB, flush } from './fake-net.ts'
import { newToken } from './harness.ts'

/** A DHT that answers every lookup with the same providers, three times over (as every record holder does). */
function fakeDht (providers: () => string[]): RendezvousDht & { provides: number, lookups: number } {
  const dht = {
    provides: 0,
    lookups: 0,
    provide: async function * (): AsyncGenerator<{ name: string }> { dht.provides++; yield { name: 'PEER_RESPONSE' } },
    findProviders: async function * (): AsyncGenerator<RendezvousEvent> {
      dht.lookups++
      for (let i = 0; i < 3; i++) yield { name: 'PROVIDER', providers: providers().map((id) => ({ id, addresses: [`/ip4/10.0.0.${i}/tcp/4001`] })) }
    }
  }
  return dht
}

describe('rendezvous', () => {
  const keys = deriveKeys(newToken())
  const setup = (providers: () => string[], known: Set<string>): { clock: ManualClock, dht: ReturnType<typeof fakeDht>, learned: string[], start: () => AbortController, round: () => Promise<number> } => {
    const clock = new ManualClock(10 * LAB.rendezvousEpochMs)
    const dht = fakeDht(providers)
    const learned: string[] = []
    const admitted = new Set<string>(['someone'])
    const r = createRendezvous({
      self: 'me',
      clock,
      log: silentLogger,
      timing: LAB,
      dht,
      rendezvousKey: keys.rendezvousKey,
      connectionCount: () => 1,
      admitted,
      knows: (p) => known.has(p),
      learnPeer: (p) => { learned.push(p); known.add(p) },
      lastJoinAt: () => -Infinity
    })
    return {
      clock,
      dht,
      learned,
      round: r.round,
      start: () => { const c = new AbortController(); r.start(c.signal, createLoops(clock, c.signal, silentLogger)); return c }
    }
  }

  it('a round provides the key once per half epoch, reports new providers, and stops a lookup once answers repeat', async () => {
    const known = new Set<string>()
    const t = setup(() => ['p1', 'p2', 'me'], known)
    const c = t.start()
    expect(await t.round()).toBe(2)
    expect(new Set(t.learned)).toEqual(new Set(['p1', 'p2']))
    expect(t.dht.provides).toBe(1)
    // Early in an epoch both the current and the previous epoch's keys are looked up.
    expect(t.dht.lookups).toBe(2)
    // Same answers again: nothing fresh, and no second provide within the half epoch.
    expect(await t.round()).toBe(0)
    expect(t.dht.provides).toBe(1)
    c.abort()
  })

  it('rounds back off while nothing new turns up, up to half an epoch apart', async () => {
    const t = setup(() => ['p1'], new Set(['p1']))
    const c = t.start()
    const times: number[] = []
    let last = t.dht.lookups
    const start = t.clock.now()
    for (let ms = 0; ms < LAB.rendezvousEpochMs * 2; ms += LAB.rendezvousIntervalMs / 4) {
      await t.clock.advanceAsync(LAB.rendezvousIntervalMs / 4)
      await flush()
      if (t.dht.lookups !== last) { times.push(t.clock.now() - start); last = t.dht.lookups }
    }
    const gaps = times.slice(1).map((x, i) => x - (times[i] as number))
    expect(gaps.length).toBeGreaterThan(2)
    // Non-decreasing gaps, the last at the cap of half an epoch.
    for (let i = 1; i < gaps.length; i++) expect(gaps[i]).toBeGreaterThanOrEqual(gaps[i - 1] as number)
    expect(Math.max(...gaps)).toBeLessThanOrEqual(LAB.rendezvousEpochMs / 2 + LAB.rendezvousIntervalMs)
    expect(Math.max(...gaps)).toBeGreaterThan(LAB.rendezvousIntervalMs)
    c.abort()
  })
})
