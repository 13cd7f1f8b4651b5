/** Address syntax checks for config values. Pure; no resolver, no libp2p. */

/** The 32-bit value of a dotted-quad IPv4 address, or undefined when it is not one. */
export function parseIpv4 (text: string): number | undefined {
  const parts = text.split('.')
  if (parts.length !== 4) return undefined
  let value = 0
  for (const part of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(part)) return undefined
    const n = Number(part)
    if (n > 255) return undefined
    value = value * 256 + n
  }
  return value
}

/** Dotted-quad text of a 32-bit value. */
export function formatIpv4 (value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.')
}

/** A parsed IPv4 CIDR. `network` is the address with the host bits cleared. */
export interface Ipv4Cidr {
  address: number
  prefix: number
  network: number
  /** `network/prefix` in canonical form. */
  canonical: string
}

/** Parses `a.b.c.d/n`, or returns undefined. */
export function parseIpv4Cidr (text: string): Ipv4Cidr | undefined {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(text)
  if (m === null) return undefined
  const address = parseIpv4(m[1] ?? '')
  const prefix = Number(m[2])
  if (address === undefined || prefix > 32) return undefined
  const size = 2 ** (32 - prefix)
  const network = Math.floor(address / size) * size
  return { address, prefix, network, canonical: `${formatIpv4(network)}/${prefix}` }
}

const PEER_ID = /^(Qm[1-9A-HJ-NP-Za-km-z]{44}|1[1-9A-HJ-NP-Za-km-z]{45,60}|b[a-z2-7]{50,70})$/
const HOST_PROTOCOLS = new Set(['ip4', 'ip6', 'dns', 'dns4', 'dns6', 'dnsaddr'])
const PORT_PROTOCOLS = new Set(['tcp', 'udp'])
const FLAG_PROTOCOLS = new Set(['ws', 'wss', 'quic', 'quic-v1', 'tls', 'noise', 'p2p-circuit', 'webtransport'])

/**
 * Checks the text form of a multiaddr: `/ip4|ip6|dns…/<host>/tcp|udp/<port>[/…][/p2p/<peer id>]`.
 * Returns undefined when it is fine, or what is wrong with it. With `requirePeerId`,
 * a `/p2p/<peer id>` part is required (bootstrap peers must name who they dial).
 */
export function checkMultiaddr (text: string, options: { requirePeerId: boolean }): string | undefined {
  if (!text.startsWith('/')) return 'a multiaddr starts with "/"'
  const parts = text.slice(1).split('/')
  let i = 0
  let peerId = false
  let host = false
  while (i < parts.length) {
    const proto = parts[i] ?? ''
    if (HOST_PROTOCOLS.has(proto)) {
      const value = parts[i + 1]
      if (value === undefined || value === '') return `/${proto} needs an address`
      if (proto === 'ip4' && parseIpv4(value) === undefined) return `"${value}" is not an IPv4 address`
      if (proto === 'ip6' && !/^[0-9a-fA-F:.]+$/.test(value)) return `"${value}" is not an IPv6 address`
      host = true
      i += 2
    } else if (PORT_PROTOCOLS.has(proto)) {
      const value = parts[i + 1] ?? ''
      if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) return `/${proto} needs a port 0–65535, got "${value}"`
      i += 2
    } else if (proto === 'p2p' || proto === 'ipfs') {
      const value = parts[i + 1] ?? ''
      if (!PEER_ID.test(value)) return `"${value}" is not a peer id`
      peerId = true
      i += 2
    } else if (FLAG_PROTOCOLS.has(proto)) {
      i += 1
    } else {
      return `unknown protocol "/${proto}"`
    }
  }
  if (!host) return 'no /ip4, /ip6 or /dns address'
  if (options.requirePeerId && !peerId) return 'no /p2p/<peer id> part'
  return undefined
}

/**
 * Linux accepts an interface name of 1–15 bytes without `/`, `:` or whitespace, other
 * than `.` and `..`; we also keep to letters, digits, `_`, `.` and `-` so the name is
 * safe for `ip`, `wg` and systemd unit names.
 */
export function isValidInterfaceName (name: string): boolean {
  return /^[A-Za-z0-9_.-]{1,15}$/.test(name) && name !== '.' && name !== '..'
}
