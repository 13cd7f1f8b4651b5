import { randomBytes, randomInt } from 'node:crypto'

/**
 * Randomness as the rest of the code sees it. Product code takes a `RandomSource`;
 * secrets always come from `cryptoRandom`, the simulation uses `seededRandom`.
 */
export interface RandomSource {
  /** `n` random bytes. */
  bytes(n: number): Uint8Array
  /** An integer in [0, max). */
  int(max: number): number
  /** A float in [0, 1). */
  float(): number
}

/** The operating system's CSPRNG. */
export const cryptoRandom: RandomSource = {
  bytes: (n) => new Uint8Array(randomBytes(n)),
  int: (max) => randomInt(max),
  float: () => randomBytes(6).readUIntBE(0, 6) / 2 ** 48
}

/**
 * A deterministic source (xoshiro128** seeded through splitmix32). Never for
 * secrets: for simulations, jitter in tests and property tests.
 */
export function seededRandom (seed: number): RandomSource {
  let s = seed >>> 0
  const splitmix = (): number => {
    s = (s + 0x9e3779b9) >>> 0
    let z = s
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
    return (z ^ (z >>> 16)) >>> 0
  }
  const st = [splitmix(), splitmix(), splitmix(), splitmix()] as [number, number, number, number]
  const next = (): number => {
    const result = Math.imul(rotl(Math.imul(st[1], 5) >>> 0, 7), 9) >>> 0
    const t = (st[1] << 9) >>> 0
    st[2] ^= st[0]; st[3] ^= st[1]; st[1] ^= st[2]; st[0] ^= st[3]
    st[2] = (st[2] ^ t) >>> 0
    st[3] = rotl(st[3], 11)
    return result
  }
  const float = (): number => next() / 2 ** 32
  return {
    bytes: (n) => {
      const out = new Uint8Array(n)
      for (let i = 0; i < n; i++) out[i] = next() & 0xff
      return out
    },
    int: (max) => {
      if (!Number.isInteger(max) || max <= 0) throw new RangeError(`int(max) needs a positive integer, got ${max}`)
      return Math.floor(float() * max)
    },
    float
  }
}

function rotl (x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0
}
