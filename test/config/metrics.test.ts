import { describe, expect, it } from 'vitest'
import { ConfigError, parseConfig } from '../../config/index.ts'

function errorOf (text: string): string {
  try {
    parseConfig([{ name: 'c.yaml', text }])
  } catch (err) {
    if (err instanceof ConfigError) return err.message
    throw err
  }
  throw new Error(`expected a ConfigError for:\n${text}`)
}

const EXPECTED = 'expected host:port with an IP address and a port from 1 to 65535, e.g. 127.0.0.1:9469 or [fd00::1]:9469'

describe('p2p.metrics.listen', () => {
  it('is off by default', () => {
    expect(parseConfig([{ name: 'c.yaml', text: 'p2p: {}\n' }]).config.p2p.metrics?.listen).toBeUndefined()
    expect(parseConfig([{ name: 'c.yaml', text: 'p2p:\n  metrics: {}\n' }]).config.p2p.metrics?.listen).toBeUndefined()
  })

  it('takes an IPv4 or a bracketed IPv6 host:port', () => {
    expect(parseConfig([{ name: 'c.yaml', text: 'p2p:\n  metrics: {listen: "127.0.0.1:9469"}\n' }]).config.p2p.metrics).toEqual({ listen: '127.0.0.1:9469' })
    expect(parseConfig([{ name: 'c.yaml', text: 'p2p:\n  metrics: {listen: "[fd00::1]:9469"}\n' }]).config.p2p.metrics).toEqual({ listen: '[fd00::1]:9469' })
  })

  it.each([
    ['a bare port', '9469', 'got 9469 (number)'],
    ['a host name', 'localhost:9469', 'got "localhost:9469" (string)'],
    ['no port', '127.0.0.1', 'got "127.0.0.1" (string)'],
    ['port 0', '127.0.0.1:0', 'got "127.0.0.1:0" (string)'],
    ['port out of range', '127.0.0.1:70000', 'got "127.0.0.1:70000" (string)'],
    ['IPv6 without brackets', 'fd00::1:9469', 'got "fd00::1:9469" (string)']
  ])('refuses %s, naming the key and what it expected', (_, value, got) => {
    const text = /^\d+$/.test(value) ? `p2p:\n  metrics: {listen: ${value}}\n` : `p2p:\n  metrics: {listen: "${value}"}\n`
    expect(errorOf(text)).toContain(`p2p.metrics.listen: ${got}, ${EXPECTED}`)
  })

  it('warns about an unknown key under p2p.metrics', () => {
    const { warnings } = parseConfig([{ name: 'c.yaml', text: 'p2p:\n  metrics: {listne: "127.0.0.1:9469"}\n' }])
    expect(warnings.map((w) => w.path)).toContain('p2p.metrics.listne')
  })
})
