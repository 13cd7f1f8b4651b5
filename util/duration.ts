/** Milliseconds per duration unit: seconds, minutes, hours, days. */
const UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/**
 * Milliseconds of a duration written as a number and a unit (`30s`, `10m`, `36h`, `7d`),
 * or undefined when `text` is not one (or has more than `maxDigits` digits). Bounds are
 * the caller's.
 */
export function parseDurationMs (text: string, maxDigits: number): number | undefined {
  const m = /^([0-9]+)(s|m|h|d)$/.exec(text.trim())
  if (m === null || (m[1] as string).length > maxDigits) return undefined
  return Number(m[1]) * (UNITS[m[2] as string] as number)
}
