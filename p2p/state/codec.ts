/**
 * Byte-level building blocks shared by the wire, digest and snapshot formats:
 * unsigned LEB128 varints up to 2^53 − 1, length-prefixed bytes and UTF-8 strings.
 * The reader never reads past its input; every violation throws `CodecError`,
 * which the decoders above it turn into a "malformed" verdict.
 */

/** Raised by `ByteReader` on truncated or out-of-range input. Internal to the decoders. */
export class CodecError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'CodecError'
  }
}

const encoder = new TextEncoder()
const strictDecoder = new TextDecoder('utf-8', { fatal: true })

/** Appends fields to a growing buffer. */
export class ByteWriter {
  private buf = new Uint8Array(256)
  private len = 0

  private reserve (n: number): void {
    if (this.len + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.len + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.len))
    this.buf = next
  }

  /** Bytes written so far. */
  get length (): number {
    return this.len
  }

  u8 (v: number): this {
    this.reserve(1)
    this.buf[this.len++] = v & 0xff
    return this
  }

  /** An unsigned integer in [0, 2^53 − 1] as LEB128. */
  varint (v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`varint needs a safe non-negative integer, got ${v}`)
    let n = v
    while (n >= 0x80) {
      this.u8((n % 0x80) | 0x80)
      n = Math.floor(n / 0x80)
    }
    return this.u8(n)
  }

  raw (bytes: Uint8Array): this {
    this.reserve(bytes.length)
    this.buf.set(bytes, this.len)
    this.len += bytes.length
    return this
  }

  /** Length-prefixed bytes. */
  bytes (bytes: Uint8Array): this {
    return this.varint(bytes.length).raw(bytes)
  }

  /** Length-prefixed UTF-8. */
  string (s: string): this {
    return this.bytes(encoder.encode(s))
  }

  /** A copy of the bytes written. */
  finish (): Uint8Array {
    return this.buf.slice(0, this.len)
  }
}

/** Reads fields from a buffer; throws `CodecError` on anything out of bounds. */
export class ByteReader {
  private readonly buf: Uint8Array
  private pos = 0

  constructor (buf: Uint8Array) {
    this.buf = buf
  }

  /** Current read offset. */
  get offset (): number {
    return this.pos
  }

  /** Bytes left to read. */
  get remaining (): number {
    return this.buf.length - this.pos
  }

  u8 (): number {
    const v = this.buf[this.pos]
    if (v === undefined) throw new CodecError(`truncated at byte ${this.pos}`)
    this.pos++
    return v
  }

  /** A LEB128 varint; rejects values above 2^53 − 1 and non-minimal encodings. */
  varint (): number {
    let result = 0
    let scale = 1
    for (let i = 0; i < 8; i++) {
      const b = this.u8()
      result += (b & 0x7f) * scale
      if ((b & 0x80) === 0) {
        if (i > 0 && b === 0) throw new CodecError(`non-minimal varint at byte ${this.pos - 1}`)
        if (!Number.isSafeInteger(result)) throw new CodecError(`varint out of range at byte ${this.pos - 1}`)
        return result
      }
      scale *= 0x80
    }
    throw new CodecError(`varint too long at byte ${this.pos}`)
  }

  /** `n` raw bytes (a view, not a copy). */
  raw (n: number): Uint8Array {
    if (n < 0 || n > this.remaining) throw new CodecError(`need ${n} bytes at byte ${this.pos}, have ${this.remaining}`)
    const out = this.buf.subarray(this.pos, this.pos + n)
    this.pos += n
    return out
  }

  /** Length-prefixed bytes of at most `max` bytes. */
  bytes (max: number): Uint8Array {
    const n = this.varint()
    if (n > max) throw new CodecError(`field of ${n} bytes exceeds ${max} at byte ${this.pos}`)
    return this.raw(n)
  }

  /** Length-prefixed strict UTF-8 of at most `max` bytes. */
  string (max: number): string {
    try {
      return strictDecoder.decode(this.bytes(max))
    } catch (err) {
      if (err instanceof CodecError) throw err
      throw new CodecError(`invalid UTF-8 before byte ${this.pos}`)
    }
  }

  /** Throws unless every byte was consumed. */
  end (): void {
    if (this.remaining !== 0) throw new CodecError(`${this.remaining} trailing bytes at byte ${this.pos}`)
  }
}

/** Lexicographic byte order: negative, zero or positive. */
export function compareBytes (a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number)
    if (d !== 0) return d
  }
  return a.length - b.length
}

/** Byte equality. */
export function equalBytes (a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && compareBytes(a, b) === 0
}

/** UTF-8 byte length of a string. */
export function utf8Length (s: string): number {
  return encoder.encode(s).length
}
