import { describe, expect, it } from 'vitest'
import { cryptoRandom, seededRandom } from '../../util/random.ts'

describe('seededRandom', () => {
  it('repeats its sequence for the same seed and differs for another', () => {
    const a = seededRandom(42)
    const b = seededRandom(42)
    const c = seededRandom(43)
    const seqA = Array.from({ length: 20 }, () => a.int(1_000_000))
    expect(Array.from({ length: 20 }, () => b.int(1_000_000))).toEqual(seqA)
    expect(Array.from({ length: 20 }, () => c.int(1_000_000))).not.toEqual(seqA)
  })

  it('spreads ints over the whole range', () => {
    const r = seededRandom(7)
    const counts = new Array<number>(10).fill(0)
    for (let i = 0; i < 10_000; i++) counts[r.int(10)]!++
    for (const n of counts) expect(n).toBeGreaterThan(800)
  })

  it('rejects a non-positive bound', () => {
    expect(() => seededRandom(1).int(0)).toThrow(RangeError)
  })
})

describe('cryptoRandom', () => {
  it('returns the requested number of bytes', () => {
    expect(cryptoRandom.bytes(32)).toHaveLength(32)
    const f = cryptoRandom.float()
    expect(f).toBeGreaterThanOrEqual(0)
    expect(f).toBeLessThan(1)
  })
})
