import { networkInterfaces } from 'node:os'
import { inOverlay, type OverlayNetwork } from './address.ts'

/** One address of a host interface. */
export interface HostAddress {
  /** Interface name, e.g. `eth0`. */
  interface: string
  address: string
  family: 'IPv4' | 'IPv6'
  prefixLength: number
  /** Loopback. */
  internal: boolean
}

/** The host's addresses as `os.networkInterfaces()` reports them (the caller's network namespace). */
export function systemHostAddresses (): HostAddress[] {
  const out: HostAddress[] = []
  for (const [name, list] of Object.entries(networkInterfaces())) {
    for (const a of list ?? []) {
      const prefixLength = a.cidr === null ? (a.family === 'IPv4' ? 32 : 128) : Number(a.cidr.split('/')[1])
      out.push({ interface: name, address: a.address, family: a.family, prefixLength, internal: a.internal })
    }
  }
  return out
}

/**
 * The endpoints a node advertises: every non-loopback address of the host with the
 * WireGuard port, excluding the overlay interface and overlay addresses, and IPv6
 * link-local addresses (they need a scope a peer cannot know). Sorted, IPv4 first.
 */
export function hostEndpoints (addresses: HostAddress[], init: { port: number, network: OverlayNetwork, interface: string }): string[] {
  const v4 = new Set<string>()
  const v6 = new Set<string>()
  for (const a of addresses) {
    if (a.internal || a.interface === init.interface) continue
    if (a.family === 'IPv4') {
      if (a.address.startsWith('127.') || inOverlay(init.network, a.address)) continue
      v4.add(`${a.address}:${init.port}`)
    } else {
      const lower = a.address.toLowerCase()
      if (lower === '::1' || /^fe[89ab]/.test(lower)) continue
      v6.add(`[${lower}]:${init.port}`)
    }
  }
  return [...[...v4].sort(), ...[...v6].sort()]
}
