import { describe, expect, it } from 'vitest'
import { checkMultiaddr, formatIpv4, isValidInterfaceName, parseIpv4, parseIpv4Cidr } from '../../config/net.ts'

const PEER = '12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp'

describe('IPv4', () => {
  it('parses dotted quads strictly', () => {
    expect(parseIpv4('10.88.0.1')).toBe(0x0a580001)
    expect(formatIpv4(0x0a580001)).toBe('10.88.0.1')
    for (const bad of ['10.88.0', '10.88.0.256', '010.1.1.1', '1.2.3.4.5', 'a.b.c.d', '']) expect(parseIpv4(bad), bad).toBeUndefined()
  })

  it('parses CIDRs and clears host bits', () => {
    expect(parseIpv4Cidr('10.88.0.0/16')).toMatchObject({ prefix: 16, canonical: '10.88.0.0/16' })
    expect(parseIpv4Cidr('10.88.7.9/24')?.canonical).toBe('10.88.7.0/24')
    expect(parseIpv4Cidr('10.0.0.0/0')?.canonical).toBe('0.0.0.0/0')
    expect(parseIpv4Cidr('10.0.0.0/33')).toBeUndefined()
    expect(parseIpv4Cidr('10.0.0.0')).toBeUndefined()
  })
})

describe('checkMultiaddr', () => {
  it('accepts common forms', () => {
    expect(checkMultiaddr(`/ip4/10.0.0.1/tcp/4001/p2p/${PEER}`, { requirePeerId: true })).toBeUndefined()
    expect(checkMultiaddr(`/dns4/gw.site.local/tcp/4001/p2p/${PEER}`, { requirePeerId: true })).toBeUndefined()
    expect(checkMultiaddr('/ip6/::/tcp/4001', { requirePeerId: false })).toBeUndefined()
    expect(checkMultiaddr('/ip4/0.0.0.0/udp/4001/quic-v1', { requirePeerId: false })).toBeUndefined()
  })

  it('says what is wrong', () => {
    expect(checkMultiaddr('/ip4/10.0.0.1/tcp/4001', { requirePeerId: true })).toBe('no /p2p/<peer id> part')
    expect(checkMultiaddr('/ip4/10.0.0.1/tcp/4001/p2p/nope', { requirePeerId: true })).toBe('"nope" is not a peer id')
    expect(checkMultiaddr('/ip4/10.0.0.300/tcp/1', { requirePeerId: false })).toBe('"10.0.0.300" is not an IPv4 address')
    expect(checkMultiaddr('/tcp/4001', { requirePeerId: false })).toBe('no /ip4, /ip6 or /dns address')
    expect(checkMultiaddr('/ip4/1.2.3.4/sctp/1', { requirePeerId: false })).toBe('unknown protocol "/sctp"')
  })
})

describe('isValidInterfaceName', () => {
  it('follows the Linux limits', () => {
    expect(isValidInterfaceName('kairos0')).toBe(true)
    expect(isValidInterfaceName('a'.repeat(15))).toBe(true)
    for (const bad of ['', 'a'.repeat(16), '.', '..', 'wg 0', 'wg:0', 'wg/0']) expect(isValidInterfaceName(bad), bad).toBe(false)
  })
})
