import type { JsonValue, StateEntry } from '../p2p/types.ts'
import { compareStanding, comparePeerRank, isValidClaim, parseIpv4, resolveClaims, type ClaimHolder, type ClaimStanding, type OverlayNetwork } from './address.ts'

/*
 * First claim wins, for overlay addresses and WireGuard keys alike. Every node tracks
 * locally which adverts it saw held uncontested for `establishMs` (`trackEstablished`):
 * nobody else claimed the address or advertised the key meanwhile. Once a contender
 * appears, each node that holds one side established publishes a vouch for it in its
 * own advert; every node then ranks the contenders by the number of distinct other
 * nodes vouching for them (replicated, so all agree, newcomers included), then by its
 * own establishment, then by rank. A contender's word about itself counts for nothing
 * and writtenAt, self-declared, is never used. So a token holder who grinds a peer id
 * for a taken address, or copies a node's public key, loses against every node that
 * knew the holder before: it needs more identities vouching for it than there are
 * honest nodes that knew the holder. Vouches appear only while a contest lasts; a
 * site without contests publishes adverts as before.
 */

/** State key of a node's VPN advert. */
export const VPN_ADVERT_KEY = 'vpn/advert'

/** Most endpoints an advert may carry; more are ignored. */
export const MAX_ADVERT_ENDPOINTS = 16

/** Most vouches an advert may carry; more are ignored. */
export const MAX_ADVERT_VOUCHES = 32

/** How long an advert must be held uncontested before this node holds it established, ms. @default 10000 */
export const DEFAULT_ESTABLISH_MS = 10_000

/** WireGuard persistent keepalive, seconds, towards the peers that get one (see `keepaliveFor`). */
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
  /**
   * Peer ids of contested adverts this node holds established (see the module
   * comment). Absent when there is no contest.
   */
  vouch?: string[]
}

/** One peer of the desired WireGuard configuration. */
export interface DesiredPeer {
  peerId: string
  publicKey: string
  /** Endpoints the peer advertises, in advert order. */
  endpoints: string[]
  /** `address/32`. */
  allowedIps: string[]
  /** Persistent keepalive, seconds, where the peer needs one (`keepaliveFor`). */
  keepalive: number
}

/** Why an advert was left out of the peer set. */
export type IgnoredReason = 'malformed' | 'invalid-claim' | 'lost-claim' | 'duplicate-key' | 'departed'

/** A WireGuard public key advertised by more than one peer id. */
export interface DuplicateKey {
  publicKey: string
  /** Every peer id advertising it, sorted. */
  holders: string[]
  /** The holder that keeps it; undefined when it is this node's own key held by others only. */
  kept: string | undefined
}

export interface PeerSet {
  /** Peers sorted by peer id; never contains the node itself. */
  peers: DesiredPeer[]
  /** Adverts left out, sorted by peer id. */
  ignored: Array<{ peerId: string, reason: IgnoredReason }>
  /** Valid claims of every advert (including this node's), for the allocator. */
  claims: ClaimHolder[]
  /** Keys advertised by several peer ids, sorted by key. */
  duplicateKeys: DuplicateKey[]
  /** Other peers this node holds established that are in a contest: its vouches to publish, sorted. */
  vouchFor: string[]
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
  const advert: VpnAdvert = { publicKey, port, endpoints: eps, address, attempt }
  const vouch = value.vouch
  if (Array.isArray(vouch)) {
    const ids = [...new Set(vouch.filter((v): v is string => typeof v === 'string' && v.length > 0 && v.length <= 128))].slice(0, MAX_ADVERT_VOUCHES)
    if (ids.length > 0) advert.vouch = ids
  }
  return advert
}

/** The advert as a state value (no `vouch` field while there is nothing to vouch for). */
export function advertValue (advert: VpnAdvert): JsonValue {
  const value: { [key: string]: JsonValue } = { publicKey: advert.publicKey, port: advert.port, endpoints: [...advert.endpoints], address: advert.address, attempt: advert.attempt }
  if (advert.vouch !== undefined && advert.vouch.length > 0) value.vouch = [...advert.vouch]
  return value
}

/** What identifies an advert's claim for establishment: owner, address, attempt and key. */
export function claimKey (peerId: string, advert: Pick<VpnAdvert, 'address' | 'attempt' | 'publicKey'>): string {
  return `${peerId}\u0000${advert.address}\u0000${advert.attempt}\u0000${advert.publicKey}`
}

/**
 * Peers whose advert is contested: another advert holds a valid claim on the same
 * address, or advertises the same public key. Pure.
 */
export function contestedPeers (adverts: ReadonlyMap<string, VpnAdvert>, network: OverlayNetwork): Set<string> {
  const byAddress = new Map<string, string[]>()
  const byKey = new Map<string, string[]>()
  for (const [peerId, a] of adverts) {
    if (isValidClaim(network, peerId, a)) byAddress.set(a.address, [...(byAddress.get(a.address) ?? []), peerId])
    byKey.set(a.publicKey, [...(byKey.get(a.publicKey) ?? []), peerId])
  }
  const out = new Set<string>()
  for (const group of [...byAddress.values(), ...byKey.values()]) if (group.length > 1) for (const p of group) out.add(p)
  return out
}

/** This node's local memory of adverts held uncontested: claim key → since when (ms), or `established`. */
export type EstablishedTrack = ReadonlyMap<string, number | 'established'>

/**
 * Advances the local establishment track at `now`: an advert held uncontested for
 * `establishMs` (since the first pass that saw it, up to the pass that first sees a
 * contender) becomes established and stays so while it is unchanged, even once
 * contested; a contested advert that is not established starts over; adverts that left
 * the state, or changed address or key, are judged anew. Returns the new track and the peers established now. Pure.
 */
export function trackEstablished (track: EstablishedTrack, adverts: ReadonlyMap<string, VpnAdvert>, network: OverlayNetwork, now: number, establishMs = DEFAULT_ESTABLISH_MS): { track: Map<string, number | 'established'>, established: Set<string> } {
  const contested = contestedPeers(adverts, network)
  const next = new Map<string, number | 'established'>()
  const established = new Set<string>()
  for (const [peerId, a] of adverts) {
    const key = claimKey(peerId, a)
    const prev = track.get(key)
    // `prev` is kept only while every earlier pass saw the advert uncontested; a contender
    // wakes a pass, so this pass is the first to see it.
    if (prev === 'established' || (prev !== undefined && now - prev >= establishMs)) {
      next.set(key, 'established')
      established.add(peerId)
    } else if (!contested.has(peerId)) {
      next.set(key, prev ?? now)
    }
  }
  return { track: next, established }
}

/** Distinct other owners vouching for each peer, from the adverts' `vouch` lists. Pure. */
export function countVouches (adverts: ReadonlyMap<string, VpnAdvert>): Map<string, number> {
  const out = new Map<string, number>()
  for (const [voucher, a] of adverts) {
    for (const p of a.vouch ?? []) if (p !== voucher) out.set(p, (out.get(p) ?? 0) + 1)
  }
  return out
}

/** The standing of every advert's owner: vouches and local establishment. Pure. */
export function standings (adverts: ReadonlyMap<string, VpnAdvert>, established: ReadonlySet<string>): Map<string, ClaimStanding> {
  const vouches = countVouches(adverts)
  const out = new Map<string, ClaimStanding>()
  for (const peerId of adverts.keys()) out.set(peerId, { vouches: vouches.get(peerId) ?? 0, established: established.has(peerId) })
  return out
}

/**
 * The WireGuard peers this node wants, as a pure function of the state entries
 * (typically `state.list(VPN_ADVERT_KEY)`) and of the adverts this node holds
 * established (`trackEstablished`). Every node computes the same set of held claims
 * from the same entries, as long as vouches differ or nobody holds a contender
 * established; each leaves out only itself. A claim that lost a conflict is left out
 * (its owner is moving), so allowed IPs never overlap. A public key advertised by
 * several peer ids is kept by the one with the best standing (vouches, established,
 * then rank) and refused for the others; an advert carrying this node's own key is
 * never a peer here, whatever its standing.
 *
 * An advert is no licence on its own: the adverts of `departed` owners (removed from
 * the site, or dead longer than `p2p.forget_after`; `state.departed()`) are left out
 * before anything else, so their key gets no peer and their address no claim, however
 * long their entry lingers in a replica.
 */
export function desiredPeers (entries: StateEntry[], init: { self: string, network: OverlayNetwork, keepalive?: number, established?: ReadonlySet<string>, departed?: ReadonlySet<string> }): PeerSet {
  const keepalive = init.keepalive ?? DEFAULT_KEEPALIVE_SECONDS
  const established = init.established ?? new Set<string>()
  const adverts = new Map<string, VpnAdvert>()
  const ignored: PeerSet['ignored'] = []
  const sorted = entries.filter((e) => e.key === VPN_ADVERT_KEY && e.value !== null)
    .sort((a, b) => a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0)
  const departed = init.departed ?? new Set<string>()
  for (const e of sorted) {
    if (e.owner !== init.self && departed.has(e.owner)) { ignored.push({ peerId: e.owner, reason: 'departed' }); continue }
    const advert = parseAdvert(e.value)
    if (advert === undefined) ignored.push({ peerId: e.owner, reason: 'malformed' })
    else adverts.set(e.owner, advert)
  }
  const standing = standings(adverts, established)
  const holders: ClaimHolder[] = [...adverts].map(([peerId, a]) => ({ peerId, address: a.address, attempt: a.attempt, ...standing.get(peerId) }))
  const verdicts = resolveClaims(init.network, holders)
  // Keys: among the adverts with a held claim, the best standing keeps a shared key.
  const byKey = new Map<string, string[]>()
  for (const [peerId, a] of adverts) byKey.set(a.publicKey, [...(byKey.get(a.publicKey) ?? []), peerId])
  const keeper = new Map<string, string | undefined>()
  const duplicateKeys: DuplicateKey[] = []
  const ownKey = adverts.get(init.self)?.publicKey
  for (const [publicKey, group] of byKey) {
    const candidates = group.filter((p) => verdicts.get(p) === 'held')
    candidates.sort((x, y) => compareStanding({ peerId: x, ...standing.get(x) }, { peerId: y, ...standing.get(y) }) || comparePeerRank(x, y))
    // Our own key is ours here whatever the others say: it is never configured as a peer.
    const kept = publicKey === ownKey ? (verdicts.get(init.self) === 'held' ? init.self : undefined) : candidates[0]
    keeper.set(publicKey, kept)
    if (group.length > 1) duplicateKeys.push({ publicKey, holders: [...group].sort(), kept })
  }
  const peers: DesiredPeer[] = []
  for (const [peerId, a] of adverts) {
    const verdict = verdicts.get(peerId)
    if (verdict === 'invalid') { ignored.push({ peerId, reason: 'invalid-claim' }); continue }
    if (verdict === 'lost') { ignored.push({ peerId, reason: 'lost-claim' }); continue }
    if (keeper.get(a.publicKey) !== peerId) { ignored.push({ peerId, reason: 'duplicate-key' }); continue }
    if (peerId === init.self) continue
    peers.push({ peerId, publicKey: a.publicKey, endpoints: a.endpoints, allowedIps: [`${a.address}/32`], keepalive })
  }
  ignored.sort((a, b) => a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0)
  duplicateKeys.sort((a, b) => a.publicKey < b.publicKey ? -1 : a.publicKey > b.publicKey ? 1 : 0)
  const claims = holders.filter((h) => verdicts.get(h.peerId) !== 'invalid')
  const contested = contestedPeers(adverts, init.network)
  const vouchFor = [...established].filter((p) => p !== init.self && contested.has(p) && adverts.has(p)).sort().slice(0, MAX_ADVERT_VOUCHES)
  return { peers, ignored, claims, duplicateKeys, vouchFor }
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

/**
 * The persistent keepalive, seconds, towards a peer WireGuard reaches at `endpoint`: none
 * while its session is `settled` (see controller-status.ts) at an endpoint the peer
 * advertises on one of our own subnets. One link between us means no NAT or stateful
 * firewall whose mapping a keepalive would keep open, and an idle pair then sends
 * nothing: its next packet handshakes anew. `keepalive` otherwise: a peer behind NAT
 * (WireGuard took another source address for it) or on a routed path, one with no
 * handshake yet, and one whose sends go unanswered, for which the keepalive keeps
 * WireGuard initiating (VPN-6, VPN-7).
 */
export function keepaliveFor (endpoint: string | undefined, advertised: readonly string[], locals: LocalAddress[], settled: boolean, keepalive: number): number {
  return settled && endpoint !== undefined && advertised.includes(endpoint) && sameSubnet(endpoint, locals) ? 0 : keepalive
}
