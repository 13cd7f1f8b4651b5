// Seeded fuzzing for decoders of untrusted input: random inputs and mutations of valid
// samples, from `seededRandom` (a failure prints its seed and input index, and the
// same seed gives the same inputs). Each call must return or throw one of the
// decoder's own error classes, and must not take longer than the bound.
import { expect } from 'vitest'
import { seededRandom, type RandomSource } from '../../util/random.ts'

/** The requirement: no input of up to 1 MB keeps a decoder busy longer than this, ms. */
export const HANG_BOUND_MS = 1_000
/**
 * What the assertion allows: the bound above with room for a shared 2-core CI box
 * under load (decoders take microseconds to a few milliseconds per input; the
 * figure that matters is `maxMs`, which each test reports).
 */
export const HANG_ASSERT_MS = 3 * HANG_BOUND_MS
/** Largest input tried. @default 1 MB */
export const MAX_INPUT_BYTES = 1_000_000

/** Byte values that sit on boundaries of lengths, varints, versions and UTF-8. */
const INTERESTING = [0x00, 0x01, 0x02, 0x7f, 0x80, 0x81, 0xfe, 0xff, 0x20, 0x40, 0xc0, 0xe0, 0xf0, 0xf8]

/** A varint that decodes to 2^56 - 1, the largest 8-byte one, and one that never ends. */
const HUGE_VARINT = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f)
const ENDLESS_VARINT = new Uint8Array(16).fill(0xff)

function pick<T> (random: RandomSource, items: readonly T[]): T {
  return items[random.int(items.length)] as T
}

/** A length: mostly small, sometimes a few KiB, rarely up to MAX_INPUT_BYTES. */
function length (random: RandomSource): number {
  const r = random.float()
  if (r < 0.8) return random.int(80)
  if (r < 0.995) return random.int(8192)
  return MAX_INPUT_BYTES - random.int(1024)
}

function concat (...parts: Uint8Array[]): Uint8Array {
  return concatAll(parts)
}

function concatAll (parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) { out.set(p, at); at += p.length }
  return out
}

/** One mutation of `input` (a copy; `input` is never changed). */
export function mutateBytes (random: RandomSource, input: Uint8Array, others: readonly Uint8Array[] = []): Uint8Array {
  const b = input.slice()
  const at = (): number => random.int(Math.max(1, b.length))
  switch (random.int(10)) {
    case 0: { // flip bits
      const n = 1 + random.int(8)
      for (let i = 0; i < n && b.length > 0; i++) b[at()] = (b[at()] ?? 0) ^ (1 << random.int(8))
      return b
    }
    case 1: // boundary values
      for (let i = 0; i < 1 + random.int(4) && b.length > 0; i++) b[at()] = pick(random, INTERESTING)
      return b
    case 2: { // insert random bytes
      const i = at()
      return concat(b.subarray(0, i), random.bytes(1 + random.int(32)), b.subarray(i))
    }
    case 3: { // delete a range
      const i = at()
      return concat(b.subarray(0, i), b.subarray(Math.min(b.length, i + 1 + random.int(32))))
    }
    case 4: // truncate
      return b.subarray(0, at())
    case 5: { // repeat a chunk many times (length fields that no longer match, big inputs)
      const i = at()
      const chunk = b.subarray(i, Math.min(b.length, i + 1 + random.int(16)))
      const times = random.float() < 0.9 ? 1 + random.int(64) : Math.floor(MAX_INPUT_BYTES / Math.max(1, chunk.length + 1))
      const repeated = new Uint8Array(chunk.length * times)
      for (let k = 0; k < times; k++) repeated.set(chunk, k * chunk.length)
      return concat(b.subarray(0, i), repeated, b.subarray(i))
    }
    case 6: { // a huge or endless varint where a length or number sits
      const i = at()
      return concat(b.subarray(0, i), random.float() < 0.5 ? HUGE_VARINT : ENDLESS_VARINT, b.subarray(i + 1))
    }
    case 7: { // splice with another sample
      const other = others.length === 0 ? random.bytes(length(random)) : pick(random, others)
      return concat(b.subarray(0, at()), other.subarray(random.int(Math.max(1, other.length))))
    }
    case 8: // append garbage
      return concat(b, random.bytes(1 + random.int(64)))
    default: { // overwrite a region with random bytes
      const i = at()
      const r = random.bytes(Math.min(b.length - i, 1 + random.int(16)))
      b.set(r, i)
      return b
    }
  }
}

/** Text fragments that break parsers of JSON and YAML in interesting ways. */
const TEXT_TOKENS = [
  '[', ']', '{', '}', '"', '\'', ',', ':', ': ', '\n', '\n  ', '- ', '&a ', '*a', '<<: *a', '!!binary ', '!!str ', '---\n', '...\n',
  '\\u0000', '\\ud800', '\u0000', '\ud800', '\u2028', 'null', 'true', '-1', '1e308', '-0', '9007199254740993', 'NaN', '.inf', '0x7fffffff',
  '{{ .MachineID }}', '__proto__', 'constructor', '#', '%YAML 1.1\n', '? ', '|\n  ', '>-\n  '
]

/** One mutation of a text sample, by characters and by tokens. */
export function mutateText (random: RandomSource, input: string, others: readonly string[] = []): string {
  const at = (): number => random.int(input.length + 1)
  switch (random.int(6)) {
    case 0: { // insert tokens
      let s = input
      for (let i = 0; i < 1 + random.int(4); i++) { const j = random.int(s.length + 1); s = s.slice(0, j) + pick(random, TEXT_TOKENS) + s.slice(j) }
      return s
    }
    case 1: { // delete a range
      const i = at()
      return input.slice(0, i) + input.slice(i + 1 + random.int(16))
    }
    case 2: { // nest deeply or repeat widely
      const open = pick(random, ['[', '{a: ', '- ', '{"a":', '&x [*x, '])
      const n = random.float() < 0.8 ? 1 + random.int(200) : 1 + random.int(100_000)
      const i = at()
      return input.slice(0, i) + open.repeat(n) + input.slice(i)
    }
    case 3: { // splice with another sample
      const other = others.length === 0 ? input : pick(random, others)
      return input.slice(0, at()) + other.slice(random.int(other.length + 1))
    }
    case 4: // byte-level mutation, decoded leniently
      return Buffer.from(mutateBytes(random, Buffer.from(input, 'utf8'))).toString('utf8')
    default: { // duplicate a slice many times (wide documents, long strings)
      const i = at()
      const slice = input.slice(i, i + 1 + random.int(40))
      const times = random.float() < 0.9 ? 1 + random.int(50) : Math.floor(MAX_INPUT_BYTES / Math.max(1, slice.length + 1))
      return input.slice(0, i) + slice.repeat(times) + input.slice(i)
    }
  }
}

/** Inputs for a byte decoder: a third random, the rest mutations of the samples (mutations stacked up to 4 deep). */
export function * byteInputs (seed: number, count: number, samples: readonly Uint8Array[]): Generator<Uint8Array> {
  const random = seededRandom(seed)
  for (const s of samples) yield s
  for (let i = 0; i < count; i++) {
    if (samples.length === 0 || random.float() < 0.33) { yield random.bytes(length(random)); continue }
    let input = pick(random, samples)
    for (let k = 0; k < 1 + random.int(4); k++) input = mutateBytes(random, input, samples)
    yield input.length > MAX_INPUT_BYTES ? input.subarray(0, MAX_INPUT_BYTES) : input
  }
}

/** Inputs for a text decoder: mutations of the samples, and random printable and binary text. */
export function * textInputs (seed: number, count: number, samples: readonly string[]): Generator<string> {
  const random = seededRandom(seed)
  for (const s of samples) yield s
  for (let i = 0; i < count; i++) {
    if (random.float() < 0.1) { yield Buffer.from(random.bytes(length(random))).toString(random.float() < 0.5 ? 'latin1' : 'utf8'); continue }
    let input = pick(random, samples)
    for (let k = 0; k < 1 + random.int(4); k++) input = mutateText(random, input, samples)
    yield input.length > MAX_INPUT_BYTES ? input.slice(0, MAX_INPUT_BYTES) : input
  }
}

/** What a fuzz run saw. */
export interface FuzzReport {
  inputs: number
  /** How many calls threw one of the allowed errors. */
  rejected: number
  /** The slowest call, ms. */
  maxMs: number
  /** The size of the slowest input, bytes or characters. */
  maxMsInput: number
}

type ErrorClass = abstract new (...args: never[]) => Error

/**
 * Calls `decode` on every input. Each call must return, or throw an instance of one of
 * `allowed`; any other exception fails the test with the seed, the input's index and
 * its first bytes. Each call must finish within HANG_ASSERT_MS.
 */
export async function fuzz<T extends Uint8Array | string> (
  name: string, seed: number, inputs: Iterable<T>, allowed: readonly ErrorClass[],
  decode: (input: T) => unknown
): Promise<FuzzReport> {
  const report: FuzzReport = { inputs: 0, rejected: 0, maxMs: 0, maxMsInput: 0 }
  let index = 0
  for (const input of inputs) {
    const started = performance.now()
    try {
      const out = decode(input)
      if (out instanceof Promise) await out
    } catch (err) {
      if (!allowed.some((c) => err instanceof c)) {
        const head = typeof input === 'string' ? JSON.stringify(input.slice(0, 200)) : Buffer.from(input.subarray(0, 100)).toString('hex')
        expect.fail(`${name}: seed ${seed}, input ${index} (${input.length} long, starts ${head}) threw ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}; expected ${allowed.map((c) => c.name).join(' or ') || 'no exception'}`)
      }
      report.rejected++
    }
    const ms = performance.now() - started
    if (ms > report.maxMs) { report.maxMs = ms; report.maxMsInput = input.length }
    expect(ms, `${name}: seed ${seed}, input ${index} (${input.length} long) took ${Math.round(ms)} ms`).toBeLessThan(HANG_ASSERT_MS)
    index++
    report.inputs++
  }
  return report
}

/** Seeds for a run: fixed in CI, so a failure reproduces; FUZZ_SEED overrides the first. */
export function fuzzSeed (offset: number): number {
  const base = process.env.FUZZ_SEED === undefined ? 20_261_204 : Number(process.env.FUZZ_SEED)
  return (base + offset) >>> 0
}
