import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../config/load.ts'
import { DEFAULT_FORGET_AFTER_MS } from '../../config/defaults.ts'

const forgetAfter = (yaml: string): number | undefined =>
  parseConfig([{ name: 'a.yaml', text: `p2p:\n  network_token: tok\n${yaml}` }]).config.p2p.forgetAfterMs

describe('p2p.forget_after', () => {
  it('defaults to seven days', () => {
    expect(forgetAfter('')).toBe(DEFAULT_FORGET_AFTER_MS)
    expect(DEFAULT_FORGET_AFTER_MS).toBe(7 * 86_400_000)
  })

  it.each([
    ['7d', 7 * 86_400_000], ['36h', 36 * 3_600_000], ['90m', 90 * 60_000], ['600s', 600_000], ['3600', 3_600_000]
  ])('reads %s', (text, ms) => {
    expect(forgetAfter(`  forget_after: ${text}\n`)).toBe(ms)
  })

  it.each(['0', '30s', '7 days', '-1d', '1.5h', '4000d', 'true', '[1]'])('rejects %s with the key path and what was expected', (text) => {
    expect(() => forgetAfter(`  forget_after: ${text}\n`)).toThrow(/p2p\.forget_after[\s\S]*a duration from 1m to 3650d/)
  })
})
