import type { JsonValue } from '../types.ts'
import type { StateStore } from './contract.ts'
import { decodeWire, openValue } from './wire.ts'

/**
 * Writes again (a new version, sealed under `stateKey`, the store's own) every entry of
 * this node whose held copy `stateKey` does not open, except keys `skip` keeps. After a
 * token rotation this moves what the node wrote under the previous generation's key to
 * the new one, so members that only ever held the new token (a box booted with it) read
 * it, and it outlives the grace. `put` writes one (the node's own, which also gossips
 * it). Returns how many entries were written.
 */
export async function resealOwnEntries (
  store: Pick<StateStore, 'self' | 'list' | 'wireOf' | 'put'>,
  stateKey: Uint8Array,
  skip: (key: string) => boolean = () => false,
  put: (key: string, value: JsonValue) => Promise<unknown> = async (k, v) => await store.put(k, v)
): Promise<number> {
  let count = 0
  for (const entry of store.list()) {
    if (entry.owner !== store.self || skip(entry.key)) continue
    const wire = store.wireOf(store.self, entry.key)
    const d = wire === undefined ? undefined : decodeWire(wire)
    if (d === undefined || !('problem' in openValue(stateKey, d))) continue
    await put(entry.key, entry.value)
    count++
  }
  return count
}
