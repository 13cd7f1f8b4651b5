import { describe, expect, it } from 'vitest'
import { fingerprintRows } from '../../util/fingerprint.ts'

describe('fingerprintRows', () => {
  it('is equal for equal lists, differs when a row, the order or a row boundary changes, and stays 44 characters', () => {
    const rows = Array.from({ length: 1_000 }, (_, i) => `12D3KooW${i}/alive@${i}`)
    expect(fingerprintRows(rows)).toBe(fingerprintRows([...rows]))
    expect(fingerprintRows(rows)).toHaveLength(44)
    expect(fingerprintRows(rows)).not.toBe(fingerprintRows([...rows.slice(0, -1), '12D3KooW999/dead@999']))
    expect(fingerprintRows(['a', 'b'])).not.toBe(fingerprintRows(['b', 'a']))
    expect(fingerprintRows(['ab', 'c'])).not.toBe(fingerprintRows(['a', 'bc']))
    expect(fingerprintRows([])).not.toBe(fingerprintRows(['']))
  })
})
