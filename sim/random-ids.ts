import type { RandomSource } from '../util/random.ts'

const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'

/** A peer-id-shaped string (Ed25519 base58 form) from a seeded source. */
export function randomPeerId (rng: RandomSource): string {
  let s = '12D3KooW'
  for (let i = 0; i < 44; i++) s += B58[rng.int(B58.length)]
  return s
}

/** A shuffled copy of `items` (Fisher–Yates with a seeded source). */
export function shuffle<T> (items: T[], rng: RandomSource): T[] {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(i + 1)
    const t = out[i] as T
    out[i] = out[j] as T
    out[j] = t
  }
  return out
}
