import { describe, expect, it } from 'vitest'
import { buildDigest, parseDigest } from '../../../p2p/state/digest.ts'
import { decodeSnapshot, encodeSnapshot } from '../../../p2p/state/persist.ts'
import { decodeWire, hashWire } from '../../../p2p/state/wire.ts'
import type { JsonValue } from '../../../p2p/types.ts'
import { seededRandom, type RandomSource } from '../../../util/random.ts'
import { parseAdvert } from '../../../vpn/peers.ts'
import { store } from './fixtures.ts'

/*
 * Every decoder that reads bytes from the wire or the disk, fed random and mutated
 * input up to 1 MB: nothing escapes as an exception and nothing takes long.
 */

const SLOW_MS = 1_000

function mutate (rng: RandomSource, base: Uint8Array): Uint8Array {
  const out = Uint8Array.from(base)
  const kind = rng.int(4)
  if (kind === 0 && out.length > 0) { for (let i = 0; i < 1 + rng.int(8); i++) out[rng.int(out.length)] = rng.int(256); return out }
  if (kind === 1) return out.subarray(0, rng.int(out.length + 1))
  if (kind === 2) { const tail = rng.bytes(1 + rng.int(64)); const r = new Uint8Array(out.length + tail.length); r.set(out); r.set(tail, out.length); return r }
  // A varint field blown up to a huge value.
  if (out.length > 2) { const at = 1 + rng.int(out.length - 2); out.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f].slice(0, out.length - at), at) }
  return out
}

function timed<T> (fn: () => T): T {
  const t0 = performance.now()
  const r = fn()
  expect(performance.now() - t0).toBeLessThan(SLOW_MS)
  return r
}

describe('fuzz: state decoders', () => {
  it('decodeWire, parseDigest and decodeSnapshot never throw on random or mutated input, up to 1 MB', async () => {
    const rng = seededRandom(1616)
    const a = await store(1)
    const wires = [(await a.put('vpn/advert', { x: 1 })).wire, (await a.put('roles/vote', 'y'.repeat(500))).wire]
    const digest = buildDigest(wires.map((w) => {
      const d = decodeWire(w)
      if (d === undefined) throw new Error('fixture entry does not decode')
      return { owner: d.owner, key: d.key, version: d.version, hash: hashWire(w) }
    }))
    const snap = encodeSnapshot(wires, { notes: [{ owner: a.self, presentAt: 5 }], tombstones: [{ owner: 'x', forgottenAt: 9 }] })
    const inputs: Uint8Array[] = [new Uint8Array(0), rng.bytes(1 << 20), new Uint8Array(1 << 20).fill(0xff)]
    for (let i = 0; i < 300; i++) {
      for (const base of [...wires, digest, snap]) inputs.push(mutate(rng, base))
      inputs.push(rng.bytes(rng.int(2048)))
    }
    for (const bytes of inputs) {
      timed(() => decodeWire(bytes))
      timed(() => parseDigest(bytes))
      timed(() => decodeSnapshot(bytes))
    }
  })

  it('store.apply and store.missingFor take anything without throwing or changing on garbage', async () => {
    const rng = seededRandom(1617)
    const a = await store(1)
    const b = await store(2)
    const wire = (await a.put('k', 1)).wire
    const junk: Uint8Array[] = [rng.bytes(1 << 20)]
    for (let i = 0; i < 200; i++) junk.push(mutate(rng, wire))
    const before = b.size()
    const res = await b.apply(junk, 'fuzzer')
    expect(res.accepted.length).toBeLessThanOrEqual(1) // a mutation may leave the signed bytes intact (a pure extension is malformed)
    if (res.accepted.length === 0) expect(b.size()).toEqual(before)
    for (let i = 0; i < 200; i++) timed(() => expect(Array.isArray(a.missingFor(mutate(rng, a.digest())))).toBe(true))
    expect(a.missingFor(rng.bytes(1 << 20))).toEqual([])
  })

  it('parseAdvert takes any JSON value', () => {
    const rng = seededRandom(1618)
    const leaf = (): JsonValue => [null, true, -1, 1e308, 'x', '10.88.0.1', 'AAAA'][rng.int(7)] as JsonValue
    const value = (depth: number): JsonValue => {
      if (depth === 0 || rng.int(3) === 0) return leaf()
      if (rng.int(2) === 0) return Array.from({ length: rng.int(5) }, () => value(depth - 1))
      const keys = ['publicKey', 'port', 'endpoints', 'address', 'attempt', 'vouch', 'other']
      return Object.fromEntries(keys.filter(() => rng.int(2) === 0).map((k) => [k, value(depth - 1)]))
    }
    for (let i = 0; i < 2000; i++) timed(() => parseAdvert(value(4)))
    timed(() => parseAdvert({ publicKey: 'a', port: 1, endpoints: Array.from({ length: 100_000 }, () => '1.2.3.4:5'), address: '10.0.0.1', attempt: 0, vouch: Array.from({ length: 100_000 }, (_, i) => `p${i}`) }))
  })
})
