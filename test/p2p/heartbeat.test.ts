import { describe, expect, it } from 'vitest'
import { MalformedFrameError } from '../../p2p/errors.ts'
import { MAX_HEARTBEAT_IDS, decodeHeartbeat, encodeHeartbeat, shortId } from '../../p2p/heartbeat.ts'

describe('heartbeat frames', () => {
  it('an idle heartbeat is three bytes', () => {
    expect(encodeHeartbeat({ wants: [], seen: [] }).length).toBe(3)
  })

  it('round-trips wants and sightings', () => {
    const hb = { wants: [shortId('a'), 0, 0xffffffff], seen: [{ id: shortId('b'), ageMs: 0 }, { id: 7, ageMs: 123456 }] }
    expect(decodeHeartbeat(encodeHeartbeat(hb))).toEqual(hb)
  })

  it('truncates lists to the bound', () => {
    const wants = Array.from({ length: MAX_HEARTBEAT_IDS + 10 }, (_, i) => i)
    expect(decodeHeartbeat(encodeHeartbeat({ wants, seen: [] })).wants).toHaveLength(MAX_HEARTBEAT_IDS)
  })

  it('rejects wrong versions, truncation, oversized counts and trailing bytes', () => {
    const good = encodeHeartbeat({ wants: [1], seen: [{ id: 2, ageMs: 300 }] })
    for (const bad of [Uint8Array.of(2, 0, 0), good.subarray(0, good.length - 1), Uint8Array.of(1, 0x80, 0x04), new Uint8Array([...good, 0]), new Uint8Array(0)]) {
      expect(() => decodeHeartbeat(bad)).toThrow(MalformedFrameError)
    }
  })

  it('short ids are stable 32-bit values', () => {
    expect(shortId('12D3KooWx')).toBe(shortId('12D3KooWx'))
    expect(shortId('12D3KooWx')).not.toBe(shortId('12D3KooWy'))
    expect(shortId('x')).toBeLessThan(2 ** 32)
  })
})
