import { afterEach, describe, expect, it } from 'vitest'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { preSharedKey } from '@libp2p/pnet'
import { multiaddr } from '@multiformats/multiaddr'
import { admitAsInitiator } from '../../p2p/admission.ts'
import { deriveKeys } from '../../token/index.ts'
import { cryptoRandom } from '../../util/random.ts'
import { MalformedFrameError } from '../../p2p/errors.ts'
import { decodeList, encodeFrame, encodeVarint } from '../../p2p/framing.ts'
import { isPeerId } from '../../p2p/membership.ts'
import { MAX_PEERS_PER_EXCHANGE, MAX_PEERS_PER_FRAME, MEMBERS_HASH_ROW, decodePeers, encodePeers, entryFrames, peerFrames, pushAsInitiator, pushAsResponder, syncAsInitiator, syncAsResponder, type PeerAdvert } from '../../p2p/sync.ts'
import { digestHash } from '../../p2p/heartbeat.ts'
import { streamPair } from '@libp2p/utils'
import { store } from './state/fixtures.ts'
import type { P2PNode } from '../../p2p/index.ts'
import { Cluster, alivePeers, newToken } from './harness.ts'
import { waitFor } from '../helpers/wait.ts'

describe('sync frames', () => {
  it('splits entries into frames that each fit the bound and skips entries that never can', () => {
    const entries = Array.from({ length: 50 }, (_, i) => new Uint8Array(100).fill(i))
    const huge = new Uint8Array(5000)
    const frames = entryFrames([...entries, huge], 1024)
    expect(frames.every((f) => f.length <= 1024)).toBe(true)
    const back = frames.flatMap((f) => decodeList(f.subarray(1), 4096))
    expect(back).toEqual(entries)
  })

  it('peer lists round-trip and a wrong shape is a MalformedFrameError', () => {
    const peers = [{ id: '12D3KooWx', addresses: ['/ip4/10.0.0.1/tcp/4001'], ageMs: 12 }]
    expect(decodePeers(encodePeers(peers).subarray(1))).toEqual(peers)
    const bad = (s: string): unknown => { try { decodePeers(new TextEncoder().encode(s)); return undefined } catch (err) { return err } }
    for (const s of ['{', '{}', '[["x"]]', '[["x",[1],0]]', '[["x",[],-1]]', `[${'["x",[],0],'.repeat(300)}["x",[],0]]`]) {
      expect(bad(s)).toBeInstanceOf(MalformedFrameError)
    }
    expect(bad('\u00ff')).toBeInstanceOf(MalformedFrameError)
  })
})

describe('bad entries from an admitted peer', () => {
  let cluster: Cluster
  afterEach(async () => { await cluster.close() })

  it('forged, tampered, unsigned, replayed, malformed and oversized entries are refused and counted by reason', async () => {
    cluster = new Cluster()
    const token = newToken()
    let gossipIn = 0
    const b = await cluster.node(token, {}, { hooks: { dropGossip: (e) => { if (e.direction === 'in') gossipIn++; return false } } })
    let tamper: (wire: Uint8Array) => Uint8Array = (w) => w
    let capture = false
    let captured: Uint8Array | undefined
    const m: P2PNode = await cluster.node(token, { bootstrapPeers: [b.addresses()[0] as string] }, {
      stateLimits: { maxEntryBytes: 512 * 1024 },
      hooks: {
        tamperGossip: (e) => tamper(e.data),
        // Captures one outgoing delta and keeps it from gossipsub (a catch-up sync still brings it to b), so gossipsub has never seen it when it is replayed.
        dropGossip: (e) => { if (e.direction === 'out' && capture) { captured = e.data; capture = false; return true } return false }
      }
    })
    await waitFor('admitted', () => (alivePeers(b).includes(m.peerId)) || undefined)
    let n = 0
    const warm: Array<Promise<unknown>> = []
    await waitFor('gossip flows from m to b', () => { warm.push(m.state.put('warm', n++)); return (gossipIn > 0) || undefined })
    await Promise.all(warm)

    // Capture version 1 of an entry, then move it to version 2 everywhere: version 1 is now a replay.
    capture = true
    await m.state.put('replay', 'old')
    const oldWire = captured as Uint8Array
    await m.state.put('replay', 'new')
    await waitFor('b holds version 2', () => (b.state.get(m.peerId, 'replay')?.version === 2) || undefined)
    const rejected = (reason: string): number => b.status().rejections[reason] ?? 0
    const expectRefused = async (reason: string, make: (w: Uint8Array) => Uint8Array, value: unknown = 'v'): Promise<void> => {
      const before = rejected(reason)
      tamper = make
      await m.state.put(`case/${reason}`, value as never)
      await waitFor(`b counted ${reason}`, () => (rejected(reason) > before) || undefined)
    }
    const flip = (w: Uint8Array, at: number): Uint8Array => { const c = w.slice(); const i = at < 0 ? c.length + at : at; c[i] = (c[i] ?? 0) ^ 1; return c }

    await expectRefused('forged', (w) => flip(w, -1)) // signature
    await expectRefused('forged', (w) => flip(w, -80)) // ciphertext: the signature covers it
    await expectRefused('unsigned', (w) => { const c = w.slice(0, w.length - 64); c[c.length - 1] = 0; return c })
    await expectRefused('malformed', () => new Uint8Array([9, 9, 9]))
    await expectRefused('stale', () => oldWire)
    await expectRefused('oversized', (w) => w, 'x'.repeat(100 * 1024))

    // None of it changed b's view of m's namespace beyond genuine entries, and b is still healthy.
    tamper = (w) => w
    await m.state.put('after', 'ok')
    await waitFor('genuine entries still flow', () => (b.state.get(m.peerId, 'after')?.value === 'ok') || undefined)
    expect(b.state.get(m.peerId, 'case/oversized')).toBeUndefined()
  })
})

// A hand-driven peer that holds the token: it passes admission with the real
// protocol code, then speaks garbage on the sync and heartbeat protocols.
describe('malformed frames from an admitted peer', () => {
  let cluster: Cluster
  let raw: Libp2p | undefined
  afterEach(async () => {
    await raw?.stop()
    await cluster.close()
  })

  it('are counted and the stream reset; the node keeps working', async () => {
    cluster = new Cluster()
    const token = newToken()
    const keys = deriveKeys(token)
    const node = await cluster.node(token)
    raw = await createLibp2p({
      addresses: { listen: [] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionProtector: preSharedKey({ psk: keys.pnetKey })
    })
    await raw.start()
    const conn = await raw.dial(multiaddr(node.addresses()[0] as string))
    const admit = await conn.newStream(`${keys.syncProtocol}/admit/1.0.0`)
    await admitAsInitiator(admit, { key: keys.admissionKey, self: raw.peerId.toString(), remote: node.peerId, random: cryptoRandom, signal: new AbortController().signal })
    await admit.close()
    await waitFor('admitted', () => (node.status().peers.some((p) => p.id === raw?.peerId.toString() && p.admitted)) || undefined)

    // Sync: a frame whose announced length is far beyond the bound.
    const sync = await conn.newStream(`${keys.syncProtocol}/sync/1.0.0`)
    sync.send(encodeVarint(1 << 30))
    await waitFor('oversized sync frame counted', () => (node.status().rejections['malformed-frame'] === 1) || undefined)
    // Sync: a well-framed body of an unknown kind.
    const sync2 = await conn.newStream(`${keys.syncProtocol}/sync/1.0.0`)
    sync2.send(encodeFrame(Uint8Array.of(99, 1, 2, 3)))
    await waitFor('unknown sync frame counted', () => (node.status().rejections['malformed-frame'] === 2) || undefined)
    // Heartbeat: wrong version.
    const hb = await conn.newStream(`${keys.syncProtocol}/heartbeat/2.0.0`)
    hb.send(encodeFrame(Uint8Array.of(7, 7, 7)))
    await waitFor('bad heartbeat counted', () => (node.status().rejections['malformed-frame'] === 3) || undefined)
    await waitFor('the bad streams were reset', () => ([sync, sync2, hb].every((s) => s.status !== 'open')) || undefined)

    // Still healthy: a put works and the node still answers on the connection.
    await node.state.put('still', 'here')
    expect(node.state.get(node.peerId, 'still')?.value).toBe('here')
    expect(conn.status).toBe('open')
  })
})

describe('exchange over a stream pair', () => {
  // Two replicas, one exchange each way of the protocol, counting the bytes each side sends.
  async function exchange (x: Awaited<ReturnType<typeof store>>, y: Awaited<ReturnType<typeof store>>, hashFirst: boolean, adverts: { x?: PeerAdvert[], heard?: PeerAdvert[] } = {}): Promise<{ bytes: number, sent: number, received: number }> {
    const [outbound, inbound] = await streamPair()
    let bytes = 0
    const count = (s: typeof outbound): void => {
      const send = s.send.bind(s)
      s.send = (data) => { bytes += data.byteLength; return send(data) }
    }
    count(outbound)
    count(inbound)
    const side = (st: typeof x, remote: string, peers: PeerAdvert[] = [], onPeers = (_: PeerAdvert[]): void => {}) =>
      ({ store: st, remote, peers: () => peers, onPeers, onApplied: () => {}, maxFrameBytes: 1 << 20, signal: AbortSignal.timeout(5_000) })
    const hash = (st: typeof x): number => digestHash(st.digest())
    const [r] = await Promise.all([
      syncAsInitiator(outbound, side(x, y.self, adverts.x), hashFirst ? { digestHash: hash(x) } : {}),
      syncAsResponder(inbound, side(y, x.self, [], (p) => { adverts.heard?.push(...p) }), () => hash(y))
    ])
    return { bytes, ...r }
  }

  it('a peer list longer than one frame goes in pages, and a site of 1 000 members is told whole', async () => {
    const a = await store(1)
    const b = await store(2)
    const members: PeerAdvert[] = Array.from({ length: 1_000 }, (_, i) => ({ id: `12D3KooW${i.toString().padStart(6, '0')}`, addresses: [`/ip4/10.0.${i >> 8}.${i & 255}/tcp/4001`], ageMs: i, incarnation: i, liveness: 'alive' }))
    const pages = peerFrames(members)
    expect(pages).toHaveLength(Math.ceil(1_000 / MAX_PEERS_PER_FRAME))
    expect(pages.flatMap((f) => decodePeers(f.subarray(1)))).toEqual(members)
    expect(peerFrames([])).toHaveLength(1)
    for (const hashFirst of [false, true]) {
      const heard: PeerAdvert[] = []
      await exchange(a, b, hashFirst, { x: members, heard })
      expect(heard).toEqual(members)
    }
    // A sender past the bound is cut there: the receiver never gets more than a table and its own row.
    expect(peerFrames([...members, ...members, ...members, ...members, ...members]).flatMap((f) => decodePeers(f.subarray(1)))).toHaveLength(MAX_PEERS_PER_EXCHANGE)
  })

  it('a push delivers its entries and peers with no digest, in a few hundred bytes', async () => {
    const a = await store(1)
    const b = await store(2)
    for (let i = 0; i < 50; i++) await a.put(`old-${i}`, i)
    const { wire } = await a.put('new', 'x')
    const [outbound, inbound] = await streamPair()
    let bytes = 0
    const send = outbound.send.bind(outbound)
    outbound.send = (data) => { bytes += data.byteLength; return send(data) }
    const heard: PeerAdvert[] = []
    const peers: PeerAdvert[] = [{ id: '12D3KooWpeer', addresses: ['/ip4/10.0.0.1/tcp/4001'], ageMs: 5 }]
    const side = (st: typeof a, remote: string, list: PeerAdvert[]) => ({ store: st, remote, peers: () => list, onPeers: (p: PeerAdvert[]) => { heard.push(...p) }, onApplied: () => {}, maxFrameBytes: 1 << 20, signal: AbortSignal.timeout(5_000) })
    const [sent, got] = await Promise.all([pushAsInitiator(outbound, side(a, b.self, peers), [wire]), pushAsResponder(inbound, side(b, a.self, []))])
    expect(sent).toEqual({ sent: 1, received: 0 })
    expect(got).toEqual({ sent: 0, received: 1 })
    expect(b.get(a.self, 'new')?.value).toBe('x')
    expect(b.get(a.self, 'old-0')).toBeUndefined()
    expect(heard).toEqual(peers)
    expect(bytes).toBeLessThan(wire.byteLength + 200)
  })

  it('a push that sends a digest is refused with a MalformedFrameError', async () => {
    const a = await store(1)
    const b = await store(2)
    const [outbound, inbound] = await streamPair()
    // An exchange's opening (PEERS, DIGEST) on the push protocol.
    const side = (st: typeof a, remote: string) => ({ store: st, remote, peers: () => [], onPeers: () => {}, onApplied: () => {}, maxFrameBytes: 1 << 20, signal: AbortSignal.timeout(5_000) })
    void syncAsInitiator(outbound, side(a, b.self)).catch(() => {})
    await expect(pushAsResponder(inbound, side(b, a.self))).rejects.toThrow(MalformedFrameError)
    outbound.abort(new Error('done'))
  })

  it('a peer that sends more peers in one exchange than a membership table holds is refused with a MalformedFrameError', async () => {
    const a = await store(1)
    const b = await store(2)
    const [outbound, inbound] = await streamPair()
    const many = Array.from({ length: MAX_PEERS_PER_FRAME }, (_, i) => ({ id: `12D3KooW${i}`, addresses: [], ageMs: 0 }))
    const flood = Array.from({ length: Math.ceil(MAX_PEERS_PER_EXCHANGE / MAX_PEERS_PER_FRAME) + 1 }, () => encodePeers(many))
    for (const f of flood) outbound.send(encodeFrame(f))
    const side = { store: b, remote: a.self, peers: () => [], onPeers: () => {}, onApplied: () => {}, maxFrameBytes: 1 << 20, signal: AbortSignal.timeout(5_000) }
    await expect(syncAsResponder(inbound, side)).rejects.toThrow(MalformedFrameError)
    outbound.abort(new Error('done'))
  })

  it('a members hash goes as the first row of a side\'s peer list, to onMembersHash and not onPeers; a decoder from before reads it as a row naming no peer', async () => {
    const a = await store(1)
    const b = await store(2)
    const rows: PeerAdvert[] = [{ id: '12D3KooWpeer', addresses: ['/ip4/10.0.0.1/tcp/4001'], ageMs: 5, incarnation: 7, liveness: 'alive' }]
    const got: { hashes: number[], peers: PeerAdvert[] } = { hashes: [], peers: [] }
    const [outbound, inbound] = await streamPair()
    let first: Uint8Array | undefined
    const send = outbound.send.bind(outbound)
    outbound.send = (data) => { first ??= data.slice(); return send(data) }
    const side = (st: typeof a, remote: string, peers: PeerAdvert[], hash: number | undefined) => ({
      store: st, remote, peers: () => peers, ...(hash === undefined ? {} : { membersHash: () => hash }), onMembersHash: (h: number) => { got.hashes.push(h) }, onPeers: (p: PeerAdvert[]) => { got.peers.push(...p) }, onApplied: () => {}, maxFrameBytes: 1 << 20, signal: AbortSignal.timeout(5_000)
    })
    await Promise.all([syncAsInitiator(outbound, side(a, b.self, rows, 0xfedc_ba98)), syncAsResponder(inbound, side(b, a.self, [], 3))])
    expect(got.hashes.sort()).toEqual([3, 0xfedc_ba98].sort())
    expect(got.peers).toEqual(rows)
    // The first frame as a build from before decodes it: one more row, whose id is no peer id.
    const old = decodePeers((first as Uint8Array).subarray(2))
    expect(old[0]).toEqual({ id: MEMBERS_HASH_ROW, addresses: [], ageMs: 0xfedc_ba98 })
    expect(isPeerId(MEMBERS_HASH_ROW)).toBe(false)
    expect(old.slice(1)).toEqual(rows)
  })

  it('a members hash row with addresses, a liveness or more than 32 bits is a MalformedFrameError', async () => {
    for (const row of [[MEMBERS_HASH_ROW, ['/ip4/10.0.0.1/tcp/1'], 1], [MEMBERS_HASH_ROW, [], 2 ** 32], [MEMBERS_HASH_ROW, [], 1, 0, 'alive']]) {
      const b = await store(2)
      const [outbound, inbound] = await streamPair()
      outbound.send(encodeFrame(Uint8Array.of(3, ...new TextEncoder().encode(JSON.stringify([row])))))
      const side = { store: b, remote: 'x', peers: () => [], onPeers: () => {}, onApplied: () => {}, maxFrameBytes: 1 << 20, signal: AbortSignal.timeout(5_000) }
      await expect(syncAsResponder(inbound, side)).rejects.toThrow(MalformedFrameError)
      outbound.abort(new Error('done'))
    }
  })

  it('a safety round between equal replicas sends the digest hash, not two digests; unequal ones still converge', async () => {
    const a = await store(1)
    const b = await store(2)
    for (let i = 0; i < 40; i++) await b.apply([(await a.put(`k${i}`, { i, pad: 'x'.repeat(100) })).wire], a.self)
    const full = await exchange(a, b, false)
    const hashed = await exchange(a, b, true)
    expect(full.sent + full.received).toBe(0)
    expect(hashed).toMatchObject({ sent: 0, received: 0 })
    // Two 40-entry digests against a hash and an end frame.
    expect(hashed.bytes * 10).toBeLessThan(full.bytes)

    // Each side holds entries the other lacks: the hash differs and the exchange completes both ways.
    await a.put('only-a', 1)
    await b.put('only-b', 2)
    const repaired = await exchange(a, b, true)
    expect(repaired).toMatchObject({ sent: 1, received: 1 })
    expect(a.get(b.self, 'only-b')?.value).toBe(2)
    expect(b.get(a.self, 'only-a')?.value).toBe(1)
    expect(digestHash(a.digest())).toBe(digestHash(b.digest()))
  })
})
