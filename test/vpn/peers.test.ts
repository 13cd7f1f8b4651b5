import { describe, expect, it } from 'vitest'
import type { JsonValue, StateEntry } from '../../p2p/types.ts'
import { seededRandom } from '../../util/random.ts'
import { overlayAddress, overlayCandidate, parseOverlayCidr, type AddressClaim } from '../../vpn/address.ts'
import { generateKeyPair } from '../../vpn/keys.ts'
import { advertValue, chooseEndpoint, contestedPeers, keepaliveFor, countVouches, desiredPeers, isEndpoint, isWireGuardKey, MAX_ADVERT_VOUCHES, parseAdvert, trackEstablished, VPN_ADVERT_KEY, type VpnAdvert } from '../../vpn/peers.ts'
import { randomPeerId, shuffle } from '../../sim/random-ids.ts'

const net = parseOverlayCidr('10.88.7.0/24')

function entry (owner: string, value: JsonValue, key = VPN_ADVERT_KEY): StateEntry {
  return { owner, key, version: 1, writtenAt: 0, value }
}

function advert (claim: AddressClaim, endpoints = ['192.168.1.10:51820']): VpnAdvert {
  return { publicKey: generateKeyPair().publicKey, port: 51820, endpoints, ...claim }
}

describe('advert validation', () => {
  it('accepts a well-formed advert and drops bad endpoints', () => {
    const a = advert({ address: '10.88.7.9', attempt: 0 }, ['192.168.1.10:51820', '[fd00::1]:51820', 'junk', '1.2.3.4:0', '1.2.3.4:70000'])
    const parsed = parseAdvert(advertValue(a))
    expect(parsed?.endpoints).toEqual(['192.168.1.10:51820', '[fd00::1]:51820'])
  })

  it.each([
    ['not an object', 'x'],
    ['array', []],
    ['bad key', { publicKey: 'abc', port: 1, endpoints: [], address: '10.88.7.1', attempt: 0 }],
    ['bad port', { publicKey: generateKeyPair().publicKey, port: 0, endpoints: [], address: '10.88.7.1', attempt: 0 }],
    ['bad address', { publicKey: generateKeyPair().publicKey, port: 1, endpoints: [], address: '10.88.7', attempt: 0 }],
    ['bad attempt', { publicKey: generateKeyPair().publicKey, port: 1, endpoints: [], address: '10.88.7.1', attempt: -1 }],
    ['no endpoints', { publicKey: generateKeyPair().publicKey, port: 1, address: '10.88.7.1', attempt: 0 }]
  ])('rejects %s', (_what, value) => {
    expect(parseAdvert(value as JsonValue)).toBeUndefined()
  })

  it('recognises WireGuard keys and endpoints', () => {
    expect(isWireGuardKey(generateKeyPair().publicKey)).toBe(true)
    expect(isWireGuardKey('AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=')).toBe(false)
    expect(isEndpoint('10.0.0.1:51820')).toBe(true)
    expect(isEndpoint('[fe80::1]:1')).toBe(true)
    expect(isEndpoint('10.0.0.1')).toBe(false)
    expect(isEndpoint('host.example:51820')).toBe(false)
  })
})

describe('desiredPeers', () => {
  it('the same state gives the same peer set on every node, whatever the entry order', () => {
    const rng = seededRandom(42)
    const ids = Array.from({ length: 30 }, () => randomPeerId(rng))
    const claims = new Map<string, AddressClaim>()
    for (const id of ids) claims.set(id, overlayAddress(net, id, undefined, [...claims].map(([peerId, c]) => ({ peerId, ...c }))))
    const entries = ids.map((id) => entry(id, advertValue(advert(claims.get(id) as AddressClaim))))
    entries.push(entry(ids[0] as string, { other: true }, 'roles/vote'))
    const views = ids.map((self) => ({ self, set: desiredPeers(shuffle(entries, rng), { self, network: net }) }))
    const everyone = (v: typeof views[number]): string => JSON.stringify([...v.set.peers.map((p) => p.peerId), v.self].sort())
    for (const v of views) {
      expect(v.set.peers).toHaveLength(29)
      expect(v.set.peers.map((p) => p.peerId)).not.toContain(v.self)
      expect(v.set.peers.map((p) => p.peerId)).toEqual([...v.set.peers.map((p) => p.peerId)].sort())
      expect(everyone(v)).toBe(everyone(views[0] as typeof views[number]))
    }
    // Any two nodes agree on every third peer's configuration.
    const [a, b] = views as [typeof views[number], typeof views[number]]
    const third = a.set.peers.find((p) => p.peerId !== b.self)
    expect(b.set.peers.find((p) => p.peerId === third?.peerId)).toEqual(third)
    expect(third?.allowedIps).toEqual([`${claims.get(third?.peerId as string)?.address ?? ''}/32`])
    expect(third?.keepalive).toBe(25)
  })

  it('leaves out malformed, forged, losing and duplicate-key adverts, and tombstones', () => {
    const [p1, p2, p3, p4, p5, p6] = ['p1', 'p2', 'p3', 'p4', 'p5', 'p6']
    const good = advert({ address: overlayCandidate(net, p1, 0), attempt: 0 })
    const forged = advert({ address: overlayCandidate(net, p1, 1), attempt: 0 })
    // p4 claims p1's address with a valid but worse (higher) attempt.
    let attempt = 1
    while (overlayCandidate(net, p4, attempt) !== good.address) attempt++
    const loser = advert({ address: good.address, attempt })
    const copy = { ...advert({ address: overlayCandidate(net, p5, 0), attempt: 0 }), publicKey: good.publicKey }
    const set = desiredPeers([
      entry(p1, advertValue(good)),
      entry(p2, { publicKey: 'nope' }),
      entry(p3, advertValue(forged)),
      entry(p4, advertValue(loser)),
      entry(p5, advertValue(copy)),
      entry(p6, null)
    ], { self: 'me', network: net, keepalive: 5, established: new Set([p1]) })
    expect(set.peers.map((p) => p.peerId)).toEqual([p1])
    expect(set.peers[0]?.keepalive).toBe(5)
    expect(set.ignored).toEqual([
      { peerId: p2, reason: 'malformed' },
      { peerId: p3, reason: 'invalid-claim' },
      { peerId: p4, reason: 'lost-claim' },
      { peerId: p5, reason: 'duplicate-key' }
    ])
  })
})

describe('first claim wins (pure)', () => {
  const a1 = advert({ address: overlayCandidate(net, 'p1', 0), attempt: 0 })
  const a2 = advert({ address: overlayCandidate(net, 'p2', 0), attempt: 0 })

  it('holds an advert established after it was uncontested for the period, and keeps it so once contested', () => {
    const adverts = new Map<string, VpnAdvert>([['p1', a1], ['p2', a2]])
    let t = trackEstablished(new Map(), adverts, net, 0, 100)
    expect(t.established).toEqual(new Set())
    t = trackEstablished(t.track, adverts, net, 99, 100)
    expect(t.established).toEqual(new Set())
    t = trackEstablished(t.track, adverts, net, 100, 100)
    expect(t.established).toEqual(new Set(['p1', 'p2']))
    // p3 copies p1's key: p1 stays established, p3 is contested from its first sight.
    const withCopy = new Map([...adverts, ['p3', { ...advert({ address: overlayCandidate(net, 'p3', 0), attempt: 0 }), publicKey: a1.publicKey }]])
    expect(contestedPeers(withCopy, net)).toEqual(new Set(['p1', 'p3']))
    t = trackEstablished(t.track, withCopy, net, 10_000, 100)
    expect(t.established).toEqual(new Set(['p1', 'p2']))
    // A changed advert (new address) is judged anew.
    const movedP2 = new Map([...withCopy, ['p2', { ...a2, address: overlayCandidate(net, 'p2', 1), attempt: 1 }]])
    expect(trackEstablished(t.track, movedP2, net, 10_001, 100).established).toEqual(new Set(['p1']))
  })

  it('counts vouches from distinct other owners only, and bounds them on parse', () => {
    const adverts = new Map<string, VpnAdvert>([
      ['p1', { ...a1, vouch: ['p1', 'p2'] }], ['p2', { ...a2, vouch: ['p1'] }], ['p3', { ...a2, vouch: ['p1', 'p2'] }]
    ])
    expect(countVouches(adverts)).toEqual(new Map([['p2', 2], ['p1', 2]]))
    const many = parseAdvert({ ...(advertValue(a1) as object), vouch: [...Array.from({ length: 100 }, (_, i) => `x${i}`), 7, 'x1'] } as JsonValue)
    expect(many?.vouch).toHaveLength(MAX_ADVERT_VOUCHES)
    expect(parseAdvert(advertValue({ ...a1, vouch: [] }))?.vouch).toBeUndefined()
    expect(advertValue(a1)).not.toHaveProperty('vouch')
  })

  it('never makes a peer of an advert carrying this node\'s own key, whatever its rank', () => {
    const mine = advert({ address: overlayCandidate(net, 'me', 0), attempt: 0 })
    const copy = { ...advert({ address: overlayCandidate(net, 'aaa', 0), attempt: 0 }), publicKey: mine.publicKey }
    const set = desiredPeers([entry('me', advertValue(mine)), entry('aaa', advertValue(copy))], { self: 'me', network: net })
    expect(set.peers).toEqual([])
    expect(set.ignored).toEqual([{ peerId: 'aaa', reason: 'duplicate-key' }])
    expect(set.duplicateKeys).toEqual([{ publicKey: mine.publicKey, holders: ['aaa', 'me'], kept: 'me' }])
  })

  it('more vouches beat local establishment; equal vouches leave it to establishment, then rank', () => {
    const address = overlayCandidate(net, 'p1', 0)
    let attempt = 0
    while (overlayCandidate(net, 'p2', attempt) !== address) attempt++
    const c1 = advert({ address, attempt: 0 })
    const c2 = advert({ address, attempt })
    const base = [entry('p1', advertValue(c1)), entry('p2', advertValue(c2))]
    const held = (extra: StateEntry[], established: string[]): string[] =>
      desiredPeers([...base, ...extra], { self: 'me', network: net, established: new Set(established) }).peers.map((p) => p.peerId)
    expect(held([], [])).toEqual(['p1']) // lower attempt
    expect(held([], ['p2'])).toEqual(['p2'])
    const v = (id: string, forWhom: string): StateEntry => entry(id, advertValue({ ...advert({ address: overlayCandidate(net, id, 0), attempt: 0 }), vouch: [forWhom] }))
    expect(held([v('w1', 'p1')], ['p2'])).toContain('p1')
    expect(held([v('w1', 'p1')], ['p2'])).not.toContain('p2')
  })
})

describe('chooseEndpoint', () => {
  const locals = [{ address: '192.168.1.5', prefixLength: 24 }]
  it('prefers endpoints on our own subnet and rotates through all', () => {
    const eps = ['10.0.0.9:51820', '192.168.1.10:51820', '[fd00::9]:51820']
    expect(chooseEndpoint(eps, locals, 0)).toBe('192.168.1.10:51820')
    expect(chooseEndpoint(eps, locals, 1)).toBe('10.0.0.9:51820')
    expect(chooseEndpoint(eps, locals, 2)).toBe('[fd00::9]:51820')
    expect(chooseEndpoint(eps, locals, 3)).toBe('192.168.1.10:51820')
    expect(chooseEndpoint([], locals, 0)).toBeUndefined()
  })
})

describe('keepaliveFor', () => {
  const locals = [{ address: '192.168.1.5', prefixLength: 24 }]
  const advertised = ['192.168.1.10:51820', '10.0.0.9:51820']
  it('is off only for a settled session at an advertised endpoint on our own subnet', () => {
    expect(keepaliveFor('192.168.1.10:51820', advertised, locals, true, 25)).toBe(0)
    // No handshake yet, or sends waiting on one: WireGuard keeps initiating.
    expect(keepaliveFor('192.168.1.10:51820', advertised, locals, false, 25)).toBe(25)
    // A routed path: a NAT or stateful firewall may sit on it.
    expect(keepaliveFor('10.0.0.9:51820', advertised, locals, true, 25)).toBe(25)
    // Behind NAT: WireGuard took a source address the peer does not advertise, even on our subnet.
    expect(keepaliveFor('192.168.1.1:40312', advertised, locals, true, 25)).toBe(25)
    expect(keepaliveFor(undefined, advertised, locals, true, 25)).toBe(25)
  })
})

describe('desiredPeers: departed owners', () => {
  /** Valid claims for `ids`, each derived from its id as the allocator would. */
  function adverts (ids: string[]): StateEntry[] {
    const claims: Array<{ peerId: string } & AddressClaim> = []
    for (const id of ids) claims.push({ peerId: id, ...overlayAddress(net, id, undefined, claims) })
    return claims.map((c) => entry(c.peerId, advertValue(advert({ address: c.address, attempt: c.attempt }))))
  }

  it('an advert of a removed or long-dead owner makes no peer and holds no address claim', () => {
    const rng = seededRandom(7)
    const [self, live, ghost] = [randomPeerId(rng), randomPeerId(rng), randomPeerId(rng)] as [string, string, string]
    const entries = adverts([self, live, ghost])
    const all = desiredPeers(entries, { self, network: net })
    expect(all.peers.map((p) => p.peerId).sort()).toEqual([live, ghost].sort())
    const set = desiredPeers(entries, { self, network: net, departed: new Set([ghost]) })
    expect(set.peers.map((p) => p.peerId)).toEqual([live])
    expect(set.ignored).toEqual([{ peerId: ghost, reason: 'departed' }])
    expect(set.claims.map((c) => c.peerId)).not.toContain(ghost)
  })

  it('this node is never left out as departed of its own view', () => {
    const rng = seededRandom(8)
    const [self, other] = [randomPeerId(rng), randomPeerId(rng)] as [string, string]
    const set = desiredPeers(adverts([self, other]), { self, network: net, departed: new Set([self]) })
    expect(set.claims.map((c) => c.peerId)).toContain(self)
    expect(set.peers.map((p) => p.peerId)).toEqual([other])
  })
})
