import { peerIdFromString } from '@libp2p/peer-id'
import { CODE_P2P, multiaddr } from '@multiformats/multiaddr'

/**
 * The mDNS records of our service (see mdns.ts): what we publish, and how a packet
 * from the LAN is read and checked before any of it reaches the node. Pure.
 */

/** TTL of our records, seconds (DNS-SD's usual value for host-independent records). */
export const MDNS_RECORD_TTL = 120
/** Most addresses we publish, and most a packet may carry before it is refused. */
export const MDNS_MAX_ADDRESSES = 8
/** A TXT string is at most 255 bytes (RFC 6763 §6.1). */
export const MDNS_MAX_TXT_BYTES = 255
const DNSADDR = 'dnsaddr='

/** A DNS resource record as this module sends it. */
export interface MdnsRecord {
  name: string
  type: 'PTR' | 'TXT'
  class: 'IN'
  ttl: number
  data: string
}

/**
 * Our records: PTR `<serviceTag>` → `<peerId>.<serviceTag>`, and one TXT
 * `dnsaddr=<address>/p2p/<peerId>` per address. Addresses that do not parse,
 * carry another peer id or do not fit a TXT string are skipped; at most
 * `MDNS_MAX_ADDRESSES` are kept. Empty when no address is left.
 */
export function encodeMdnsRecords (serviceTag: string, peerId: string, addresses: string[]): MdnsRecord[] {
  const instance = `${peerId}.${serviceTag}`
  const txt: MdnsRecord[] = []
  const seen = new Set<string>()
  for (const addr of addresses) {
    if (txt.length >= MDNS_MAX_ADDRESSES) break
    const full = withPeerId(addr, peerId)
    if (full === undefined || seen.has(full)) continue
    const data = DNSADDR + full
    if (Buffer.byteLength(data) > MDNS_MAX_TXT_BYTES) continue
    seen.add(full)
    txt.push({ name: instance, type: 'TXT', class: 'IN', ttl: MDNS_RECORD_TTL, data })
  }
  if (txt.length === 0) return []
  return [{ name: serviceTag, type: 'PTR', class: 'IN', ttl: MDNS_RECORD_TTL, data: instance }, ...txt]
}

/** `addr` ending in `/p2p/<peerId>`, or undefined when it does not parse or names another peer. */
function withPeerId (addr: string, peerId: string): string | undefined {
  let components
  try {
    components = multiaddr(addr).getComponents()
  } catch {
    return undefined
  }
  const last = components.at(-1)
  if (last?.code === CODE_P2P) return last.value === peerId ? addr : undefined
  return `${addr}/p2p/${peerId}`
}

/** What a packet says about our service, before any expensive parsing. */
export type MdnsPacketView =
  /** Nothing about our service. */
  | { kind: 'foreign' }
  | { kind: 'malformed', reason: string }
  /** Asks for our service and carries no records of it (e.g. an @libp2p/mdns query). */
  | { kind: 'question' }
  /** Records of one instance: its DNS label and the raw `dnsaddr` values; `asks` when it also asks for our service. */
  | { kind: 'records', instance: string, dnsaddrs: string[], asks: boolean }

const utf8 = new TextDecoder()

/**
 * Structural reading of a decoded packet (any shape: it comes off the wire).
 * Records live in the answers or, per the libp2p spec, the additionals. A
 * packet may describe one instance only. Names compare case-insensitively,
 * the instance label (a peer id) exactly.
 */
export function readMdnsPacket (packet: unknown, serviceTag: string): MdnsPacketView {
  if (!isRecord(packet)) return malformedView('not a DNS packet')
  const tag = serviceTag.toLowerCase()
  const suffix = '.' + tag
  const asks = listOf(packet.questions).some((q) => isRecord(q) && typeof q.name === 'string' && q.name.toLowerCase() === tag && (q.type === 'PTR' || q.type === 'ANY'))
  const records = [...listOf(packet.answers), ...listOf(packet.additionals)].filter(isRecord)
  let instance: string | undefined
  let mentioned = false
  for (const r of records) {
    if (r.type !== 'PTR' || typeof r.name !== 'string' || r.name.toLowerCase() !== tag) continue
    mentioned = true
    if (typeof r.data !== 'string' || !r.data.toLowerCase().endsWith(suffix)) return malformedView(`PTR data ${quote(r.data)}, expected <peer id>${suffix}`)
    const label = r.data.slice(0, -suffix.length)
    if (instance !== undefined && instance !== label) return malformedView(`PTR records of two instances (${quote(instance)}, ${quote(label)}), expected one`)
    instance = label
  }
  const dnsaddrs: string[] = []
  for (const r of records) {
    if (r.type !== 'TXT' || typeof r.name !== 'string' || !r.name.toLowerCase().endsWith(suffix)) continue
    mentioned = true
    const label = r.name.slice(0, -suffix.length)
    if (instance === undefined) return malformedView(`TXT record of ${quote(label)} without a PTR record`)
    if (label !== instance) return malformedView(`TXT record of ${quote(label)}, expected one of the PTR instance ${quote(instance)}`)
    if (!Array.isArray(r.data)) return malformedView('TXT data is not a list of strings')
    for (const item of r.data as unknown[]) {
      const text = typeof item === 'string' ? item : item instanceof Uint8Array ? utf8.decode(item) : undefined
      if (text === undefined) return malformedView('TXT data is not a list of strings')
      if (!text.startsWith(DNSADDR)) continue
      if (dnsaddrs.length >= MDNS_MAX_ADDRESSES) return malformedView(`more than ${MDNS_MAX_ADDRESSES} dnsaddr entries`)
      dnsaddrs.push(text.slice(DNSADDR.length))
    }
  }
  if (!mentioned || instance === undefined) return asks ? { kind: 'question' } : { kind: 'foreign' }
  return { kind: 'records', instance, dnsaddrs, asks }
}

/** A validated instance: a peer with its addresses, our own id, or why it was refused. */
export type MdnsPeerVerdict =
  | { kind: 'peer', peer: string, addresses: string[] }
  | { kind: 'own' }
  | { kind: 'malformed', reason: string }

/**
 * Checks an instance read by `readMdnsPacket`: the label must be a peer id
 * other than `self`, and every `dnsaddr` a multiaddr ending in `/p2p/` of that
 * same peer. Returns the addresses without `/p2p`, duplicates dropped.
 */
export function validateMdnsRecords (instance: string, dnsaddrs: string[], self: string): MdnsPeerVerdict {
  if (instance === self) return { kind: 'own' }
  let peer: string
  try {
    peer = peerIdFromString(instance).toString()
  } catch {
    return { kind: 'malformed', reason: `instance label ${quote(instance)} is not a peer id` }
  }
  if (peer === self) return { kind: 'own' }
  if (dnsaddrs.length === 0) return { kind: 'malformed', reason: 'no dnsaddr entry, expected at least one address' }
  if (dnsaddrs.length > MDNS_MAX_ADDRESSES) return { kind: 'malformed', reason: `${dnsaddrs.length} dnsaddr entries, expected at most ${MDNS_MAX_ADDRESSES}` }
  const addresses: string[] = []
  for (const text of dnsaddrs) {
    let ma
    try {
      ma = multiaddr(text)
    } catch {
      return { kind: 'malformed', reason: `dnsaddr ${quote(text)} is not a multiaddr` }
    }
    const last = ma.getComponents().at(-1)
    if (last?.code !== CODE_P2P || last.value !== peer) return { kind: 'malformed', reason: `dnsaddr ${quote(text)}, expected it to end in /p2p/${peer}` }
    const addr = ma.decapsulateCode(CODE_P2P).toString()
    if (addr === '/') return { kind: 'malformed', reason: `dnsaddr ${quote(text)} has no transport address` }
    if (!addresses.includes(addr)) addresses.push(addr)
  }
  return { kind: 'peer', peer, addresses }
}


function isRecord (x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null
}

function listOf (x: unknown): unknown[] {
  return Array.isArray(x) ? x : []
}

function malformedView (reason: string): MdnsPacketView {
  return { kind: 'malformed', reason }
}

/** A wire value for a log line: quoted, at most 80 characters. */
export function quote (x: unknown): string {
  const s = typeof x === 'string' ? x : String(x)
  return JSON.stringify(s.length > 80 ? s.slice(0, 77) + '...' : s)
}
