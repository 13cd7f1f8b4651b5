import { describe, expect, it } from 'vitest'
import { buildDigest, parseDigest, selectMissing, type DigestItem } from '../../../p2p/state/digest.ts'
import { seededRandom } from '../../../util/random.ts'

const h = (n: number): Uint8Array => Uint8Array.from({ length: 32 }, (_, i) => (n * 31 + i) & 0xff)
const item = (owner: string, key: string, version: number, hash = version): DigestItem => ({ owner, key, version, hash: h(hash) })
const keys = (xs: DigestItem[]): string[] => xs.map(x => `${x.owner}/${x.key}@${x.version}`).sort()

describe('digest', () => {
  const mine = [item('A', 'k1', 3), item('A', 'k2', 1), item('B', 'x', 2), item('C', 'y', 1)]

  it('round-trips and selects what the other side lacks or holds older', () => {
    const theirs = [item('A', 'k1', 2), item('A', 'k2', 1), item('B', 'x', 5)]
    const parsed = parseDigest(buildDigest(theirs))
    expect(parsed?.owners.size).toBe(2)
    expect(keys(selectMissing(mine, parsed!))).toEqual(['A/k1@3', 'C/y@1'])
    expect(selectMissing(mine, parseDigest(buildDigest(mine))!)).toEqual([])
  })

  it('breaks equal-version ties by hash like the merge', () => {
    const low = [item('A', 'k', 1, 1)]
    const high = [item('A', 'k', 1, 2)]
    const winnerIsHigh = Buffer.compare(h(2).subarray(0, 8), h(1).subarray(0, 8)) > 0
    expect(selectMissing(high, parseDigest(buildDigest(low))!)).toHaveLength(winnerIsHigh ? 1 : 0)
    expect(selectMissing(low, parseDigest(buildDigest(high))!)).toHaveLength(winnerIsHigh ? 0 : 1)
  })

  it('stays within its budget by summarising owners, and then sends their whole set', () => {
    const many = Array.from({ length: 200 }, (_, i) => item(`owner-${i % 10}`, `key-${i}`, 1))
    const full = buildDigest(many, 1 << 20)
    const small = buildDigest(many, 1024)
    expect(small.length).toBeLessThanOrEqual(1024)
    expect(small.length).toBeLessThan(full.length)
    const parsed = parseDigest(small)!
    expect([...parsed.owners.values()].some(o => o.entries === undefined)).toBe(true)
    const changed = many.map((x, i) => i === 0 ? { ...x, version: 2 } : x)
    // owner-0 differs: with detail only the changed entry goes, with a summary all its 20 entries
    const detailed = parsed.owners.get('owner-0')?.entries !== undefined
    expect(selectMissing(changed, parsed)).toHaveLength(detailed ? 1 : 20)
    const last = [...parsed.owners.entries()].find(([, o]) => o.entries === undefined)?.[0] as string
    const changedLast = many.map(x => x.owner === last && x.key === many.find(y => y.owner === last)?.key ? { ...x, version: 2 } : x)
    expect(selectMissing(changedLast, parsed)).toHaveLength(20)
    expect(selectMissing(many, parsed)).toEqual([])
  })

  it('rejects malformed digests without throwing', () => {
    const good = buildDigest(mine)
    const rnd = seededRandom(5)
    expect(parseDigest(new Uint8Array())).toBeUndefined()
    expect(parseDigest(good.subarray(0, good.length - 1))).toBeUndefined()
    expect(parseDigest(new Uint8Array([...good, 1]))).toBeUndefined()
    for (let i = 0; i < 500; i++) {
      const m = good.slice()
      m[rnd.int(m.length)] = rnd.int(256)
      expect(() => parseDigest(m)).not.toThrow()
      expect(() => parseDigest(rnd.bytes(rnd.int(80)))).not.toThrow()
    }
  })
})
