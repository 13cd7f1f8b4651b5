import { describe, expect, it } from 'vitest'
import { parseOverlayCidr } from '../../vpn/address.ts'
import { hostEndpoints, systemHostAddresses, type HostAddress } from '../../vpn/endpoints.ts'

const net = parseOverlayCidr('10.88.0.0/16')

describe('hostEndpoints', () => {
  it('lists every non-loopback address except the overlay, IPv4 first', () => {
    const hosts: HostAddress[] = [
      { interface: 'lo', address: '127.0.0.1', family: 'IPv4', prefixLength: 8, internal: true },
      { interface: 'eth1', address: '192.168.9.4', family: 'IPv4', prefixLength: 24, internal: false },
      { interface: 'eth0', address: '10.0.0.4', family: 'IPv4', prefixLength: 24, internal: false },
      { interface: 'eth0', address: 'fd00::4', family: 'IPv6', prefixLength: 64, internal: false },
      { interface: 'eth0', address: 'fe80::4', family: 'IPv6', prefixLength: 64, internal: false },
      { interface: 'kairos0', address: '10.88.3.4', family: 'IPv4', prefixLength: 16, internal: false },
      { interface: 'other', address: '10.88.9.9', family: 'IPv4', prefixLength: 16, internal: false }
    ]
    expect(hostEndpoints(hosts, { port: 51820, network: net, interface: 'kairos0' }))
      .toEqual(['10.0.0.4:51820', '192.168.9.4:51820', '[fd00::4]:51820'])
  })

  it('reads the host interfaces', () => {
    const all = systemHostAddresses()
    expect(all.some((a) => a.internal)).toBe(true)
    for (const a of all) expect(Number.isInteger(a.prefixLength)).toBe(true)
  })
})
