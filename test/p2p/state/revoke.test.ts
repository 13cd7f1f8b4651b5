import { describe, expect, it } from 'vitest'
import { writeEntry } from '../../../p2p/state/wire.ts'
import type { JsonValue } from '../../../p2p/types.ts'
import { changes, identity, STATE_KEY, store, type Identity } from './fixtures.ts'

let nonce = 0
async function entry (who: Identity, key: string, version: number, value: JsonValue): Promise<Uint8Array> {
  const n = new Uint8Array(12)
  new DataView(n.buffer).setUint32(0, ++nonce)
  return await writeEntry({ privateKey: who.privateKey, owner: who.self, key, version, writtenAt: 0, value, stateKey: STATE_KEY, nonce: n })
}

describe('state store: revoked owners', () => {
  it('drops every entry of a revoked owner at once, emits each as dropped, and keeps the others', async () => {
    const s = await store(1)
    const old = await identity(2)
    const other = await identity(3)
    await s.apply([await entry(old, 'vpn/advert', 1, 'a'), await entry(old, 'p2p/member', 1, 'm'), await entry(other, 'vpn/advert', 1, 'b')], 'peer')
    const seen = changes(s)
    expect(s.revoke(new Set([old.self]))).toEqual([old.self])
    expect(s.get(old.self, 'vpn/advert')).toBeUndefined()
    expect(s.get(old.self, 'p2p/member')).toBeUndefined()
    expect(s.get(other.self, 'vpn/advert')?.value).toBe('b')
    expect(seen.map((c) => `${c.entry.owner} ${c.entry.key} ${c.dropped ?? ''}`).sort()).toEqual([`${old.self} p2p/member revoked`, `${old.self} vpn/advert revoked`])
  })

  it('refuses the revoked owner\'s entries afterwards, also newer versions, as revoked', async () => {
    const s = await store(1)
    const old = await identity(2)
    s.revoke(new Set([old.self]))
    const res = await s.apply([await entry(old, 'vpn/advert', 7, 'back')], 'peer')
    expect(res.accepted).toEqual([])
    expect(res.rejected).toEqual({ revoked: 1 })
    expect(s.rejections().revoked).toBe(1)
    expect(s.get(old.self, 'vpn/advert')).toBeUndefined()
  })

  it('never revokes its own entries, and an owner left out of a later set is accepted again', async () => {
    const s = await store(1)
    await s.put('vpn/advert', 'mine')
    const old = await identity(2)
    expect(s.revoke(new Set([s.self, old.self]))).toEqual([])
    expect(s.get(s.self, 'vpn/advert')?.value).toBe('mine')
    s.revoke(new Set())
    const res = await s.apply([await entry(old, 'vpn/advert', 1, 'x')], 'peer')
    expect(res.accepted).toHaveLength(1)
  })
})
