import { FrameTooLargeError, MalformedFrameError, StreamEndedError } from './errors.ts'

/**
 * Length-prefixed framing for our own protocols: each frame is an unsigned
 * LEB128 varint length followed by that many bytes. Every reader has a bound;
 * a length above it is refused before any byte of the body is buffered.
 */

/** Largest frame any of our protocols accepts unless told otherwise, bytes. @default 1 MiB */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024

/** The varint encoding of `n` (0 ≤ n < 2^53). */
export function encodeVarint (n: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`varint needs a non-negative safe integer, got ${n}`)
  const out: number[] = []
  let v = n
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80)
    v = Math.floor(v / 0x80)
  }
  out.push(v)
  return Uint8Array.from(out)
}

/**
 * Decodes a varint at `offset`. Returns undefined when the bytes end before the
 * varint does; throws `MalformedFrameError` on a varint longer than 8 bytes or a value
 * above 2^53 − 1 (it would not be an exact number here).
 */
export function decodeVarint (buf: Uint8Array, offset = 0): { value: number, bytes: number } | undefined {
  let value = 0
  let scale = 1
  for (let i = 0; i < 8; i++) {
    const b = buf[offset + i]
    if (b === undefined) return undefined
    value += (b & 0x7f) * scale
    if ((b & 0x80) === 0) {
      if (value > Number.MAX_SAFE_INTEGER) throw new MalformedFrameError(`varint ${value} is above 2^53 - 1`)
      return { value, bytes: i + 1 }
    }
    scale *= 0x80
  }
  throw new MalformedFrameError('varint longer than 8 bytes')
}

/** `body` with its length prefix. */
export function encodeFrame (body: Uint8Array): Uint8Array {
  const prefix = encodeVarint(body.length)
  const out = new Uint8Array(prefix.length + body.length)
  out.set(prefix, 0)
  out.set(body, prefix.length)
  return out
}

/** Concatenates byte arrays. */
export function concatBytes (parts: Uint8Array[]): Uint8Array {
  let total = 0
  for (const p of parts) total += p.length
  const out = new Uint8Array(total)
  let at = 0
  for (const p of parts) { out.set(p, at); at += p.length }
  return out
}

/** What a stream yields: a Uint8Array or a Uint8ArrayList (both have `subarray()`). */
export interface ByteChunk { subarray(): Uint8Array }

/**
 * Reads frames from a byte source. `next()` resolves to the next frame, or
 * undefined when the source ended cleanly between frames; it throws
 * `FrameTooLargeError` on an oversized length and `MalformedFrameError` when the
 * source ends inside a frame.
 */
export class FrameReader {
  private readonly iterator: AsyncIterator<ByteChunk>
  private readonly maxBytes: number
  private buffer: Uint8Array = new Uint8Array(0)
  private ended = false

  constructor (source: AsyncIterable<ByteChunk>, maxBytes = DEFAULT_MAX_FRAME_BYTES) {
    this.iterator = source[Symbol.asyncIterator]()
    this.maxBytes = maxBytes
  }

  async next (): Promise<Uint8Array | undefined> {
    for (;;) {
      const header = decodeVarint(this.buffer)
      if (header !== undefined) {
        if (header.value > this.maxBytes) throw new FrameTooLargeError(header.value, this.maxBytes)
        const end = header.bytes + header.value
        if (this.buffer.length >= end) {
          const frame = this.buffer.slice(header.bytes, end)
          this.buffer = this.buffer.subarray(end)
          return frame
        }
      }
      if (this.ended) {
        if (this.buffer.length === 0) return undefined
        throw new MalformedFrameError(`stream ended inside a frame (${this.buffer.length} bytes pending)`)
      }
      const chunk = await this.iterator.next()
      if (chunk.done === true) {
        this.ended = true
        continue
      }
      const bytes = chunk.value.subarray()
      this.buffer = this.buffer.length === 0 ? bytes : concatBytes([this.buffer, bytes])
    }
  }

  /** Like `next()` but a clean end is a `StreamEndedError` naming what was expected. */
  async expect (what: string): Promise<Uint8Array> {
    const frame = await this.next()
    if (frame === undefined) throw new StreamEndedError(`stream ended before ${what}`)
    return frame
  }
}

/**
 * Packs byte strings into one body: varint count, then each as a varint length
 * and its bytes.
 */
export function encodeList (items: Uint8Array[]): Uint8Array {
  const parts: Uint8Array[] = [encodeVarint(items.length)]
  for (const item of items) { parts.push(encodeVarint(item.length), item) }
  return concatBytes(parts)
}

/** Unpacks `encodeList`; throws `MalformedFrameError` on any inconsistency or more than `maxItems` items. */
export function decodeList (body: Uint8Array, maxItems: number): Uint8Array[] {
  const count = decodeVarint(body)
  if (count === undefined) throw new MalformedFrameError('list: missing item count')
  if (count.value > maxItems) throw new MalformedFrameError(`list: ${count.value} items, at most ${maxItems} expected`)
  const items: Uint8Array[] = []
  let at = count.bytes
  for (let i = 0; i < count.value; i++) {
    const len = decodeVarint(body, at)
    if (len === undefined) throw new MalformedFrameError(`list: item ${i} has no length`)
    at += len.bytes
    if (at + len.value > body.length) throw new MalformedFrameError(`list: item ${i} of ${len.value} bytes runs past the end`)
    items.push(body.slice(at, at + len.value))
    at += len.value
  }
  if (at !== body.length) throw new MalformedFrameError(`list: ${body.length - at} trailing bytes`)
  return items
}

/** The UTF-8 bytes of `s`. */
export function utf8 (s: string): Uint8Array {
  return new TextEncoder().encode(s)
}

/** Decodes UTF-8, throwing `MalformedFrameError` on invalid bytes. */
export function fromUtf8 (b: Uint8Array): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(b)
  } catch (err) {
    throw new MalformedFrameError('invalid UTF-8', { cause: err })
  }
}
