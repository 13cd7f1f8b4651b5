import { describe, expect, it } from 'vitest'
import { seededRandom } from '../../util/random.ts'
import { randomPeerId, shuffle } from '../../sim/random-ids.ts'
import {
  attemptLimit, compareClaims, formatIpv4, HASHED_ATTEMPTS, inOverlay, isValidClaim, overlayAddress, overlayCandidate,
  parseIpv4, parseOverlayCidr, resolveClaims, type AddressClaim, type ClaimHolder, type OverlayNetwork
} from '../../vpn/address.ts'

/** Nodes joining one after another, each seeing every earlier claim. */
function joinSequentially (net: OverlayNetwork, ids: string[]): Map<string, AddressClaim> {
  const claims = new Map<string, AddressClaim>()
  for (const id of ids) {
    const others = [...claims].map(([peerId, c]) => ({ peerId, ...c }))
    claims.set(id, overlayAddress(net, id, undefined, others))
  }
  return claims
}

/**
 * Nodes that all claim before seeing anyone, then exchange adverts in rounds: each
 * round every node recomputes from the others' claims of the previous round.
 */
function convergeFromRace (net: OverlayNetwork, ids: string[], maxRounds = 50): { claims: Map<string, AddressClaim>, rounds: number } {
  let claims = new Map<string, AddressClaim>(ids.map((id) => [id, overlayAddress(net, id, undefined, [])]))
  for (let round = 1; round <= maxRounds; round++) {
    const holders: ClaimHolder[] = [...claims].map(([peerId, c]) => ({ peerId, ...c }))
    const next = new Map<string, AddressClaim>()
    let changed = false
    for (const id of ids) {
      const mine = claims.get(id) as AddressClaim
      const c = overlayAddress(net, id, mine, holders.filter((h) => h.peerId !== id))
      if (c.address !== mine.address || c.attempt !== mine.attempt) changed = true
      next.set(id, c)
    }
    claims = next
    if (!changed) return { claims, rounds: round }
  }
  throw new Error(`no convergence in ${maxRounds} rounds`)
}

describe('parseOverlayCidr', () => {
  it.each([
    ['10.88.0.0/16', 16, 65534],
    ['10.88.7.0/24', 24, 254],
    ['192.168.0.0/30', 30, 2],
    [' 10.0.0.0/8 ', 8, 16777214]
  ])('%s', (cidr, prefix, usable) => {
    const net = parseOverlayCidr(cidr)
    expect(net.prefix).toBe(prefix)
    expect(net.usable).toBe(usable)
    expect(net.cidr).toBe(cidr.trim())
  })

  it.each([
    ['10.88.0.0', /expected an IPv4 network/],
    ['10.88.0.0/31', /prefix from \/8 to \/30/],
    ['10.88.0.0/7', /prefix from \/8 to \/30/],
    ['10.88.1.0/16', /host bits are set; expected the network address 10\.88\.0\.0\/16/],
    ['fd00::/64', /expected an IPv4 network/],
    ['10.256.0.0/16', /got '10\.256\.0\.0\/16'/],
    ['010.1.0.0/16', /expected/]
  ])('rejects %s', (cidr, message) => {
    let caught: unknown
    try { parseOverlayCidr(cidr) } catch (err) { caught = err }
    expect((caught as Error).name).toBe('OverlayCidrError')
    expect((caught as Error).message).toMatch(message)
    expect((caught as Error).message).toContain('vpn.cidr')
  })
})

describe('ipv4 helpers', () => {
  it('round-trips and rejects junk', () => {
    expect(formatIpv4(parseIpv4('10.88.255.1') as number)).toBe('10.88.255.1')
    expect(parseIpv4('1.2.3')).toBeUndefined()
    expect(parseIpv4('1.2.3.256')).toBeUndefined()
    expect(parseIpv4('a.b.c.d')).toBeUndefined()
  })

  it('inOverlay excludes network and broadcast', () => {
    const net = parseOverlayCidr('10.88.7.0/24')
    expect(inOverlay(net, '10.88.7.0')).toBe(false)
    expect(inOverlay(net, '10.88.7.255')).toBe(false)
    expect(inOverlay(net, '10.88.7.1')).toBe(true)
    expect(inOverlay(net, '10.88.7.254')).toBe(true)
    expect(inOverlay(net, '10.88.8.1')).toBe(false)
  })
})

describe('overlayCandidate', () => {
  it('is deterministic, inside the network, never network or broadcast', () => {
    const rng = seededRandom(1)
    for (const cidr of ['10.88.0.0/16', '10.88.7.0/24', '10.9.9.0/29', '192.168.5.4/30']) {
      const net = parseOverlayCidr(cidr)
      for (let i = 0; i < 300; i++) {
        const id = randomPeerId(rng)
        const attempt = rng.int(attemptLimit(net))
        const a = overlayCandidate(net, id, attempt)
        expect(inOverlay(net, a), `${a} in ${cidr}`).toBe(true)
        expect(overlayCandidate(net, id, attempt)).toBe(a)
      }
    }
  })

  it('the linear phase sweeps every usable address', () => {
    const net = parseOverlayCidr('10.1.2.0/28')
    const seen = new Set<string>()
    for (let k = HASHED_ATTEMPTS; k < attemptLimit(net); k++) seen.add(overlayCandidate(net, 'peer-x', k))
    expect(seen.size).toBe(net.usable)
  })

  it('rejects an attempt outside the range', () => {
    const net = parseOverlayCidr('10.1.2.0/28')
    expect(() => overlayCandidate(net, 'p', -1)).toThrow(RangeError)
    expect(() => overlayCandidate(net, 'p', attemptLimit(net))).toThrow(RangeError)
  })

  it('a claim is valid only as the owner\'s own candidate', () => {
    const net = parseOverlayCidr('10.88.0.0/16')
    const address = overlayCandidate(net, 'alice', 3)
    expect(isValidClaim(net, 'alice', { address, attempt: 3 })).toBe(true)
    expect(isValidClaim(net, 'alice', { address, attempt: 2 })).toBe(false)
    expect(isValidClaim(net, 'bob', { address, attempt: 3 })).toBe(false)
    expect(isValidClaim(net, 'alice', { address, attempt: 1.5 })).toBe(false)
  })
})

describe('allocation properties', () => {
  it('1 000 random identities joining a /16 get unique addresses', () => {
    const net = parseOverlayCidr('10.88.0.0/16')
    const rng = seededRandom(16)
    const ids = Array.from({ length: 1000 }, () => randomPeerId(rng))
    const claims = joinSequentially(net, ids)
    const addresses = [...claims.values()].map((c) => c.address)
    expect(new Set(addresses).size).toBe(1000)
    for (const a of addresses) expect(inOverlay(net, a)).toBe(true)
  })

  it('200 random identities joining a /24 get unique addresses', () => {
    const net = parseOverlayCidr('10.88.7.0/24')
    const rng = seededRandom(24)
    const ids = Array.from({ length: 200 }, () => randomPeerId(rng))
    const claims = joinSequentially(net, ids)
    expect(new Set([...claims.values()].map((c) => c.address)).size).toBe(200)
    // At this density collisions are certain: the rule had to work.
    expect([...claims.values()].some((c) => c.attempt > 0)).toBe(true)
  })

  it.each([
    ['10.88.0.0/16', 300, 7],
    ['10.88.7.0/24', 200, 8],
    ['10.88.7.0/24', 20, 9]
  ])('%s: %i nodes that all claimed blind converge to unique addresses', (cidr, n, seed) => {
    const net = parseOverlayCidr(cidr)
    const rng = seededRandom(seed)
    const ids = Array.from({ length: n }, () => randomPeerId(rng))
    const { claims } = convergeFromRace(net, ids)
    expect(new Set([...claims.values()].map((c) => c.address)).size).toBe(n)
    const verdicts = resolveClaims(net, [...claims].map(([peerId, c]) => ({ peerId, ...c })))
    expect([...verdicts.values()].every((v) => v === 'held')).toBe(true)
  })

  it('the result is the same whatever order the adverts arrive in', () => {
    const net = parseOverlayCidr('10.88.7.0/24')
    const rng = seededRandom(5)
    const ids = Array.from({ length: 60 }, () => randomPeerId(rng))
    // Blind claims give plenty of conflicts to resolve.
    const holders: ClaimHolder[] = ids.map((peerId) => ({ peerId, ...overlayAddress(net, peerId, undefined, []) }))
    const reference = resolveClaims(net, holders)
    expect([...reference.values()].filter((v) => v === 'lost').length).toBeGreaterThan(0)
    for (let i = 0; i < 20; i++) {
      const shuffled = shuffle(holders, rng)
      const verdicts = resolveClaims(net, shuffled)
      for (const id of ids) expect(verdicts.get(id)).toBe(reference.get(id))
      for (const id of ids.slice(0, 5)) {
        const mine = holders.find((h) => h.peerId === id) as ClaimHolder
        const others = shuffled.filter((h) => h.peerId !== id)
        expect(overlayAddress(net, id, mine, others)).toEqual(overlayAddress(net, id, mine, holders.filter((h) => h.peerId !== id)))
      }
    }
  })

  it('a restarted node keeps its claim, even with a different or empty view', () => {
    const net = parseOverlayCidr('10.88.7.0/24')
    const rng = seededRandom(11)
    const ids = Array.from({ length: 100 }, () => randomPeerId(rng))
    const claims = joinSequentially(net, ids)
    for (const [id, claim] of claims) {
      expect(overlayAddress(net, id, claim, [])).toEqual(claim)
      const others = [...claims].filter(([p]) => p !== id).map(([peerId, c]) => ({ peerId, ...c }))
      expect(overlayAddress(net, id, claim, shuffle(others, rng))).toEqual(claim)
    }
  })

  it('a held claim moves only when it loses a conflict, to a free address', () => {
    const net = parseOverlayCidr('10.88.7.0/24')
    const rng = seededRandom(3)
    // Find two identities whose first choices collide.
    const firstChoice = new Map<string, string>()
    let pair: [string, string] | undefined
    while (pair === undefined) {
      const id = randomPeerId(rng)
      const a = overlayCandidate(net, id, 0)
      const other = firstChoice.get(a)
      if (other !== undefined) pair = [other, id]
      firstChoice.set(a, id)
    }
    const [x, y] = pair
    const cx: ClaimHolder = { peerId: x, address: overlayCandidate(net, x, 0), attempt: 0 }
    const cy: ClaimHolder = { peerId: y, address: overlayCandidate(net, y, 0), attempt: 0 }
    const [winner, loser] = compareClaims(cx, cy) < 0 ? [cx, cy] : [cy, cx]
    expect(overlayAddress(net, winner.peerId, winner, [loser])).toEqual({ address: winner.address, attempt: 0 })
    const moved = overlayAddress(net, loser.peerId, loser, [winner])
    expect(moved.attempt).toBeGreaterThan(0)
    expect(moved.address).not.toBe(winner.address)
    expect(isValidClaim(net, loser.peerId, moved)).toBe(true)
    // After moving, the loser holds its new claim against the same view.
    expect(overlayAddress(net, loser.peerId, moved, [winner])).toEqual(moved)
    // A newcomer never takes the winner's address, whatever its rank.
    const newcomer = overlayAddress(net, 'newcomer', undefined, [winner, { peerId: loser.peerId, ...moved }])
    expect([winner.address, moved.address]).not.toContain(newcomer.address)
  })

  it('a claim made for another network is replaced', () => {
    const old = parseOverlayCidr('10.88.0.0/16')
    const net = parseOverlayCidr('10.99.0.0/16')
    const stale = { address: overlayCandidate(old, 'p', 0), attempt: 0 }
    expect(overlayAddress(net, 'p', stale, [])).toEqual({ address: overlayCandidate(net, 'p', 0), attempt: 0 })
  })

  it('resolveClaims marks forged claims invalid', () => {
    const net = parseOverlayCidr('10.88.0.0/16')
    const victim: ClaimHolder = { peerId: 'victim', address: overlayCandidate(net, 'victim', 0), attempt: 0 }
    const forger: ClaimHolder = { peerId: 'forger', address: victim.address, attempt: 0 }
    const verdicts = resolveClaims(net, [forger, victim])
    expect(verdicts.get('victim')).toBe('held')
    expect(verdicts.get('forger')).toBe('invalid')
  })

  it('a full pool raises AddressPoolExhaustedError', () => {
    const net = parseOverlayCidr('10.1.1.0/30')
    const a = overlayAddress(net, 'a', undefined, [])
    const b = overlayAddress(net, 'b', undefined, [{ peerId: 'a', ...a }])
    expect(b.address).not.toBe(a.address)
    let caught: unknown
    try { overlayAddress(net, 'c', undefined, [{ peerId: 'a', ...a }, { peerId: 'b', ...b }]) } catch (err) { caught = err }
    expect((caught as Error).name).toBe('AddressPoolExhaustedError')
    expect((caught as Error).message).toContain('10.1.1.0/30')
  })
})
