import { describe, expect, it } from 'vitest'
import { compareEntries, mergeEntry, slotOf, type WireEntryMeta } from '../../../p2p/state/merge.ts'
import { seededRandom, type RandomSource } from '../../../util/random.ts'

type Replica = Map<string, WireEntryMeta>

/** Delivers entries one by one into a replica, as the store does. */
function deliver (into: Replica, entries: WireEntryMeta[]): Replica {
  const out = new Map(into)
  for (const e of entries) {
    const slot = slotOf(e.owner, e.key)
    if (mergeEntry(out.get(slot), e) === 'take') out.set(slot, e)
  }
  return out
}

/** Merges two replicas (what anti-entropy achieves). */
function join (x: Replica, y: Replica): Replica {
  return deliver(x, [...y.values()])
}

function canon (r: Replica): string[] {
  return [...r.entries()].map(([slot, e]) => `${slot}|${e.version}|${Buffer.from(e.hash).toString('hex')}`).sort()
}

/** A small pool so that slots, versions and hashes collide often. */
function pool (rnd: RandomSource): WireEntryMeta[] {
  const out: WireEntryMeta[] = []
  for (let i = 0; i < 24; i++) {
    out.push({ owner: `o${rnd.int(2)}`, key: `k${rnd.int(3)}`, version: 1 + rnd.int(3), hash: Uint8Array.of(rnd.int(3), rnd.int(2)) })
  }
  return out
}

function sample (rnd: RandomSource, from: WireEntryMeta[], n: number): WireEntryMeta[] {
  return Array.from({ length: n }, () => from[rnd.int(from.length)] as WireEntryMeta)
}

const SEEDS = Array.from({ length: 200 }, (_, i) => i + 1)

describe('mergeEntry', () => {
  it('takes into an empty slot, a higher version, and the higher hash on a tie', () => {
    const e = (version: number, h: number): WireEntryMeta => ({ owner: 'o', key: 'k', version, hash: Uint8Array.of(h) })
    expect(mergeEntry(undefined, e(1, 0))).toBe('take')
    expect(mergeEntry(e(1, 9), e(2, 0))).toBe('take')
    expect(mergeEntry(e(2, 0), e(1, 9))).toBe('keep')
    expect(mergeEntry(e(2, 1), e(2, 2))).toBe('take')
    expect(mergeEntry(e(2, 2), e(2, 1))).toBe('keep')
    expect(mergeEntry(e(2, 2), e(2, 2))).toBe('same')
  })

  it('is a total order: antisymmetric and transitive over random triples', () => {
    const rnd = seededRandom(99)
    const p = pool(rnd)
    for (let i = 0; i < 2000; i++) {
      const [a, b, c] = sample(rnd, p, 3) as [WireEntryMeta, WireEntryMeta, WireEntryMeta]
      expect(Math.sign(compareEntries(a, b)) + Math.sign(compareEntries(b, a))).toBe(0)
      if (compareEntries(a, b) <= 0 && compareEntries(b, c) <= 0) expect(compareEntries(a, c)).toBeLessThanOrEqual(0)
    }
  })

  it('commutative: any delivery order of a multiset gives the same replica', () => {
    for (const seed of SEEDS) {
      const rnd = seededRandom(seed)
      const entries = sample(rnd, pool(rnd), 1 + rnd.int(30))
      const first = canon(deliver(new Map(), entries))
      for (let k = 0; k < 5; k++) {
        const shuffled = entries.slice()
        for (let i = shuffled.length - 1; i > 0; i--) {
          const j = rnd.int(i + 1)
          const t = shuffled[i] as WireEntryMeta
          shuffled[i] = shuffled[j] as WireEntryMeta
          shuffled[j] = t
        }
        expect(canon(deliver(new Map(), shuffled)), `seed ${seed}`).toEqual(first)
      }
      // and it is the per-slot maximum
      const max = new Map<string, WireEntryMeta>()
      for (const e of entries) {
        const cur = max.get(slotOf(e.owner, e.key))
        if (cur === undefined || compareEntries(e, cur) > 0) max.set(slotOf(e.owner, e.key), e)
      }
      expect(first).toEqual(canon(max))
    }
  })

  it('associative and commutative as a join of replicas', () => {
    for (const seed of SEEDS) {
      const rnd = seededRandom(seed * 7919)
      const p = pool(rnd)
      const [x, y, z] = [0, 1, 2].map(() => deliver(new Map(), sample(rnd, p, rnd.int(12)))) as [Replica, Replica, Replica]
      expect(canon(join(join(x, y), z)), `seed ${seed}`).toEqual(canon(join(x, join(y, z))))
      expect(canon(join(x, y)), `seed ${seed}`).toEqual(canon(join(y, x)))
    }
  })

  it('idempotent: re-delivery and self-join change nothing', () => {
    for (const seed of SEEDS) {
      const rnd = seededRandom(seed * 31)
      const entries = sample(rnd, pool(rnd), rnd.int(20))
      const once = deliver(new Map(), entries)
      expect(canon(deliver(once, entries)), `seed ${seed}`).toEqual(canon(once))
      expect(canon(join(once, once))).toEqual(canon(once))
      for (const e of once.values()) expect(mergeEntry(e, e)).toBe('same')
    }
  })
})
