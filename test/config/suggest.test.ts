import { describe, expect, it } from 'vitest'
import { editDistance, nearest } from '../../config/suggest.ts'

describe('editDistance', () => {
  it.each([
    ['', '', 0],
    ['abc', '', 3],
    ['minimun_nodes', 'minimum_nodes', 1],
    ['minimmu', 'minimum', 1],
    ['kitten', 'sitting', 3],
    ['cdir', 'cidr', 1]
  ])('%s → %s is %i', (a, b, d) => {
    expect(editDistance(a, b)).toBe(d)
    expect(editDistance(b, a)).toBe(d)
  })
})

describe('nearest', () => {
  const keys = ['network_token', 'network_id', 'minimum_nodes', 'disable_dht', 'mdns']
  it('finds plausible typos, ignoring case and -/_', () => {
    expect(nearest('minimun_nodes', keys)).toBe('minimum_nodes')
    expect(nearest('Network-Token', keys)).toBe('network_token')
    expect(nearest('networkid', keys)).toBe('network_id')
    expect(nearest('mdsn', keys)).toBe('mdns')
  })
  it('suggests nothing for unrelated words', () => {
    expect(nearest('colour', keys)).toBeUndefined()
    expect(nearest('hostname', keys)).toBeUndefined()
  })
})
