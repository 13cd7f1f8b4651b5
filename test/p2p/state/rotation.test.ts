import { describe, expect, it } from 'vitest'
import { resealOwnEntries } from '../../../p2p/state/reseal.ts'
import { decodeWire, openValue } from '../../../p2p/state/wire.ts'
import { identity, store, tempDir } from './fixtures.ts'
import { createStateStore } from '../../../p2p/state/store.ts'

const OLD = new Uint8Array(32).fill(1)
const NEW = new Uint8Array(32).fill(2)
const opens = (key: Uint8Array, wire: Uint8Array | undefined): boolean => {
  const d = wire === undefined ? undefined : decodeWire(wire)
  return d !== undefined && !('problem' in openValue(key, d))
}

describe('state across token generations', () => {
  it('a store on the new key opens entries sealed under the previous one while it holds it, and not after', async () => {
    const old = await store(1, { stateKey: OLD })
    let previous: Uint8Array[] = [OLD]
    const switched = await store(2, { stateKey: NEW, openKeys: () => previous })
    const { wire } = await old.put('roles/status', { phase: 'joined' })
    expect((await switched.apply([wire], old.self)).accepted).toHaveLength(1)
    expect(switched.get(old.self, 'roles/status')?.value).toEqual({ phase: 'joined' })
    previous = []
    const { wire: later } = await old.put('roles/status', { phase: 'installing' })
    expect((await switched.apply([later], old.self)).rejected).toEqual({ undecryptable: 1 })
  })

  it('a store on the previous key refuses what is sealed under the new one', async () => {
    const switched = await store(2, { stateKey: NEW, openKeys: () => [OLD] })
    const old = await store(1, { stateKey: OLD })
    const { wire } = await switched.put('vpn/advert', { address: '10.1.0.2' })
    expect((await old.apply([wire], switched.self)).rejected).toEqual({ undecryptable: 1 })
  })

  it('reseal moves own entries from the previous key to the new one, keeping the skipped keys', async () => {
    const { dir, remove } = await tempDir()
    try {
      const id = await identity(3)
      const before = await createStateStore({ ...id, stateKey: OLD, dir })
      await before.put('roles/status', { phase: 'joined' })
      await before.put('token/rotation', { generation: 1 })
      await before.close()
      const after = await createStateStore({ ...id, stateKey: NEW, openKeys: () => [OLD], dir })
      expect(after.loadReport().loaded).toBe(2)
      expect(await resealOwnEntries(after, NEW, (k) => k === 'token/rotation')).toBe(1)
      expect(opens(NEW, after.wireOf(id.self, 'roles/status'))).toBe(true)
      expect(after.get(id.self, 'roles/status')).toMatchObject({ version: 2, value: { phase: 'joined' } })
      expect(opens(OLD, after.wireOf(id.self, 'token/rotation'))).toBe(true)
      expect(await resealOwnEntries(after, NEW, (k) => k === 'token/rotation')).toBe(0)
      await after.close()
    } finally {
      await remove()
    }
  })
})
