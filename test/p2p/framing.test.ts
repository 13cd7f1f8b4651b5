import { describe, expect, it } from 'vitest'
import { FrameTooLargeError, MalformedFrameError, StreamEndedError } from '../../p2p/errors.ts'
import { FrameReader, decodeList, decodeVarint, encodeFrame, encodeList, encodeVarint } from '../../p2p/framing.ts'

async function * chunks (parts: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield p
}

async function readAll (parts: Uint8Array[], max = 1024): Promise<Uint8Array[]> {
  const r = new FrameReader(chunks(parts), max)
  const out: Uint8Array[] = []
  for (;;) {
    const f = await r.next()
    if (f === undefined) return out
    out.push(f)
  }
}

describe('framing', () => {
  it('varints round-trip at their boundaries', () => {
    for (const n of [0, 1, 127, 128, 16383, 16384, 2 ** 31, 2 ** 53 - 1]) {
      expect(decodeVarint(encodeVarint(n))).toEqual({ value: n, bytes: encodeVarint(n).length })
    }
    expect(() => encodeVarint(-1)).toThrow(RangeError)
    expect(decodeVarint(Uint8Array.of(0x80))).toBeUndefined()
    expect(() => decodeVarint(new Uint8Array(9).fill(0x80))).toThrow(MalformedFrameError)
  })

  it('a varint above 2^53 - 1 (it would not be exact) is a MalformedFrameError', () => {
    // Eight bytes of 0xff then 0x7f: 2^56 - 1.
    const big = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f)
    expect(() => decodeVarint(big)).toThrow(MalformedFrameError)
    expect(decodeVarint(encodeVarint(Number.MAX_SAFE_INTEGER))?.value).toBe(Number.MAX_SAFE_INTEGER)
  })

  it('reassembles frames split across and merged within chunks', async () => {
    const a = encodeFrame(Uint8Array.of(1, 2, 3))
    const b = encodeFrame(new Uint8Array(300).fill(7))
    const joined = new Uint8Array([...a, ...b])
    const split = [joined.subarray(0, 2), joined.subarray(2, 5), joined.subarray(5, 200), joined.subarray(200)]
    expect(await readAll(split)).toEqual([Uint8Array.of(1, 2, 3), new Uint8Array(300).fill(7)])
    expect(await readAll([encodeFrame(new Uint8Array(0))])).toEqual([new Uint8Array(0)])
  })

  it('refuses an oversized length before buffering the body, and a truncated frame', async () => {
    await expect(readAll([encodeVarint(5000)], 1024)).rejects.toBeInstanceOf(FrameTooLargeError)
    await expect(readAll([encodeFrame(new Uint8Array(10)).subarray(0, 5)])).rejects.toBeInstanceOf(MalformedFrameError)
    // A clean end where a frame was due is the peer giving up, not a malformed frame.
    const ended = new FrameReader(chunks([])).expect('a digest')
    await expect(ended).rejects.toThrow(/before a digest/)
    await expect(ended).rejects.toBeInstanceOf(StreamEndedError)
    await expect(ended).rejects.not.toBeInstanceOf(MalformedFrameError)
  })

  it('lists round-trip; counts, lengths and trailing bytes are checked', () => {
    const items = [new Uint8Array(0), Uint8Array.of(1), new Uint8Array(200).fill(2)]
    expect(decodeList(encodeList(items), 10)).toEqual(items)
    expect(() => decodeList(encodeList(items), 2)).toThrow(MalformedFrameError)
    const enc = encodeList(items)
    expect(() => decodeList(enc.subarray(0, enc.length - 1), 10)).toThrow(MalformedFrameError)
    expect(() => decodeList(new Uint8Array([...enc, 0]), 10)).toThrow(MalformedFrameError)
    expect(() => decodeList(new Uint8Array(0), 10)).toThrow(MalformedFrameError)
  })
})
