import { describe, expect, it } from 'vitest'
import { deepMerge, isMap } from '../../config/merge.ts'

describe('deepMerge', () => {
  it('merges maps, replaces lists and scalars, keeps earlier values on null', () => {
    const base = { a: { b: 1, c: [1, 2], d: { e: 'x' } }, f: 'keep' }
    const overlay = { a: { c: [3], d: { g: true } }, f: null, h: 5 }
    expect(deepMerge(base, overlay)).toEqual({ a: { b: 1, c: [3], d: { e: 'x', g: true } }, f: 'keep', h: 5 })
    expect(base).toEqual({ a: { b: 1, c: [1, 2], d: { e: 'x' } }, f: 'keep' })
  })

  it('records which source wrote each leaf', () => {
    const origins = new Map<string, string>()
    let merged = deepMerge({}, { p2p: { vpn: { port: 1 }, role: 'master' } }, 'one', origins)
    merged = deepMerge(merged, { p2p: { vpn: { port: 2 } } }, 'two', origins)
    expect(merged).toEqual({ p2p: { vpn: { port: 2 }, role: 'master' } })
    expect(Object.fromEntries(origins)).toEqual({ 'p2p.vpn.port': 'two', 'p2p.role': 'one' })
  })

  it('a scalar replacing a map drops the map’s origins', () => {
    const origins = new Map<string, string>()
    let merged = deepMerge({}, { p2p: { vpn: { port: 1 } } }, 'one', origins)
    merged = deepMerge(merged, { p2p: { vpn: 'off' } }, 'two', origins)
    expect(merged).toEqual({ p2p: { vpn: 'off' } })
    expect(Object.fromEntries(origins)).toEqual({ 'p2p.vpn': 'two' })
  })
})

describe('__proto__ keys', () => {
  it('are plain data, never a prototype', () => {
    const overlay = JSON.parse('{"__proto__": {"network_token": "x"}, "p2p": {"__proto__": {"role": "master"}}}') as Record<string, unknown>
    const merged = deepMerge({}, overlay)
    expect(Object.getPrototypeOf(merged)).toBe(Object.prototype)
    expect((merged as { network_token?: unknown }).network_token).toBeUndefined()
    const p2p = merged.p2p as Record<string, unknown>
    expect(Object.getPrototypeOf(p2p)).toBe(Object.prototype)
    expect(p2p.role).toBeUndefined()
    expect(Object.keys(p2p)).toEqual(['__proto__'])
  })
})

describe('isMap', () => {
  it('is true only for plain mappings', () => {
    expect(isMap({})).toBe(true)
    expect(isMap([])).toBe(false)
    expect(isMap(null)).toBe(false)
    expect(isMap('x')).toBe(false)
  })
})
