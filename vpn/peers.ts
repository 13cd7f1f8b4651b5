import type { JsonValue, StateEntry } from '../p2p/types.ts'
import { parseIpv4, resolveClaims, type ClaimHolder, type OverlayNetwork } from './address.ts'

/** State key of a node's VPN advert. */
export const VPN_ADVERT_KEY = 'vpn/advert'

/** Most endpoints an advert may carry; more are ignored. */
export const MAX_ADVERT_ENDPOINTS = 16

/** WireGuard persistent keepalive, seconds. */
export const DEFAULT_KEEPALIVE_SECONDS = 25

/** What a node publishes under `vpn/advert`. */
export interface VpnAdvert {
  /** WireGuard public key (base64 of 32 bytes). */
  publicKey: string
  /** UDP listen port. */
  port: number
  /** `ip:port` (IPv4) or `[ip]:port` (IPv6) for every non-loopback address of the host. */
  endpoints: string[]
  /** Claimed overlay address. */
  address: string
  /** Attempt number of the claim. */
  attempt: number
}

/** One peer of the desired WireGuard configuration. */
export interface DesiredPeer {
  peerId: string
  publicKey: string
  /** Endpoints the peer advertises, in advert order. */
  endpoints: string[]
  /** `address/32`. */
  allowedIps: string[]
  /** Persistent keepalive, seconds. */
  keepalive: number
}

/** Why an advert was left out of the peer set. */
export type IgnoredReason = 'malformed' | 'invalid-claim' | 'lost-claim' | 'duplicate-key'

export interface PeerSet {
  /** Peers sorted by peer id; never contains the node itself. */
  peers: DesiredPeer[]
  /** Adverts left out, sorted by peer id. */
  ignored: Array<{ peerId: string, reason: IgnoredReason }>
  /** Valid claims of every advert (including this node's), for the allocator. */
  claims: ClaimHolder[]
}

/** True for a WireGuard key: base64 of exactly 32 bytes. */
export function isWireGuardKey (text: string): boolean {
  return /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/.test(text)
}

/** True for `a.b.c.d:port` or `[v6]:port`. */
export function isEndpoint (text: string): boolean {
  const m = /^(?:\[([0-9a-fA-F:.]{2,45})\]|([0-9.]{7,15})):([0-9]{1,5})$/.exec(text)
  if (m === null) return false
  const port = Number(m[3])
  if (port < 1 || port > 65535) return false
  return m[2] === undefined || parseIpv4(m[2]) !== undefined
}

/** Validates an advert value from the state; returns the advert or a reason. */
export function parseAdvert (value: JsonValue): VpnAdvert | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined
  const { publicKey, port, endpoints, address, attempt } = value
  if (typeof publicKey !== 'string' || !isWireGuardKey(publicKey)) return undefined
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) return undefined
  if (typeof address !== 'string' || parseIpv4(address) === undefined) return undefined
  if (typeof attempt !== 'number' || !Number.isInteger(attempt) || attempt < 0) return undefined
  if (!Array.isArray(endpoints)) return undefined
  const eps = endpoints.filter((e): e is string => typeof e === 'string' && isEndpoint(e)).slice(0, MAX_ADVERT_ENDPOINTS)
  return { publicKey, port, endpoints: eps, address, attempt }
}

/** The advert as a state value. */
export function advertValue (advert: VpnAdvert): JsonValue {
  return { publicKey: advert.publicKey, port: advert.port, endpoints: [...advert.endpoints], address: advert.address, attempt: advert.attempt }
}

/**
 * The WireGuard peers this node wants, as a pure function of the state entries
 * (typically `state.list(VPN_ADVERT_KEY)`). Every node computes the same set of
 * held claims from the same entries; each leaves out only itself. A claim that
 * lost a conflict is left out (its owner is moving), so allowed IPs never overlap.
 * Two adverts with one public key: the lower peer id keeps it.
 */
export function desiredPeers (entries: StateEntry[], init: { self: string, network: OverlayNetwork, keepalive?: number }): PeerSet {
  const keepalive = init.keepalive ?? DEFAULT_KEEPALIVE_SECONDS
  const adverts = new Map<string, VpnAdvert>()
  const ignored: PeerSet['ignored'] = []
  const sorted = entries.filter((e) => e.key === VPN_ADVERT_KEY && e.value !== null)
    .sort((a, b) => a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0)
  for (const e of sorted) {
    const advert = parseAdvert(e.value)
    if (advert === undefined) ignored.push({ peerId: e.owner, reason: 'malformed' })
    else adverts.set(e.owner, advert)
  }
  const holders = [...adverts].map(([peerId, a]) => ({ peerId, address: a.address, attempt: a.attempt }))
  const verdicts = resolveClaims(init.network, holders)
  const peers: DesiredPeer[] = []
  const keys = new Set<string>()
  for (const [peerId, a] of adverts) {
    const verdict = verdicts.get(peerId)
    if (verdict === 'invalid') { ignored.push({ peerId, reason: 'invalid-claim' }); continue }
    if (verdict === 'lost') { ignored.push({ peerId, reason: 'lost-claim' }); continue }
    if (keys.has(a.publicKey)) { ignored.push({ peerId, reason: 'duplicate-key' }); continue }
    keys.add(a.publicKey)
    if (peerId === init.self) continue
    peers.push({ peerId, publicKey: a.publicKey, endpoints: a.endpoints, allowedIps: [`${a.address}/32`], keepalive })
  }
  ignored.sort((a, b) => a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0)
  const claims = holders.filter((h) => verdicts.get(h.peerId) !== 'invalid')
  return { peers, ignored, claims }
}

/** A local address with its prefix length, for endpoint preference. */
export interface LocalAddress {
  address: string
  prefixLength: number
}

function sameSubnet (endpoint: string, locals: LocalAddress[]): boolean {
  const host = /^([0-9.]+):[0-9]+$/.exec(endpoint)?.[1]
  const ip = host === undefined ? undefined : parseIpv4(host)
  if (ip === undefined) return false
  return locals.some((l) => {
    const mine = parseIpv4(l.address)
    if (mine === undefined || l.prefixLength < 1 || l.prefixLength > 32) return false
    const mask = l.prefixLength === 32 ? 0xffffffff : (0xffffffff << (32 - l.prefixLength)) >>> 0
    return ((mine & mask) >>> 0) === ((ip & mask) >>> 0)
  })
}

/**
 * The endpoint to configure for a peer: endpoints on one of our own subnets first
 * (IPv4, in advert order), then the rest; `rotation` steps through them when the
 * current one brings no handshake. Undefined when the peer advertises none.
 */
export function chooseEndpoint (endpoints: string[], locals: LocalAddress[], rotation = 0): string | undefined {
  if (endpoints.length === 0) return undefined
  const near = endpoints.filter((e) => sameSubnet(e, locals))
  const far = endpoints.filter((e) => !sameSubnet(e, locals))
  const ordered = [...near, ...far]
  return ordered[Math.abs(Math.trunc(rotation)) % ordered.length]
}
