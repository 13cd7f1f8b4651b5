// Several rounds of one benchmark size as one result (lab.ts): each figure the median
// over the rounds, and the lab's figures read against a floor run of the same round, so
// that a ratio comes from two runs minutes apart, never from the machine's drift between
// two sittings. Pure: lab.ts runs the rounds.
import { stats } from './_proc.ts'
import { FLOOR_PAIRS, get, numberOf } from './_results-md.ts'

/** The median of `xs` (the mean of the middle two for an even count), two decimals; NaN for none. */
export function median (xs: readonly number[]): number {
  return stats(xs)?.median ?? NaN
}

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)

/**
 * The rounds of one size as one result: a number becomes the median over the rounds
 * that have it (so a `{ median, max }` over the agents becomes the median over rounds of
 * each); an object is combined key by key; anything else (a string, a flag, null, a
 * list) keeps the value of the first round that has one.
 */
export function combineRounds (rounds: readonly unknown[]): unknown {
  const present = rounds.filter((r) => r !== undefined && r !== null)
  if (present.length === 0) return rounds.length === 0 ? undefined : null
  if (present.every((r) => typeof r === 'number')) return median(present as number[])
  if (present.every(isRecord)) {
    const keys = [...new Set(present.flatMap((r) => Object.keys(r)))]
    return Object.fromEntries(keys.map((k) => [k, combineRounds(present.map((r) => r[k]))]))
  }
  return present[0]
}

/** A figure over the rounds: its median and range. */
export interface RoundStats { median: number, min: number, max: number }

/**
 * The lab's figures against the floor's, per round, for every pair in FLOOR_PAIRS.lab:
 * `key → { median, min, max }` over the rounds in which both sides have the figure.
 * `rounds` pairs each lab run with the floor run of the same round and size.
 */
export function floorRatios (rounds: ReadonlyArray<{ lab: unknown, floor: unknown }>): Record<string, RoundStats> {
  const out: Record<string, RoundStats> = {}
  for (const p of FLOOR_PAIRS.lab ?? []) {
    const values = rounds.flatMap(({ lab, floor }) => {
      const a = numberOf(get(lab, p.lab))
      const b = numberOf(get(floor, p.floor))
      if (a === undefined || b === undefined || (p.op === 'ratio' && b === 0)) return []
      return [p.op === 'ratio' ? a / b : a - b]
    })
    if (values.length === 0) continue
    const r = (x: number): number => Math.round(x * 100) / 100
    out[p.key] = { median: median(values), min: r(Math.min(...values)), max: r(Math.max(...values)) }
  }
  return out
}
