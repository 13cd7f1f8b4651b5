// Fuzz of every decoder that reads bytes from a peer: framing, heartbeats, membership
// rumours, peer adverts (the rendezvous and peer-exchange records), state digests and
// entries, a whole sync exchange and admission. Seeded (see harness.ts); each decoder
// may only return or throw its own error classes, within the hang bound.
import { describe, expect, it } from 'vitest'
import type { Stream } from '@libp2p/interface'
import { FrameReader, decodeList, decodeVarint, encodeFrame, encodeList, encodeVarint } from '../../p2p/framing.ts'
import { decodeHeartbeat, encodeHeartbeat } from '../../p2p/heartbeat.ts'
import { decodeRumour, encodeRumour } from '../../p2p/membership.ts'
import { decodePeers, encodePeers, syncAsInitiator, syncAsResponder, type SyncSide } from '../../p2p/sync.ts'
import { admitAsInitiator, admitAsResponder } from '../../p2p/admission.ts'
import { AdmissionError, FrameTooLargeError, MalformedFrameError, StreamEndedError } from '../../p2p/errors.ts'
import { decodeWire, openValue } from '../../p2p/state/wire.ts'
import { parseDigest } from '../../p2p/state/digest.ts'
import { createLogger } from '../../util/log.ts'
import { seededRandom } from '../../util/random.ts'
import { STATE_KEY, identity, store } from '../p2p/state/fixtures.ts'
import { byteInputs, fuzz, fuzzSeed } from './harness.ts'

const PEER = '12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp'
const N = 1_500

/** A stream whose remote side sends `input` (in a few chunks) and swallows what we send. */
function streamOf (input: Uint8Array, chunks = 3): Stream {
  const size = Math.max(1, Math.ceil(input.length / chunks))
  const stream = {
    async * [Symbol.asyncIterator] () {
      for (let at = 0; at < input.length; at += size) yield input.subarray(at, at + size)
    },
    send: () => true,
    onDrain: async () => {},
    close: async () => {},
    abort: () => {}
  }
  return stream as unknown as Stream
}

function report (name: string, r: { inputs: number, rejected: number, maxMs: number, maxMsInput: number }): void {
  // One line per decoder in the test output: inputs tried, rejected, slowest call.
  console.log(`fuzz ${name}: ${r.inputs} inputs, ${r.rejected} rejected, slowest ${r.maxMs.toFixed(1)} ms (${r.maxMsInput} bytes)`)
}

describe('fuzz: wire decoders', () => {
  it('varints, lists and the frame reader', async () => {
    const samples = [encodeVarint(0), encodeVarint(300), encodeVarint(2 ** 53 - 1), encodeList([Uint8Array.of(1, 2), new Uint8Array(200)]), encodeFrame(new Uint8Array(40))]
    report('varint', await fuzz('varint', fuzzSeed(1), byteInputs(fuzzSeed(1), N, samples), [MalformedFrameError], (b) => decodeVarint(b, 0)))
    report('list', await fuzz('list', fuzzSeed(2), byteInputs(fuzzSeed(2), N, samples), [MalformedFrameError], (b) => decodeList(b, 1024)))
    report('frames', await fuzz('frames', fuzzSeed(3), byteInputs(fuzzSeed(3), N, samples), [MalformedFrameError, FrameTooLargeError], async (b) => {
      const reader = new FrameReader(streamOf(b), 4096)
      for (let i = 0; i < 10_000 && await reader.next() !== undefined; i++);
    }))
  })

  it('heartbeats', async () => {
    const samples = [encodeHeartbeat({ flags: 0, incarnation: 0, digestHash: 0 }), encodeHeartbeat({ flags: 1, incarnation: 2 ** 40, digestHash: 0xffffffff, membersHash: 0xffffffff })]
    report('heartbeat', await fuzz('heartbeat', fuzzSeed(4), byteInputs(fuzzSeed(4), N, samples), [MalformedFrameError], (b) => {
      const hb = decodeHeartbeat(b)
      expect(Number.isSafeInteger(hb.incarnation) && hb.incarnation >= 0).toBe(true)
      if (hb.membersHash !== undefined) expect(hb.membersHash >>> 0).toBe(hb.membersHash)
    }))
  })

  it('membership rumours never throw and only yield well-formed rumours', async () => {
    const samples = [encodeRumour({ peer: PEER, state: 'dead', incarnation: 3 }, PEER, 17), encodeRumour({ peer: PEER, state: 'alive', incarnation: 0 })]
    report('rumour', await fuzz('rumour', fuzzSeed(5), byteInputs(fuzzSeed(5), N, samples), [], (b) => {
      const r = decodeRumour(b)
      if (r !== undefined) expect(Number.isSafeInteger(r.incarnation) && r.incarnation >= 0 && r.peer.length > 0).toBe(true)
    }))
  })

  it('peer adverts', async () => {
    const adverts = encodePeers([{ id: PEER, addresses: ['/ip4/10.0.0.1/tcp/4001'], ageMs: 5, incarnation: 2, liveness: 'alive' }, { id: PEER, addresses: [], ageMs: 0 }]).subarray(1)
    report('peers', await fuzz('peers', fuzzSeed(6), byteInputs(fuzzSeed(6), N, [adverts]), [MalformedFrameError], (b) => decodePeers(b)))
  })

  it('state digests and entries (structure, decryption, and the store that applies them)', async () => {
    const a = await store(1)
    const b = await store(2)
    const wires = [(await a.put('roles/vote', { n: 1, by: 'x' })).wire, (await a.put('vpn/advert', 'text')).wire, (await a.put('k', null)).wire]
    const digests = [a.digest(), b.digest()]
    report('digest', await fuzz('digest', fuzzSeed(7), byteInputs(fuzzSeed(7), N, digests), [], (x) => { parseDigest(x); b.missingFor(x) }))
    report('entry', await fuzz('entry', fuzzSeed(8), byteInputs(fuzzSeed(8), N, wires), [], (x) => {
      const d = decodeWire(x)
      if (d === undefined) return
      expect(Number.isSafeInteger(d.version) && d.version >= 1 && Number.isSafeInteger(d.writtenAt)).toBe(true)
      openValue(STATE_KEY, d)
    }))
    const errors: string[] = []
    const logger = createLogger({ level: 'error', write: (l) => { errors.push(l) } })
    const receiver = await store(3, { logger })
    report('apply', await fuzz('apply', fuzzSeed(9), byteInputs(fuzzSeed(9), N, wires), [], async (x) => { await receiver.apply([x], a.self) }))
    // The store catches a throwing ingest and logs it; a fuzz input must not get there.
    expect(errors).toEqual([])
    await Promise.all([a.close(), b.close(), receiver.close()])
  })

  it('a whole sync exchange, either side, against a hostile peer', async () => {
    const a = await store(1)
    const wire = (await a.put('roles/vote', 1)).wire
    const b = await store(4)
    const side = (signal: AbortSignal): SyncSide => ({
      store: b, remote: a.self, peers: () => [], onPeers: () => {}, onApplied: () => {}, maxFrameBytes: 64 * 1024, signal
    })
    const conversation = [
      encodeFrame(Uint8Array.of(3, ...encodePeers([{ id: PEER, addresses: [], ageMs: 1 }]).subarray(1))),
      encodeFrame(Uint8Array.of(2, ...encodeList([wire]))),
      encodeFrame(Uint8Array.of(1, ...a.digest())),
      encodeFrame(Uint8Array.of(5, 0, 0, 0, 1)),
      encodeFrame(Uint8Array.of(4))
    ]
    const samples = [Buffer.concat(conversation), Buffer.concat([conversation[4] as Uint8Array])].map((x) => new Uint8Array(x))
    const allowed = [MalformedFrameError, FrameTooLargeError, StreamEndedError]
    report('sync responder', await fuzz('sync responder', fuzzSeed(10), byteInputs(fuzzSeed(10), N / 3, samples), allowed, async (x) => {
      await syncAsResponder(streamOf(x), side(new AbortController().signal), () => 1)
    }))
    report('sync initiator', await fuzz('sync initiator', fuzzSeed(11), byteInputs(fuzzSeed(11), N / 3, samples), allowed, async (x) => {
      await syncAsInitiator(streamOf(x), side(new AbortController().signal), { digestHash: 7 })
    }))
    await Promise.all([a.close(), b.close()])
  })

  it('admission, either side, against a peer without the token', async () => {
    const me = await identity(5)
    const ctx = { key: new Uint8Array(32).fill(9), self: me.self, remote: PEER, random: seededRandom(1), signal: new AbortController().signal }
    const hello = encodeFrame(Uint8Array.of(1, ...new Uint8Array(32).fill(3)))
    const answer = encodeFrame(new Uint8Array(64).fill(4))
    const samples = [new Uint8Array(Buffer.concat([hello, encodeFrame(new Uint8Array(32))])), new Uint8Array(Buffer.concat([answer, encodeFrame(Uint8Array.of(1))]))]
    report('admit responder', await fuzz('admit responder', fuzzSeed(12), byteInputs(fuzzSeed(12), N, samples), [AdmissionError], async (x) => { await admitAsResponder(streamOf(x), ctx) }))
    report('admit initiator', await fuzz('admit initiator', fuzzSeed(13), byteInputs(fuzzSeed(13), N, samples), [AdmissionError], async (x) => { await admitAsInitiator(streamOf(x), ctx) }))
  })
})
