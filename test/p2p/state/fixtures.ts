import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Ed25519PrivateKey } from '@libp2p/interface'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createStateStore, type LocalStateStore, type StateStoreInit } from '../../../p2p/state/store.ts'
import type { StateChange } from '../../../p2p/types.ts'

/** The network state key most tests share. */
export const STATE_KEY = new Uint8Array(32).fill(7)

/** A deterministic node identity. */
export interface Identity { privateKey: Ed25519PrivateKey, self: string }

export async function identity (seed: number): Promise<Identity> {
  const bytes = new Uint8Array(32)
  new DataView(bytes.buffer).setUint32(0, seed)
  const privateKey = await generateKeyPairFromSeed('Ed25519', bytes)
  return { privateKey, self: peerIdFromPrivateKey(privateKey).toString() }
}

/** A memory-only store for identity `seed`, with overrides. */
export async function store (seed: number, extra: Partial<StateStoreInit> = {}): Promise<LocalStateStore> {
  const id = await identity(seed)
  return await createStateStore({ ...id, stateKey: STATE_KEY, ...extra })
}

/** Collects the `change` events of a store. */
export function changes (s: LocalStateStore): StateChange[] {
  const seen: StateChange[] = []
  s.addEventListener('change', (evt) => { seen.push(evt.detail) })
  return seen
}

/** A fresh temporary directory and its removal. */
export async function tempDir (): Promise<{ dir: string, remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'kp2p-state-'))
  return { dir, remove: async () => { await rm(dir, { recursive: true, force: true }) } }
}
