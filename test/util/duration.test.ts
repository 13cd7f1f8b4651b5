import { describe, expect, it } from 'vitest'
import { parseDurationMs } from '../../util/duration.ts'

describe('parseDurationMs', () => {
  it('reads a number and a unit, and nothing else', () => {
    expect(parseDurationMs('30s', 6)).toBe(30_000)
    expect(parseDurationMs(' 10m ', 6)).toBe(600_000)
    expect(parseDurationMs('36h', 6)).toBe(129_600_000)
    expect(parseDurationMs('7d', 6)).toBe(604_800_000)
    for (const bad of ['', '7', 'd', '7w', '-7d', '1.5h', '7 d', '7D']) expect(parseDurationMs(bad, 6)).toBeUndefined()
  })

  it('refuses more digits than the caller allows', () => {
    expect(parseDurationMs('999999s', 6)).toBe(999_999_000)
    expect(parseDurationMs('1000000s', 6)).toBeUndefined()
    expect(parseDurationMs('1000000s', 7)).toBe(1_000_000_000)
  })
})
