import { describe, expect, it } from 'vitest'
import { ByteReader, ByteWriter, CodecError } from '../../../p2p/state/codec.ts'

describe('codec', () => {
  it('round-trips varints up to 2^53 - 1, strings and bytes', () => {
    const values = [0, 1, 127, 128, 300, 2 ** 32, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER]
    const w = new ByteWriter()
    for (const v of values) w.varint(v)
    w.string('vpn/ädvert').bytes(Uint8Array.of(1, 2, 3))
    const r = new ByteReader(w.finish())
    expect(values.map(() => r.varint())).toEqual(values)
    expect(r.string(64)).toBe('vpn/ädvert')
    expect([...r.bytes(3)]).toEqual([1, 2, 3])
    expect(() => { r.end() }).not.toThrow()
  })

  it('refuses truncation, oversize fields, non-minimal and too-long varints, bad UTF-8', () => {
    expect(() => new ByteReader(Uint8Array.of(0x80)).varint()).toThrow(CodecError)
    expect(() => new ByteReader(Uint8Array.of(0x81, 0x00)).varint()).toThrow(CodecError)
    expect(() => new ByteReader(new Uint8Array(9).fill(0xff)).varint()).toThrow(CodecError)
    expect(() => new ByteReader(Uint8Array.of(5, 1, 2)).bytes(10)).toThrow(CodecError)
    expect(() => new ByteReader(Uint8Array.of(3, 1, 2, 3)).bytes(2)).toThrow(CodecError)
    expect(() => new ByteReader(Uint8Array.of(1, 0xff)).string(4)).toThrow(CodecError)
    expect(() => new ByteWriter().varint(-1)).toThrow(RangeError)
  })
})
