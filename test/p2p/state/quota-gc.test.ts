import { describe, expect, it } from 'vitest'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { DEFAULT_MAX_ENTRY_BYTES, DEFAULT_MAX_OWNER_BYTES } from '../../../p2p/state/store.ts'
import { decodeSnapshot, STATE_FILE } from '../../../p2p/state/persist.ts'
import { decodeWire, encodeBody, encodeHeader, encodeWire, sealValue, signedBytes, writeEntry } from '../../../p2p/state/wire.ts'
import { planEviction, type OwnerUsage } from '../../../p2p/state/quota.ts'
import { judgeOwner, restoredNote, tombstoneHolds } from '../../../p2p/state/gc.ts'
import type { OwnerPresence } from '../../../p2p/state/gc.ts'
import { ManualClock } from '../../../util/clock.ts'
import type { JsonValue } from '../../../p2p/types.ts'
import { changes, identity, STATE_KEY, store, tempDir, type Identity } from './fixtures.ts'

const ids = new Map<number, Identity>()
async function id (seed: number): Promise<Identity> {
  let i = ids.get(seed)
  if (i === undefined) { i = await identity(seed); ids.set(seed, i) }
  return i
}

let nonce = 0
/** A signed entry of `who`, as a token holder running any code could write it. */
async function entry (who: Identity, key: string, version: number, value: JsonValue, writtenAt = 0): Promise<Uint8Array> {
  const n = new Uint8Array(12)
  new DataView(n.buffer).setUint32(0, ++nonce)
  return await writeEntry({ privateKey: who.privateKey, owner: who.self, key, version, writtenAt, value, stateKey: STATE_KEY, nonce: n })
}

/** A value whose wire entry is about `bytes` long. */
function pad (bytes: number): string {
  return 'x'.repeat(Math.max(0, bytes - 250))
}

const advert = { publicKey: 'k'.repeat(44), port: 51820, endpoints: ['192.168.1.20:51820'], address: '10.88.0.20', attempt: 0 }

describe('state store: per-owner byte quota and a full replica', () => {
  it('five minted identities cannot fill the store: an honest advert still fits (issue: store-full for ever)', async () => {
    const b = await store(1)
    const big = pad(DEFAULT_MAX_ENTRY_BYTES - 600)
    let accepted = 0
    for (let m = 0; m < 5; m++) {
      const mallory = await id(1000 + m)
      const wires: Uint8Array[] = []
      for (let k = 0; k < 256; k++) wires.push(await entry(mallory, `junk/${k}`, 1, big))
      accepted += (await b.apply(wires, mallory.self)).accepted.length
    }
    // 1 MiB per owner: 16 of each identity's 64 KiB entries, 5 MiB of the 64 MiB.
    expect(b.size().bytes).toBeLessThanOrEqual(5 * 1024 * 1024)
    expect(accepted).toBeLessThanOrEqual(5 * 16)
    expect(b.rejections()['owner-quota']).toBeGreaterThan(0)
    const honest = await id(2)
    const res = await b.apply([await entry(honest, 'vpn/advert', 1, advert)], honest.self)
    expect(res.rejected).toEqual({})
    expect(b.get(honest.self, 'vpn/advert')?.value).toEqual(advert)
  }, 60_000)

  it('an issuer holds one credential per member of a 1 000-member site; its bytes, not a count of 256, bound it', async () => {
    const b = await store(1)
    const issuer = await id(4)
    const credential = { v: 1, role: 'agent', box: 'b'.repeat(180) }
    const wires: Uint8Array[] = []
    for (let k = 0; k < 1_000; k++) wires.push(await entry(issuer, `cred/member-${k}`, 1, credential))
    const res = await b.apply(wires, issuer.self)
    expect(res.rejected).toEqual({})
    expect(res.accepted).toHaveLength(1_000)
    // Past the byte quota the owner is refused, however small its entries.
    const more: Uint8Array[] = []
    for (let k = 1_000; k < 4_000; k++) more.push(await entry(issuer, `cred/member-${k}`, 1, credential))
    const past = await b.apply(more, issuer.self)
    expect(past.rejected['owner-quota']).toBeGreaterThan(0)
    expect(b.size().bytes).toBeLessThanOrEqual(DEFAULT_MAX_OWNER_BYTES + 1_000)
  }, 120_000)

  it('a full replica makes room for a newcomer by trimming the largest owners, and refuses their entries back', async () => {
    const b = await store(1, { limits: { maxTotalBytes: 20_000, maxOwnerBytes: 6_000 } })
    const attackers = await Promise.all([0, 1, 2, 3, 4].map(async (m) => await id(2000 + m)))
    for (const mallory of attackers) {
      const wires: Uint8Array[] = []
      for (let k = 0; k < 25; k++) wires.push(await entry(mallory, `junk/${k}`, 1, pad(330)))
      await b.apply(wires, mallory.self)
    }
    const honest = await id(3)
    const advertWire = await entry(honest, 'vpn/advert', 1, advert)
    expect(b.size().bytes).toBeLessThanOrEqual(20_000)
    expect(20_000 - b.size().bytes).toBeLessThan(advertWire.length) // full: the advert does not fit as it is
    const res = await b.apply([advertWire], honest.self)
    expect(res.rejected).toEqual({})
    expect(b.get(honest.self, 'vpn/advert')).toBeDefined()
    expect(b.gcStats().evicted).toBeGreaterThan(0)
    expect(b.size().bytes).toBeLessThanOrEqual(20_000)
    // The trimmed owners' entries come back by anti-entropy: they only even out the
    // attackers' shares (max-min), the newcomer stays, and re-sending settles.
    const again: Uint8Array[] = []
    for (const mallory of attackers) for (let k = 0; k < 25; k++) again.push(await entry(mallory, `junk/${k}`, 2, pad(330)))
    let rounds = 0
    while ((await b.apply(again, 'peer')).accepted.length > 0) {
      expect(++rounds).toBeLessThan(10)
      expect(b.get(honest.self, 'vpn/advert')).toBeDefined()
      expect(b.size().bytes).toBeLessThanOrEqual(20_000)
    }
    expect(b.get(honest.self, 'vpn/advert')).toBeDefined()
    // Own puts always find room the same way.
    await b.put('vpn/advert', advert)
    expect(b.size().bytes).toBeLessThanOrEqual(20_000)
  })

  it('refuses a put past the own byte quota', async () => {
    const a = await store(1, { limits: { maxOwnerBytes: 2_000 } })
    await a.put('one', pad(1_500))
    await expect(a.put('two', pad(1_000))).rejects.toMatchObject({ name: 'StateOwnerQuotaError' })
    await a.put('one', pad(1_800)) // replacing within the quota passes
  })

  it('1000 owners over repeated replace cycles: the replica stays within its bound and a newcomer still fits', async () => {
    const limits = { maxTotalBytes: 400_000, maxOwnerBytes: 4_000 }
    const b = await store(1, { limits })
    const owners = await Promise.all(Array.from({ length: 1000 }, async (_, i) => await id(10_000 + i)))
    let peak = 0
    for (let cycle = 1; cycle <= 3; cycle++) {
      for (let start = 0; start < owners.length; start += 100) {
        const wires: Uint8Array[] = []
        for (const o of owners.slice(start, start + 100)) {
          // Sizes move with the cycle so replacements grow and shrink owners.
          wires.push(await entry(o, 'vpn/advert', cycle, pad(300 + ((cycle * 37 + start) % 3) * 150)))
          wires.push(await entry(o, 'blob', cycle, pad(200 + cycle * 150)))
        }
        await b.apply(wires, 'peer')
        peak = Math.max(peak, b.size().bytes)
        expect(b.size().bytes).toBeLessThanOrEqual(limits.maxTotalBytes)
      }
    }
    expect(peak).toBeGreaterThan(limits.maxTotalBytes - 2_000)
    const honest = await id(4)
    const res = await b.apply([await entry(honest, 'vpn/advert', 1, advert)], honest.self)
    expect(res.rejected).toEqual({})
    // None of them was ever present: one collection after the grace drops them all.
    const clockless = b.collect(() => 'unknown', Date.now() + 11 * 60_000)
    expect(clockless.forgotten.length).toBe(b.gcStats().tombstones)
    expect(b.size().entries).toBe(0)
  }, 120_000)
})

describe('state store: garbage collection of owners nobody stands for', () => {
  const GRACE = 60_000
  const FORGET = 3_600_000

  async function setup (dir?: string): Promise<{ b: Awaited<ReturnType<typeof store>>, clock: ManualClock }> {
    const clock = new ManualClock(1_000_000)
    const b = await store(1, { clock, admitGraceMs: GRACE, forgetAfterMs: FORGET, ...(dir === undefined ? {} : { dir, flushDelayMs: 0 }) })
    return { b, clock }
  }

  it('drops a never-admitted owner after the grace, from replica and file, and refuses it until it is present', async () => {
    const t = await tempDir()
    try {
      const { b, clock } = await setup(t.dir)
      const ghost = await id(5)
      const honest = await id(6)
      await b.apply([await entry(ghost, 'junk', 1, 'x'), await entry(honest, 'vpn/advert', 1, advert)], 'peer')
      await b.put('mine', 1)
      const presence = (o: string): OwnerPresence => o === honest.self ? 'present' : 'unknown'
      expect(b.collect(presence).forgotten).toEqual([])
      clock.advance(GRACE)
      const res = b.collect(presence)
      expect(res.forgotten).toEqual([{ owner: ghost.self, reason: 'never-admitted', entries: 1, bytes: expect.any(Number) }])
      expect(b.get(ghost.self, 'junk')).toBeUndefined()
      expect(b.get(honest.self, 'vpn/advert')).toBeDefined()
      expect(b.get(b.self, 'mine')).toBeDefined()
      // Anti-entropy from a peer that still holds it does not bring it back.
      const peer = await store(7)
      await peer.apply([await entry(ghost, 'junk', 2, 'y')], 'x')
      const back = await b.apply(peer.missingFor(b.digest()), peer.self)
      expect(back.rejected).toEqual({ forgotten: 1 })
      expect(b.get(ghost.self, 'junk')).toBeUndefined()
      await b.flush()
      const snap = decodeSnapshot(new Uint8Array(await readFile(join(t.dir, STATE_FILE))))
      expect(snap?.wires.map(w => decodeWire(w)?.owner).sort()).toEqual([honest.self, b.self].sort())
      expect(snap?.tombstones.map(x => x.owner)).toEqual([ghost.self])
      await b.close()
      // The tombstone survives a restart.
      const again = await store(1, { clock, admitGraceMs: GRACE, forgetAfterMs: FORGET, dir: t.dir })
      expect((await again.apply([await entry(ghost, 'junk', 3, 'z')], 'peer')).rejected).toEqual({ forgotten: 1 })
      // Present again: accepted again.
      expect(again.collect(() => 'present').revived).toEqual([ghost.self])
      expect((await again.apply([await entry(ghost, 'junk', 3, 'z')], 'peer')).accepted).toHaveLength(1)
      await again.close()
    } finally {
      await t.remove()
    }
  })

  it('drops an owner gone longer than forget_after, not before', async () => {
    const { b, clock } = await setup()
    const gone = await id(8)
    await b.apply([await entry(gone, 'vpn/advert', 1, advert)], 'peer')
    b.collect(() => 'present')
    clock.advance(FORGET - 1)
    expect(b.collect(() => 'gone').forgotten).toEqual([])
    clock.advance(1)
    expect(b.collect(() => 'gone').forgotten.map(f => f.reason)).toEqual(['gone'])
    expect(b.isForgotten(gone.self)).toBe(true)
    expect(b.gcStats()).toMatchObject({ forgotten: { gone: 1, 'never-admitted': 0 }, tombstones: 1, owners: 0 })
    // A tombstone expires after forget_after; the owner is then judged from scratch.
    clock.advance(FORGET)
    b.collect(() => 'unknown')
    expect(b.isForgotten(gone.self)).toBe(false)
  })

  it('gives every owner the grace again after a restart instead of counting the time it was down', async () => {
    const t = await tempDir()
    try {
      const { b, clock } = await setup(t.dir)
      const friend = await id(9)
      await b.apply([await entry(friend, 'vpn/advert', 1, advert)], 'peer')
      b.collect(() => 'present')
      await b.close()
      clock.advance(10 * FORGET)
      const again = await store(1, { clock, admitGraceMs: GRACE, forgetAfterMs: FORGET, dir: t.dir })
      expect(again.collect(() => 'unknown').forgotten).toEqual([])
      clock.advance(GRACE)
      expect(again.collect(() => 'unknown').forgotten.map(f => f.reason)).toEqual(['gone'])
      await again.close()
    } finally {
      await t.remove()
    }
  })

  it('never forgets on a presence view that throws', async () => {
    const { b, clock } = await setup()
    const x = await id(10)
    await b.apply([await entry(x, 'k', 1, 1)], 'peer')
    clock.advance(10 * FORGET)
    expect(b.collect(() => { throw new Error('view broken') }).forgotten).toEqual([])
    expect(b.get(x.self, 'k')).toBeDefined()
  })
})

describe('state store: deletion markers', () => {
  const GRACE = 60_000
  const FORGET = 3_600_000

  it('keeps a null entry for forget_after, then drops it everywhere, refuses it back, and never writes the key again below its version', async () => {
    const clock = new ManualClock(1_000_000)
    const opts = { clock, admitGraceMs: GRACE, forgetAfterMs: FORGET }
    const a = await store(1, opts)
    const b = await store(2, opts)
    const seenA = changes(a)
    await a.put('cred/x', { kind: 'agent' })
    await a.put('cred/x', null)
    const marker = a.wireOf(a.self, 'cred/x') as Uint8Array
    expect((await b.apply([marker], a.self)).accepted).toHaveLength(1)
    clock.advance(FORGET - 1)
    a.collect(() => 'present')
    b.collect(() => 'present')
    expect(a.get(a.self, 'cred/x')?.value).toBeNull()
    expect(b.get(a.self, 'cred/x')?.value).toBeNull()
    clock.advance(1)
    a.collect(() => 'present')
    b.collect(() => 'present')
    expect(a.get(a.self, 'cred/x')).toBeUndefined()
    expect(b.get(a.self, 'cred/x')).toBeUndefined()
    expect(a.size().entries).toBe(0)
    expect(seenA.at(-1)).toMatchObject({ dropped: 'deleted', entry: { key: 'cred/x', value: null } })
    // A replica that still holds the expired marker offers it: refused, without alarm.
    expect((await b.apply([marker], 'late-peer')).rejected).toEqual({ stale: 1 })
    // Written again, the key goes on past the version it was deleted at.
    const again = await a.put('cred/x', { kind: 'agent' })
    expect(again.entry.version).toBe(3)
  })

  it('a deletion older than forget_after still replaces the value a replica holds', async () => {
    const clock = new ManualClock(10 * FORGET)
    const b = await store(2, { clock, admitGraceMs: GRACE, forgetAfterMs: FORGET })
    const w = await id(3)
    await b.apply([await entry(w, 'cred/x', 1, { kind: 'agent' }, 0)], w.self)
    expect((await b.apply([await entry(w, 'cred/x', 2, null, 0)], w.self)).accepted).toHaveLength(1)
    b.collect(() => 'present')
    expect(b.get(w.self, 'cred/x')).toBeUndefined()
  })
})

describe('state bounds on numbers from the wire', () => {
  async function raw (who: Identity, version: number, writtenAt: number): Promise<Uint8Array> {
    const header = encodeHeader(who.self, 'k', version, writtenAt)
    const n = new Uint8Array(12)
    const ciphertext = sealValue(STATE_KEY, header, n, 1)
    const body = encodeBody(header, n, ciphertext)
    return encodeWire(header, n, ciphertext, await who.privateKey.sign(signedBytes(body)))
  }

  it('refuses versions above MAX_VERSION and times past the year 10 000 as malformed', async () => {
    const b = await store(1)
    const m = await id(11)
    const res = await b.apply([await raw(m, 2 ** 53 - 1, 0), await raw(m, 1, 2 ** 53 - 1)], m.self)
    expect(res.rejected).toEqual({ malformed: 2 })
    expect((await b.apply([await raw(m, 2 ** 48, 253_402_300_800_000)], m.self)).accepted).toHaveLength(1)
  })
})

describe('quota and collection policies (pure)', () => {
  it('evicts from the largest owners only while they stay larger than the newcomer', () => {
    const usage = new Map<string, OwnerUsage>([
      ['a', { bytes: 900, keys: new Map([['x', 500], ['y', 400]]) }],
      ['b', { bytes: 300, keys: new Map([['z', 300]]) }],
      ['self', { bytes: 5_000, keys: new Map([['s', 5_000]]) }]
    ])
    expect(planEviction(usage, 450, 'n', 100, new Set(['self']))).toEqual([{ owner: 'a', key: 'x', bytes: 500 }])
    expect(planEviction(usage, 1_000, 'n', 100, new Set(['self']))).toEqual([
      { owner: 'a', key: 'x', bytes: 500 }, { owner: 'a', key: 'y', bytes: 400 }, { owner: 'b', key: 'z', bytes: 300 }
    ])
    expect(planEviction(usage, 450, 'b', 950, new Set(['self']))).toBeUndefined()
    expect(planEviction(usage, 0, 'n', 100, new Set())).toEqual([])
  })

  it('judges owners by presence and time', () => {
    const policy = { admitGraceMs: 10, forgetAfterMs: 100 }
    expect(judgeOwner({ firstSeenAt: 0 }, 'unknown', 9, policy).kind).toBe('keep')
    expect(judgeOwner({ firstSeenAt: 0 }, 'unknown', 10, policy)).toEqual({ kind: 'forget', reason: 'never-admitted' })
    expect(judgeOwner({ firstSeenAt: 0 }, 'present', 50, policy)).toEqual({ kind: 'keep', note: { firstSeenAt: 0, presentAt: 50 } })
    expect(judgeOwner({ firstSeenAt: 0, presentAt: 50 }, 'gone', 149, policy).kind).toBe('keep')
    expect(judgeOwner({ firstSeenAt: 0, presentAt: 50 }, 'gone', 150, policy)).toEqual({ kind: 'forget', reason: 'gone' })
    expect(restoredNote(0, 1_000, policy)).toEqual({ firstSeenAt: 1_000, presentAt: 910 })
  })

  it('a member held dead that no collection found present goes after forget_after when that is shorter than the grace', () => {
    // It joined and left between two collections: its entries arrived, but presentAt was never set.
    const short = { admitGraceMs: 1_000, forgetAfterMs: 100 }
    expect(judgeOwner({ firstSeenAt: 0 }, 'gone', 99, short).kind).toBe('keep')
    expect(judgeOwner({ firstSeenAt: 0 }, 'gone', 100, short)).toEqual({ kind: 'forget', reason: 'gone' })
    // An owner nobody knows keeps the whole grace; with the defaults (forget_after longer) a dead member also keeps it, as before.
    expect(judgeOwner({ firstSeenAt: 0 }, 'unknown', 999, short).kind).toBe('keep')
    expect(judgeOwner({ firstSeenAt: 0 }, 'gone', 999, { admitGraceMs: 1_000, forgetAfterMs: 10_000 }).kind).toBe('keep')
    expect(judgeOwner({ firstSeenAt: 0 }, 'gone', 1_000, { admitGraceMs: 1_000, forgetAfterMs: 10_000 })).toEqual({ kind: 'forget', reason: 'gone' })
  })

  it('a tombstone holds for forget_after, and at least for the grace when forget_after is shorter', () => {
    expect(tombstoneHolds(0, 99, { admitGraceMs: 10, forgetAfterMs: 100 })).toBe(true)
    expect(tombstoneHolds(0, 100, { admitGraceMs: 10, forgetAfterMs: 100 })).toBe(false)
    // A peer still offering the entries after a short forget_after would otherwise have them kept for the grace.
    expect(tombstoneHolds(0, 999, { admitGraceMs: 1_000, forgetAfterMs: 100 })).toBe(true)
    expect(tombstoneHolds(0, 1_000, { admitGraceMs: 1_000, forgetAfterMs: 100 })).toBe(false)
  })
})

describe('state collector', () => {
  it('collects on start, on its ticker and when poked, and stops promptly', async () => {
    const { createStateCollector, ownerPresence } = await import('../../../p2p/state/collector.ts')
    const clock = new ManualClock(0)
    const calls: number[] = []
    const store = {
      collect: (presence: (o: string) => OwnerPresence) => {
        calls.push(clock.now())
        expect(presence('admitted')).toBe('present')
        expect(presence('alive')).toBe('present')
        expect(presence('dead')).toBe('gone')
        expect(presence('nobody')).toBe('unknown')
        return { forgotten: [], revived: [] }
      }
    }
    const presence = ownerPresence({
      admitted: (p) => p === 'admitted',
      liveness: (p) => p === 'alive' ? 'alive' : p === 'dead' ? 'dead' : undefined
    })
    const c = createStateCollector({ store, presence, clock, intervalMs: 60_000, minGapMs: 1_000 })
    c.start()
    expect(calls).toEqual([0])
    await clock.advanceAsync(1_000)
    c.poke()
    await clock.advanceAsync(0)
    await new Promise((resolve) => setImmediate(resolve))
    expect(calls).toEqual([0, 1_000])
    await clock.advanceAsync(62_000)
    expect(calls.length).toBe(3)
    await c.stop()
    await clock.advanceAsync(600_000)
    expect(calls.length).toBe(3)
  })
})

describe('state store: drops are told to readers', () => {
  it('emits a change with `dropped` for every evicted or forgotten entry', async () => {
    const clock = new ManualClock(0)
    const b = await store(1, { clock, admitGraceMs: 1_000, limits: { maxTotalBytes: 3_000, maxOwnerBytes: 2_000 } })
    const seen: Array<{ owner: string, dropped: string | undefined }> = []
    b.addEventListener('change', (e) => { seen.push({ owner: e.detail.entry.owner, dropped: e.detail.dropped }) })
    const big = await id(20)
    const small = await id(21)
    await b.apply([await entry(big, 'a', 1, pad(900)), await entry(big, 'b', 1, pad(900))], 'peer')
    const digest = b.digest()
    await b.apply([await entry(small, 'a', 1, pad(1_500))], 'peer')
    expect(seen.filter(s => s.dropped === 'evicted').map(s => s.owner)).toEqual([big.self])
    expect(b.digest()).not.toEqual(digest)
    clock.advance(1_000)
    b.collect(() => 'unknown')
    expect(seen.filter(s => s.dropped === 'never-admitted').map(s => s.owner).sort()).toEqual([big.self, small.self].sort())
    expect(b.size().entries).toBe(0)
  })
})
