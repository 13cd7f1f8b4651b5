import { describe, expect, it } from 'vitest'
import { writeEntry } from '../../p2p/state/wire.ts'
import { DEFAULT_MAX_OWNER_BYTES } from '../../p2p/state/store.ts'
import type { OwnerPresence } from '../../p2p/state/gc.ts'
import { collectableCredentials, credentialEntry } from '../../roles/credential-plan.ts'
import { CRED_PREFIX, ROLE_KEYS } from '../../roles/types.ts'
import { ManualClock } from '../../util/clock.ts'
import { identity, STATE_KEY, store, type Identity } from '../p2p/state/fixtures.ts'
import { sealKeyOf } from '../helpers/seal-keys.ts'

const MEMBERS = 1000
const ROUNDS = 4
const GRACE = 60_000
const FORGET = 7 * 24 * 3_600_000
const CLUSTER = 'c1'
/** A sealed box of the size a real one has (an agent credential is about 300 bytes of JSON). */
const BOX = { v: 1, role: 'agent', box: { v: 1, epk: 'e'.repeat(44), nonce: 'n'.repeat(16), ct: 'c'.repeat(200) } }

let nonce = 0
async function signed (who: Identity, key: string, value: unknown, writtenAt: number): Promise<Uint8Array> {
  const n = new Uint8Array(12)
  new DataView(n.buffer).setUint32(0, ++nonce)
  return await writeEntry({ privateKey: who.privateKey, owner: who.self, key, version: 1, writtenAt, value: value as never, stateKey: STATE_KEY, nonce: n })
}

describe('credentials over a site lifetime (real state store)', () => {
  it(`${MEMBERS} members, every one replaced ${ROUNDS} times (wipe, new identity, old one gone): the issuer's entries and every replica stay bounded`, async () => {
    const clock = new ManualClock(1_000_000_000)
    const policy = { clock, admitGraceMs: GRACE, forgetAfterMs: FORGET }
    const issuer = await store(1, policy)
    const replica = await store(2, policy)
    const present = new Set<string>([issuer.self, replica.self])
    const presence = (o: string): OwnerPresence => present.has(o) ? 'present' : 'gone'
    let seed = 100_000
    let current: Identity[] = []
    const departed = new Set<string>()
    const figures: Array<{ round: number, issuerEntries: number, issuerBytes: number, replicaEntries: number, replicaBytes: number }> = []
    for (let round = 0; round <= ROUNDS; round++) {
      // Every box is wiped and comes back under a new identity; one in ten is wiped
      // again before it ever joined, so its credential is collected as departed.
      const next = await Promise.all(Array.from({ length: MEMBERS }, async () => await identity(seed++)))
      for (const old of current) { present.delete(old.self); departed.add(old.self) }
      for (const m of next) present.add(m.self)
      current = next
      const wires: Uint8Array[] = []
      for (const m of current) {
        const e = credentialEntry(m.self, { kind: 'agent', to: sealKeyOf(m.self), clusterId: CLUSTER, box: BOX })
        wires.push((await issuer.put(e.key, e.value)).wire)
      }
      const statuses: Uint8Array[] = []
      for (const [i, m] of current.entries()) {
        if (i % 10 !== 0) statuses.push(await signed(m, ROLE_KEYS.status, { role: 'agent', phase: 'joined', clusterId: CLUSTER }, clock.now()))
      }
      await issuer.apply(statuses, 'peer')
      await replica.apply([...wires, ...statuses], issuer.self)
      // The issuer's collection, as decide runs it (roles/plan.ts).
      const own = [...issuer.list(ROLE_KEYS.status), ...issuer.list(CRED_PREFIX).filter((e) => e.owner === issuer.self)]
      const collect = collectableCredentials({ self: issuer.self, clusterId: CLUSTER, entries: own, departed })
      const markers: Uint8Array[] = []
      for (const id of collect) markers.push((await issuer.put(`${CRED_PREFIX}${id}`, null)).wire)
      await replica.apply(markers, issuer.self)
      clock.advance(FORGET / 2)
      issuer.collect(presence)
      replica.collect(presence)
      const mine = issuer.list(CRED_PREFIX).filter((e) => e.owner === issuer.self)
      const bytes = mine.reduce((a, e) => a + (issuer.wireOf(e.owner, e.key)?.length ?? 0), 0)
      figures.push({ round, issuerEntries: mine.length, issuerBytes: bytes, replicaEntries: replica.size().entries, replicaBytes: replica.size().bytes })
    }
    // Without collection the issuer would own (ROUNDS + 1) × MEMBERS credentials; with it,
    // the last members' (not yet joined, or joined since the last collection) and the
    // markers younger than forget_after.
    const last = figures.at(-1) as (typeof figures)[number]
    const steady = figures[2] as (typeof figures)[number]
    expect(last.issuerEntries).toBeLessThanOrEqual(3 * MEMBERS)
    expect(last.issuerEntries).toBeLessThanOrEqual(steady.issuerEntries)
    expect(last.issuerBytes).toBeLessThan(DEFAULT_MAX_OWNER_BYTES / 2)
    expect(last.replicaEntries).toBeLessThanOrEqual(steady.replicaEntries)
    expect(last.replicaBytes).toBeLessThanOrEqual(steady.replicaBytes * 1.05)
    // Only the last generation's credentials are live; the rest are markers or gone.
    const live = issuer.list(CRED_PREFIX).filter((e) => e.owner === issuer.self && e.value !== null).map((e) => e.key.slice(CRED_PREFIX.length))
    expect(live.length).toBeLessThanOrEqual(MEMBERS / 10)
    expect(live.every((id) => current.some((m) => m.self === id))).toBe(true)
  }, 300_000)
})
