import { createHash } from 'node:crypto'
import { AddressPoolExhaustedError, OverlayCidrError } from './errors.ts'

/*
 * Overlay addresses are derived from the node identity, so no central service hands
 * them out and a node computes its own before it has seen anyone.
 *
 * Candidate `k` of a peer is a hash of (peer id, k) into the usable hosts of the
 * network for the first HASHED_ATTEMPTS attempts, then a linear probe from
 * candidate 0, so every address of the pool is reachable and a full pool is
 * detected. A claim is (address, attempt) and is valid only if the address is the
 * owner's candidate for that attempt: nobody can claim an arbitrary address.
 *
 * A node never moves a claim it holds unless it loses a conflict. A new node skips
 * addresses already claimed, so between honest nodes conflicts only arise from races
 * (nodes that claimed before seeing each other). Two valid claims on one address are
 * ranked by their standing first, then by (attempt, sha256(peer id)), the lower
 * winning:
 *
 * - vouches: how many other nodes publish, in their own adverts, that they hold this
 *   claim as established (replicated, so every node counts the same);
 * - established: this node saw the claim held uncontested for a while before the
 *   contest began (local; it decides only between equal vouch counts).
 *
 * First claim wins: a claim that was established before a contender appeared keeps
 * its address, so grinding a peer id whose first candidate is a taken address (with a
 * better rank) no longer takes it over. In a boot race neither claim is established
 * and the rank settles it in one step, as before. See `peers.ts` for the vouches.
 */

/** Attempts that hash into the pool before the allocator falls back to a linear probe. */
export const HASHED_ATTEMPTS = 32

/** A parsed IPv4 overlay network. */
export interface OverlayNetwork {
  /** The CIDR in canonical form, e.g. `10.88.0.0/16`. */
  cidr: string
  /** Network address as an unsigned 32-bit integer. */
  base: number
  /** Prefix length (8 … 30). */
  prefix: number
  /** Usable host addresses (network and broadcast excluded). */
  usable: number
}

/** A node's claim on an overlay address. */
export interface AddressClaim {
  /** Dotted IPv4 address inside the overlay network. */
  address: string
  /** Which candidate of the owner this is (0 = first choice). */
  attempt: number
}

/** How well a claim stands in a contest (see the module comment). */
export interface ClaimStanding {
  /** Distinct other nodes vouching for the claim. @default 0 */
  vouches?: number
  /** Held uncontested long enough here before the contest began. @default false */
  established?: boolean
}

/** A claim together with its owner and standing, as read from an advert. */
export interface ClaimHolder extends AddressClaim, ClaimStanding {
  peerId: string
}

/** The outcome of conflict resolution for one claim. */
export type ClaimStatus = 'held' | 'lost' | 'invalid'

/** Dotted IPv4 to an unsigned integer; undefined when `text` is not an IPv4 address. */
export function parseIpv4 (text: string): number | undefined {
  const parts = text.split('.')
  if (parts.length !== 4) return undefined
  let value = 0
  for (const part of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return undefined
    const n = Number(part)
    if (n > 255) return undefined
    value = value * 256 + n
  }
  return value
}

/** An unsigned integer to dotted IPv4. */
export function formatIpv4 (value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.')
}

/**
 * Parses `vpn.cidr`. Host bits must be zero; the prefix must leave room for hosts.
 * @throws OverlayCidrError naming the value and what was expected.
 */
export function parseOverlayCidr (cidr: string): OverlayNetwork {
  const expected = 'an IPv4 network such as 10.88.0.0/16 with a prefix from /8 to /30'
  const match = /^([0-9.]+)\/([0-9]{1,2})$/.exec(cidr.trim())
  const addr = match === null ? undefined : parseIpv4(match[1] as string)
  const prefix = match === null ? NaN : Number(match[2])
  if (addr === undefined || !Number.isInteger(prefix) || prefix < 8 || prefix > 30) {
    throw new OverlayCidrError(`vpn.cidr: got '${cidr}', expected ${expected}`)
  }
  const hostBits = 32 - prefix
  const mask = hostBits === 32 ? 0 : (0xffffffff << hostBits) >>> 0
  if ((addr & ~mask) >>> 0 !== 0) {
    throw new OverlayCidrError(`vpn.cidr: got '${cidr}', host bits are set; expected the network address ${formatIpv4((addr & mask) >>> 0)}/${prefix}`)
  }
  return { cidr: `${formatIpv4(addr)}/${prefix}`, base: addr, prefix, usable: 2 ** hostBits - 2 }
}

/** True when `address` is a usable host address of `net` (not network, not broadcast). */
export function inOverlay (net: OverlayNetwork, address: string): boolean {
  const value = parseIpv4(address)
  if (value === undefined) return false
  const offset = value - net.base
  return offset >= 1 && offset <= net.usable
}

/** Number of distinct attempts a peer has in `net` (hashed ones plus one full linear sweep). */
export function attemptLimit (net: OverlayNetwork): number {
  return HASHED_ATTEMPTS + net.usable
}

// Memo of the two hashes below. Both are pure, so caching changes no result; it
// bounds the cost of re-validating every advert on each reconcile. Cleared when full.
const MEMO_LIMIT = 50_000
const memo = new Map<string, number | string>()

function memoized<T extends number | string> (key: string, compute: () => T): T {
  const hit = memo.get(key)
  if (hit !== undefined) return hit as T
  const value = compute()
  if (memo.size >= MEMO_LIMIT) memo.clear()
  memo.set(key, value)
  return value
}

function hashOffset (net: OverlayNetwork, peerId: string, attempt: number): number {
  const h = memoized(`a\0${peerId}\0${attempt}`, () =>
    createHash('sha256').update(`kairos-p2p/vpn/address\0${peerId}\0${attempt}`).digest().readUIntBE(0, 6))
  return h % net.usable
}

/**
 * Candidate address `attempt` of `peerId` in `net`: hashed for the first
 * HASHED_ATTEMPTS attempts, then a linear probe starting after candidate 0.
 */
export function overlayCandidate (net: OverlayNetwork, peerId: string, attempt: number): string {
  if (!Number.isInteger(attempt) || attempt < 0 || attempt >= attemptLimit(net)) {
    throw new RangeError(`attempt: got ${attempt}, expected an integer in [0, ${attemptLimit(net)})`)
  }
  const offset = attempt < HASHED_ATTEMPTS
    ? hashOffset(net, peerId, attempt)
    : (hashOffset(net, peerId, 0) + attempt - HASHED_ATTEMPTS + 1) % net.usable
  return formatIpv4(net.base + 1 + offset)
}

/** True when `claim` is `peerId`'s own candidate for the claimed attempt. */
export function isValidClaim (net: OverlayNetwork, peerId: string, claim: AddressClaim): boolean {
  if (!Number.isInteger(claim.attempt) || claim.attempt < 0 || claim.attempt >= attemptLimit(net)) return false
  return overlayCandidate(net, peerId, claim.attempt) === claim.address
}

function peerRank (peerId: string): string {
  return memoized(`r\0${peerId}`, () => createHash('sha256').update(peerId).digest('hex'))
}

/**
 * Orders two holders by standing: negative when `a` stands better. More vouches first,
 * then an established claim, then the lower sha256 of the peer id, then the peer id.
 * Used for address conflicts (after the attempt) and for duplicate WireGuard keys.
 */
export function compareStanding (a: ClaimStanding & { peerId: string }, b: ClaimStanding & { peerId: string }): number {
  const va = a.vouches ?? 0
  const vb = b.vouches ?? 0
  if (va !== vb) return vb - va
  const ea = a.established === true
  const eb = b.established === true
  if (ea !== eb) return ea ? -1 : 1
  return 0
}

/** Orders peer ids by sha256 (then the id): negative when `a` ranks first. */
export function comparePeerRank (a: string, b: string): number {
  const ra = peerRank(a)
  const rb = peerRank(b)
  if (ra !== rb) return ra < rb ? -1 : 1
  return a < b ? -1 : a > b ? 1 : 0
}

/**
 * Orders two claims on the same address: negative when `a` keeps it. Better standing
 * first (vouches, then established), then the lower attempt, then the lower sha256 of
 * the peer id, then the peer id itself.
 */
export function compareClaims (a: ClaimHolder, b: ClaimHolder): number {
  const s = compareStanding(a, b)
  if (s !== 0) return s
  if (a.attempt !== b.attempt) return a.attempt - b.attempt
  const ra = peerRank(a.peerId)
  const rb = peerRank(b.peerId)
  if (ra !== rb) return ra < rb ? -1 : 1
  return a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0
}

/**
 * Resolves every claim against the others: `held` (it keeps the address), `lost`
 * (another claim on the same address ranks first), `invalid` (not the owner's
 * candidate, or outside the network). Independent of input order.
 */
export function resolveClaims (net: OverlayNetwork, holders: ClaimHolder[]): Map<string, ClaimStatus> {
  const result = new Map<string, ClaimStatus>()
  const byAddress = new Map<string, ClaimHolder>()
  for (const h of holders) {
    if (!isValidClaim(net, h.peerId, h)) { result.set(h.peerId, 'invalid'); continue }
    const current = byAddress.get(h.address)
    if (current === undefined || compareClaims(h, current) < 0) byAddress.set(h.address, h)
  }
  for (const h of holders) {
    if (result.get(h.peerId) === 'invalid') continue
    result.set(h.peerId, byAddress.get(h.address)?.peerId === h.peerId ? 'held' : 'lost')
  }
  return result
}

/**
 * This node's claim given what it holds (`current`, from its state dir), its standing,
 * and the claims of the other nodes. Keeps `current` unless it is invalid for `net` or
 * loses a conflict; otherwise takes the next candidate no other node claims.
 * @throws AddressPoolExhaustedError when every address is claimed.
 */
export function overlayAddress (net: OverlayNetwork, self: string, current: AddressClaim | undefined, others: ClaimHolder[], standing: ClaimStanding = {}): AddressClaim {
  const valid = others.filter((o) => o.peerId !== self && isValidClaim(net, o.peerId, o))
  let start = 0
  if (current !== undefined && isValidClaim(net, self, current)) {
    const mine: ClaimHolder = { ...standing, address: current.address, attempt: current.attempt, peerId: self }
    const beaten = valid.some((o) => o.address === current.address && compareClaims(o, mine) < 0)
    if (!beaten) return { address: current.address, attempt: current.attempt }
    start = current.attempt + 1
  }
  const taken = new Set(valid.map((o) => o.address))
  const limit = attemptLimit(net)
  for (let k = 0; k < limit; k++) {
    const attempt = (start + k) % limit
    const address = overlayCandidate(net, self, attempt)
    if (!taken.has(address)) return { address, attempt }
  }
  throw new AddressPoolExhaustedError(`vpn.cidr ${net.cidr}: all ${net.usable} addresses are claimed by other nodes; use a larger network`)
}
