import { describe, expect, it } from 'vitest'
import { alarmingRejections, type RejectReason } from '../../../p2p/state/contract.ts'
import { decodeWire, encodeBody, encodeHeader, encodeWire, signedBytes } from '../../../p2p/state/wire.ts'
import { seededRandom } from '../../../util/random.ts'
import { changes, identity, STATE_KEY, store, type Identity } from './fixtures.ts'

/** Rebuilds a wire entry with changed fields, signed by `signer` (or unsigned with `null`). */
async function rebuild (wire: Uint8Array, signer: Identity | null, change: { owner?: string, key?: string, version?: number, ciphertext?: Uint8Array } = {}): Promise<Uint8Array> {
  const d = decodeWire(wire)
  if (d === undefined) throw new Error('fixture wire does not decode')
  const header = encodeHeader(change.owner ?? d.owner, change.key ?? d.key, change.version ?? d.version, d.writtenAt)
  const ciphertext = change.ciphertext ?? d.ciphertext
  const body = encodeBody(header, d.nonce, ciphertext)
  const signature = signer === null ? new Uint8Array() : await signer.privateKey.sign(signedBytes(body))
  return encodeWire(header, d.nonce, ciphertext, signature)
}

function only (reason: RejectReason): Record<string, number> {
  return { [reason]: 1 }
}

describe('state store: put, wire, apply', () => {
  it('round-trips an entry to another replica, with change events on both sides', async () => {
    const a = await store(1)
    const b = await store(2)
    const seenA = changes(a)
    const seenB = changes(b)
    const { entry, wire } = await a.put('vpn/advert', { ip: '10.1.0.5', endpoints: ['192.168.1.5:51820'] })
    expect(entry).toMatchObject({ owner: a.self, key: 'vpn/advert', version: 1 })
    const res = await b.apply([wire], a.self)
    expect(res.accepted).toHaveLength(1)
    expect(res.rejected).toEqual({})
    expect(b.get(a.self, 'vpn/advert')?.value).toEqual({ ip: '10.1.0.5', endpoints: ['192.168.1.5:51820'] })
    expect(b.list('vpn/').map(e => e.owner)).toEqual([a.self])
    expect(seenA.map(c => c.origin)).toEqual(['local'])
    expect(seenB.map(c => c.origin)).toEqual(['remote'])
    expect(b.wireOf(a.self, 'vpn/advert')).toEqual(wire)
    expect(b.size()).toEqual({ entries: 1, bytes: wire.length })
  })

  it('gives own puts increasing versions and reports the previous entry', async () => {
    const a = await store(1)
    await a.put('k', 1)
    const seen = changes(a)
    const { entry } = await a.put('k', 2)
    expect(entry.version).toBe(2)
    expect(seen[0]?.previous?.value).toBe(1)
  })

  it('lists across owners sorted by key then owner, filtered by prefix', async () => {
    const a = await store(1)
    const b = await store(2)
    await b.apply([(await a.put('roles/vote', 'x')).wire, (await a.put('vpn/advert', 1)).wire], a.self)
    await b.put('roles/vote', 'y')
    await b.put('roles/claim', 'z')
    const keys = b.list('roles/').map(e => `${e.key}@${e.owner === a.self ? 'a' : 'b'}`)
    const owners = [a.self, b.self].sort()
    expect(keys).toEqual(['roles/claim@b', ...owners.map(o => `roles/vote@${o === a.self ? 'a' : 'b'}`)])
    expect(b.list()).toHaveLength(4)
  })

  it('returns values readers cannot mutate', async () => {
    const a = await store(1)
    const { entry } = await a.put('k', { list: [1] })
    expect(() => { (entry.value as { list: number[] }).list.push(2) }).toThrow()
    expect(a.get(a.self, 'k')?.value).toEqual({ list: [1] })
  })

  it('refuses bad own input with named errors', async () => {
    const a = await store(1, { limits: { maxEntryBytes: 512, maxEntriesPerOwner: 2 } })
    await expect(a.put('', 1)).rejects.toMatchObject({ name: 'StateKeyError' })
    await expect(a.put('a\u0000b', 1)).rejects.toMatchObject({ name: 'StateKeyError' })
    await expect(a.put('k', Number.NaN)).rejects.toMatchObject({ name: 'StateValueError' })
    await expect(a.put('k', 'x'.repeat(600))).rejects.toMatchObject({ name: 'StateEntryTooLargeError' })
    await a.put('k1', 1)
    await a.put('k2', 1)
    await expect(a.put('k3', 1)).rejects.toMatchObject({ name: 'StateOwnerQuotaError' })
    await a.put('k1', 2)
    expect(a.size().entries).toBe(2)
    await expect(store(1, { stateKey: new Uint8Array(16) })).rejects.toMatchObject({ name: 'StateStoreInitError' })
    const other = await identity(9)
    await expect(store(1, { self: other.self })).rejects.toMatchObject({ name: 'StateStoreInitError' })
  })
})

describe('state store: rejections change nothing and are counted', () => {
  async function setup (extra = {}): Promise<{ a: Awaited<ReturnType<typeof store>>, b: Awaited<ReturnType<typeof store>>, mallory: Identity, wire: Uint8Array }> {
    const a = await store(1)
    const b = await store(2, extra)
    const mallory = await identity(66)
    const { wire } = await a.put('roles/vote', { term: 1, for: 'x' })
    return { a, b, mallory, wire }
  }

  async function expectRejected (b: Awaited<ReturnType<typeof store>>, wires: Uint8Array[], from: string, reason: RejectReason): Promise<void> {
    const before = { size: b.size(), list: b.list(), digest: b.digest() }
    const seen = changes(b)
    const res = await b.apply(wires, from)
    expect(res.rejected).toEqual({ [reason]: wires.length })
    expect(res.accepted).toEqual([])
    expect(res.duplicates).toBe(0)
    expect(b.rejections()[reason]).toBe(wires.length)
    expect(b.size()).toEqual(before.size)
    expect(b.list()).toEqual(before.list)
    expect(b.digest()).toEqual(before.digest)
    expect(seen).toEqual([])
  }

  it('forged: owner A, signed by another key', async () => {
    const { a, b, mallory, wire } = await setup()
    await expectRejected(b, [await rebuild(wire, mallory)], mallory.self, 'forged')
    expect(b.get(a.self, 'roles/vote')).toBeUndefined()
  })

  it('forged: ciphertext or header changed after signing', async () => {
    const { b, wire } = await setup()
    const d = decodeWire(wire)
    if (d === undefined) throw new Error('no decode')
    const flipped = wire.slice()
    flipped[d.body.length - 3] = (flipped[d.body.length - 3] as number) ^ 1
    const moved = decodeWire(await rebuild(wire, null, { version: 9 }))
    if (moved === undefined) throw new Error('no decode')
    const withOldSignature = encodeWire(moved.header, moved.nonce, moved.ciphertext, d.signature)
    await expectRejected(b, [flipped, withOldSignature], 'p', 'forged')
  })

  it('undecryptable: ciphertext tampered and re-signed by the owner itself (AEAD tag)', async () => {
    const a = await identity(1)
    const { b, wire } = await setup()
    const d = decodeWire(wire)
    if (d === undefined) throw new Error('no decode')
    await expectRejected(b, [await rebuild(wire, a, { ciphertext: d.ciphertext.map((x, i) => i === 0 ? x ^ 1 : x) })], a.self, 'undecryptable')
  })

  it('undecryptable: version or key moved and re-signed by the owner (associated data)', async () => {
    const a = await identity(1)
    const { b, wire } = await setup()
    await expectRejected(b, [await rebuild(wire, a, { version: 7 }), await rebuild(wire, a, { key: 'roles/cluster' })], a.self, 'undecryptable')
  })

  it('undecryptable: sealed with another network state key', async () => {
    const { b, wire } = await setup({ stateKey: new Uint8Array(32).fill(8) })
    await expectRejected(b, [wire], 'p', 'undecryptable')
  })

  it('unsigned: signature stripped', async () => {
    const { b, wire } = await setup()
    await expectRejected(b, [await rebuild(wire, null)], 'p', 'unsigned')
  })

  it('stale: a replay of an older version', async () => {
    const { a, b, wire } = await setup()
    const { wire: newer } = await a.put('roles/vote', { term: 2, for: 'y' })
    await b.apply([newer], a.self)
    await expectRejected(b, [wire], a.self, 'stale')
    expect(b.get(a.self, 'roles/vote')?.version).toBe(2)
  })

  it('stale before forged: an older version changes nothing whoever signed it, so it is refused unchecked', async () => {
    const { a, b, mallory, wire } = await setup()
    const { wire: newer } = await a.put('roles/vote', { term: 2, for: 'y' })
    await b.apply([newer], a.self)
    await expectRejected(b, [await rebuild(wire, mallory), await rebuild(wire, null)], mallory.self, 'stale')
    expect(b.get(a.self, 'roles/vote')?.value).toEqual({ term: 2, for: 'y' })
    // The same forgery of a version above the held one is checked, and refused as forged.
    expect((await b.apply([await rebuild(wire, mallory, { version: 3 })], mallory.self)).rejected).toEqual({ forged: 1 })
  })

  it('oversized: larger than the receiver bound', async () => {
    const { a, b } = await setup({ limits: { maxEntryBytes: 300 } })
    const { wire } = await a.put('big', 'x'.repeat(400))
    await expectRejected(b, [wire], a.self, 'oversized')
  })

  it('malformed: garbage, truncation, trailing bytes, bad format, non-canonical owner', async () => {
    const { b, wire } = await setup()
    const withTrailer = new Uint8Array([...wire, 0])
    const badFormat = wire.slice()
    badFormat[0] = 2
    const d = decodeWire(wire)
    if (d === undefined) throw new Error('no decode')
    const badOwner = await rebuild(wire, await identity(1), { owner: 'z' + d.owner })
    const cases = [new Uint8Array(), new Uint8Array([1]), wire.subarray(0, wire.length - 1), wire.subarray(0, 40), withTrailer, badFormat, badOwner]
    await expectRejected(b, cases, 'p', 'malformed')
    // Not even a Uint8Array: the contract says apply never throws.
    const res = await b.apply([null as unknown as Uint8Array, 'x' as unknown as Uint8Array], 'p')
    expect(res.rejected).toEqual({ malformed: 2 })
  })

  it('malformed: seeded random mutations never throw and never change state', async () => {
    const { b, wire } = await setup()
    const rnd = seededRandom(42)
    const mutants: Uint8Array[] = []
    for (let i = 0; i < 300; i++) {
      const m = wire.slice(0, 1 + rnd.int(wire.length + 8))
      for (let j = 0; j < 1 + rnd.int(4); j++) m[rnd.int(m.length)] = rnd.int(256)
      mutants.push(m)
    }
    const res = await b.apply(mutants, 'fuzz')
    expect(res.accepted).toEqual([])
    expect(b.size().entries).toBe(0)
    const counted = Object.values(res.rejected).reduce((x, y) => x + y, 0)
    expect(counted + res.duplicates).toBe(mutants.length)
  })

  it('owner-quota: a new key past the per-owner bound; updates of held keys still pass', async () => {
    const { a, b, wire } = await setup({ limits: { maxEntriesPerOwner: 2 } })
    await b.apply([wire, (await a.put('k2', 1)).wire], a.self)
    await expectRejected(b, [(await a.put('k3', 1)).wire], a.self, 'owner-quota')
    const res = await b.apply([(await a.put('k2', 2)).wire], a.self)
    expect(res.accepted).toHaveLength(1)
  })

  it('store-full: past the total byte bound, when its owner would be the largest', async () => {
    const { a, b, wire } = await setup({ limits: { maxTotalBytes: 400, maxOwnerBytes: 399 } })
    await b.apply([wire], a.self)
    const c = await store(3)
    const more = (await c.put('more', 'x'.repeat(200))).wire
    expect(more.length).toBeGreaterThan(wire.length)
    expect(more.length + wire.length).toBeGreaterThan(400)
    await expectRejected(b, [more], c.self, 'store-full')
  })

  it('not-admitted: owner outside the admitted set', async () => {
    const { a, b, wire } = await setup({ isAdmitted: () => false })
    await expectRejected(b, [wire], a.self, 'not-admitted')
  })

  it('logs each rejection with owner, key, reason and sender', async () => {
    const lines: Array<{ level: string, msg: string, fields: Record<string, unknown> | undefined }> = []
    const logger = {
      debug: (msg: string, fields?: Record<string, unknown>) => { lines.push({ level: 'debug', msg, fields }) },
      info: () => {},
      warn: (msg: string, fields?: Record<string, unknown>) => { lines.push({ level: 'warn', msg, fields }) },
      error: () => {},
      child: () => logger
    }
    const { a, b, mallory, wire } = await setup({ logger })
    await b.apply([await rebuild(wire, mallory)], mallory.self)
    expect(lines).toEqual([{ level: 'warn', msg: 'state entry rejected', fields: { owner: a.self, key: 'roles/vote', version: 1, reason: 'forged', from: mallory.self } }])
  })

  it('ignores entries once closed', async () => {
    const { a, b, wire } = await setup()
    await b.close()
    expect(await b.apply([wire], a.self)).toEqual({ accepted: [], rejected: {}, duplicates: 0 })
    expect(b.size().entries).toBe(0)
  })

  it('counts duplicates separately from rejections', async () => {
    const { a, b, wire } = await setup()
    await b.apply([wire], a.self)
    const res = await b.apply([wire, wire], a.self)
    expect(res).toEqual({ accepted: [], rejected: {}, duplicates: 2 })
    expect(b.duplicates()).toBe(2)
    expect(Object.values(b.rejections()).every(n => n === 0)).toBe(true)
  })
})

describe('alarmingRejections', () => {
  it('leaves out stale entries (a newer version overtook them) and keeps every other refusal', () => {
    expect(alarmingRejections({ stale: 3 })).toBeUndefined()
    expect(alarmingRejections({})).toBeUndefined()
    expect(alarmingRejections({ stale: 2, forged: 0 })).toBeUndefined()
    expect(alarmingRejections({ stale: 2, forged: 1, 'not-admitted': 4 })).toEqual({ forged: 1, 'not-admitted': 4 })
  })
})

describe('state store: own versions after a wiped disk', () => {
  it('adopts its earlier entry heard back from a peer and never reuses a version', async () => {
    const before = await store(1)
    const peer = await store(2)
    for (let i = 1; i <= 3; i++) await peer.apply([(await before.put('vpn/advert', { gen: i })).wire], before.self)
    const wiped = await store(1) // same identity, empty disk
    const fresh = await wiped.put('vpn/advert', { gen: 'new' })
    expect(fresh.entry.version).toBe(1)
    expect((await peer.apply([fresh.wire], wiped.self)).rejected).toEqual(only('stale'))

    const seen = changes(wiped)
    const res = await wiped.apply([peer.wireOf(before.self, 'vpn/advert') as Uint8Array], peer.self)
    expect(res.accepted).toHaveLength(1)
    expect(seen[0]).toMatchObject({ origin: 'remote', entry: { owner: wiped.self, version: 3, value: { gen: 3 } } })
    const next = await wiped.put('vpn/advert', { gen: 'newer' })
    expect(next.entry.version).toBe(4)
    expect((await peer.apply([next.wire], wiped.self)).accepted).toHaveLength(1)
  })

  it('goes past an own version seen from a peer even when it could not be held', async () => {
    const before = await store(1)
    for (let i = 0; i < 5; i++) await before.put('k', i)
    const newKey = (await before.put('other', 1)).wire
    const wiped = await store(1, { limits: { maxEntriesPerOwner: 1 } })
    await wiped.put('k', 'fresh')
    // 'other' cannot be held (quota 1) but its version is still remembered.
    expect((await wiped.apply([newKey], 'peer')).rejected).toEqual(only('owner-quota'))
    await wiped.apply([before.wireOf(before.self, 'k') as Uint8Array], 'peer')
    expect((await wiped.put('k', 'again')).entry.version).toBe(6)
  })
})

describe('state store: anti-entropy', () => {
  async function sync (x: Awaited<ReturnType<typeof store>>, y: Awaited<ReturnType<typeof store>>): Promise<number> {
    const toY = x.missingFor(y.digest())
    const toX = y.missingFor(x.digest())
    await y.apply(toY, x.self)
    await x.apply(toX, y.self)
    return toX.length + toY.length
  }

  it('converges two replicas and repairs dropped deltas', async () => {
    const a = await store(1)
    const b = await store(2)
    const c = await store(3)
    const first = await a.put('k', 1)
    await a.put('k', 2) // dropped on the way to b
    await a.put('k2', 'only-a')
    await b.apply([first.wire], a.self)
    await b.put('b/own', true)
    await b.apply([(await c.put('c/thing', 'via-b')).wire], c.self)
    expect(await sync(a, b)).toBe(4) // k v2, k2 → b; b/own, c/thing → a
    expect(a.list()).toEqual(b.list())
    expect(a.digest()).toEqual(b.digest())
    expect(b.get(a.self, 'k')?.version).toBe(2)
    expect(await sync(a, b)).toBe(0)
  })

  it('converges with a tiny digest budget (owner summaries only)', async () => {
    const a = await store(1, { digestBudget: 1 })
    const b = await store(2, { digestBudget: 1 })
    const w1 = await a.put('k1', 1)
    await a.put('k2', 2)
    await b.apply([w1.wire], a.self)
    await b.put('b', 1)
    await sync(a, b)
    expect(a.list()).toEqual(b.list())
    expect(b.duplicates()).toBe(1) // k1 was resent whole with its owner
  })

  it('returns nothing for a malformed digest and never throws', async () => {
    const a = await store(1)
    await a.put('k', 1)
    const good = a.digest()
    const rnd = seededRandom(7)
    for (const bad of [new Uint8Array(), new Uint8Array([9]), good.subarray(0, good.length - 1), new Uint8Array([...good, 0]), rnd.bytes(64), null as unknown as Uint8Array]) {
      expect(a.missingFor(bad)).toEqual([])
    }
    const empty = await store(2)
    expect(a.missingFor(empty.digest())).toHaveLength(1)
  })

  it('ends with the same replica for any delivery order of any multiset of entries', async () => {
    const owners = [await identity(1), await identity(2), await identity(3)]
    const wires: Uint8Array[] = []
    for (const id of owners) {
      // Two incarnations of each owner (as after a wiped disk) write the same keys and versions
      // with different content, so the winner of every slot is decided by the tie-break.
      for (let inc = 0; inc < 2; inc++) {
        const s = await store(owners.indexOf(id) + 1)
        for (let i = 0; i < 3; i++) wires.push((await s.put(i < 2 ? 'k0' : 'k1', { inc, i })).wire)
      }
    }
    const rnd = seededRandom(2026)
    let reference: Uint8Array | undefined
    for (let round = 0; round < 12; round++) {
      const r = await store(50)
      const multiset = [...wires, ...Array.from({ length: 8 }, () => wires[rnd.int(wires.length)] as Uint8Array)]
      for (let i = multiset.length - 1; i > 0; i--) {
        const j = rnd.int(i + 1)
        const t = multiset[i] as Uint8Array
        multiset[i] = multiset[j] as Uint8Array
        multiset[j] = t
      }
      // Deliver in random batch sizes.
      while (multiset.length > 0) await r.apply(multiset.splice(0, 1 + rnd.int(4)), 'p')
      reference ??= r.digest()
      expect(r.digest()).toEqual(reference)
      expect(r.size().entries).toBe(6)
    }
  })
})

describe('state store: lifecycle', () => {
  it('close is idempotent and put after close is refused', async () => {
    const a = await store(1)
    await a.put('k', 1)
    await Promise.all([a.close(), a.close()])
    await a.close()
    await expect(a.put('k', 2)).rejects.toMatchObject({ name: 'StateClosedError' })
    expect(a.get(a.self, 'k')?.value).toBe(1)
  })

  it('uses the state key given, not a later change to the caller buffer', async () => {
    const key = STATE_KEY.slice()
    const a = await store(1, { stateKey: key })
    key.fill(0)
    const b = await store(2)
    expect((await b.apply([(await a.put('k', 1)).wire], a.self)).accepted).toHaveLength(1)
  })
})
