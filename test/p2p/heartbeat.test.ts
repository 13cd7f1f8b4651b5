import { describe, expect, it } from 'vitest'
import { MalformedFrameError } from '../../p2p/errors.ts'
import { HEARTBEAT_LAST, QUIET_HEARTBEAT_FACTOR, decodeHeartbeat, digestHash, encodeHeartbeat, nextBeatInterval, ringPredecessors, ringSuccessors, shortId } from '../../p2p/heartbeat.ts'

describe('heartbeat frames', () => {
  it('round-trip and stay around ten bytes', () => {
    const hb = { flags: HEARTBEAT_LAST, incarnation: 1_795_780_851_872, digestHash: 0xfedcba98 }
    const enc = encodeHeartbeat(hb)
    expect(enc.length).toBeLessThanOrEqual(14)
    expect(decodeHeartbeat(enc)).toEqual(hb)
  })

  it('rejects wrong versions, truncation and trailing bytes', () => {
    const good = encodeHeartbeat({ flags: 0, incarnation: 5, digestHash: 1 })
    for (const bad of [Uint8Array.of(1, 0, 0), good.subarray(0, good.length - 1), new Uint8Array([...good, 0]), new Uint8Array(0), Uint8Array.of(2)]) {
      expect(() => decodeHeartbeat(bad)).toThrow(MalformedFrameError)
    }
  })

  it('version 3 carries the members hash; version 2 frames (nodes that predate it) still decode, without one', () => {
    const v3 = { flags: 0, incarnation: 1_795_780_851_872, digestHash: 7, membersHash: 0xfedcba98 }
    const enc = encodeHeartbeat(v3)
    expect(enc[0]).toBe(3)
    expect(enc.length).toBeLessThanOrEqual(18)
    expect(decodeHeartbeat(enc)).toEqual(v3)
    const v2 = encodeHeartbeat({ flags: 0, incarnation: 5, digestHash: 7 })
    expect(v2[0]).toBe(2)
    expect(decodeHeartbeat(v2)).toEqual({ flags: 0, incarnation: 5, digestHash: 7 })
    // A version byte that does not match the length: a version 3 without its hash, a version 2 with one.
    expect(() => decodeHeartbeat(Uint8Array.of(3, ...v2.subarray(1)))).toThrow(MalformedFrameError)
    expect(() => decodeHeartbeat(Uint8Array.of(2, ...enc.subarray(1)))).toThrow(MalformedFrameError)
  })

  it('short ids and digest hashes are stable 32-bit values', () => {
    expect(shortId('12D3KooWx')).toBe(shortId('12D3KooWx'))
    expect(shortId('12D3KooWx')).not.toBe(shortId('12D3KooWy'))
    expect(digestHash(Uint8Array.of(1))).not.toBe(digestHash(Uint8Array.of(2)))
  })
})

describe('heartbeat ring', () => {
  const ids = Array.from({ length: 10 }, (_, i) => `peer-${i}`)

  it('with a shared view every node is watched by exactly k others', () => {
    const watchers = new Map<string, number>()
    for (const self of ids) {
      const succ = ringSuccessors(self, ids.filter((x) => x !== self), 2)
      expect(succ).toHaveLength(2)
      expect(succ).not.toContain(self)
      for (const s of succ) watchers.set(s, (watchers.get(s) ?? 0) + 1)
    }
    expect([...watchers.values()].every((n) => n === 2)).toBe(true)
    expect(watchers.size).toBe(ids.length)
  })

  it('the predecessors of a node are exactly the nodes that count it among their successors', () => {
    for (const k of [1, 2, 3]) {
      for (const self of ids) {
        const others = ids.filter((x) => x !== self)
        const due = others.filter((p) => ringSuccessors(p, ids.filter((x) => x !== p), k).includes(self))
        expect(new Set(ringPredecessors(self, others, k))).toEqual(new Set(due))
      }
    }
    expect(ringPredecessors('a', [], 1)).toEqual([])
    expect(ringPredecessors('a', ['b'], 3)).toEqual(['b'])
  })

  it('small rings: fewer peers than k, or none', () => {
    expect(ringSuccessors('a', ['b'], 2)).toEqual(['b'])
    expect(ringSuccessors('a', [], 2)).toEqual([])
    expect(ringSuccessors('a', ['a', 'b', 'b'], 3)).toEqual(['b'])
  })
})

describe('heartbeat pace', () => {
  it('keeps the configured interval while the site is busy, and on a quiet site grows step by step to a cap', () => {
    expect(nextBeatInterval(500, 500, false)).toBe(500)
    const paces: number[] = []
    let ms = 500
    for (let i = 0; i < 6; i++) paces.push(ms = nextBeatInterval(ms, 500, true))
    expect(paces).toEqual([750, 1125, 1688, 2000, 2000, 2000])
    expect(QUIET_HEARTBEAT_FACTOR * 500).toBe(2000)
    // A change on the site: straight back to the configured interval.
    expect(nextBeatInterval(2000, 500, false)).toBe(500)
  })
})
