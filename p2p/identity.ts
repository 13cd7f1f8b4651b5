import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createFileDurableSync } from '../util/atomic-file.ts'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { IdentityFileError } from './errors.ts'

/** File name of the peer identity inside the state dir. */
export const IDENTITY_FILE = 'identity.key'

/**
 * Loads the node's Ed25519 identity from `<dir>/identity.key`, or creates and
 * persists one on first start (mode 0600, fsynced with its directory and linked into
 * place, so a power cut at first boot leaves no file or the whole key, and two racing
 * starts agree on one). The same key means the same peer id across restarts, which
 * membership, roles and the VPN rely on.
 *
 * A file that exists but is not a key is an `IdentityFileError` with exit code 2: the
 * operator moves it away (a new identity) or restores it; it is never replaced silently.
 */
export async function loadOrCreateIdentity (dir: string): Promise<PrivateKey> {
  const file = join(dir, IDENTITY_FILE)
  const existing = await readIdentity(file)
  if (existing !== undefined) return existing
  const key = await generateKeyPair('Ed25519')
  try {
    createFileDurableSync(file, privateKeyToProtobuf(key), 0o600)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new IdentityFileError(`cannot write peer identity ${file}: ${(err as Error).message}`, { cause: err })
    const winner = await readIdentity(file)
    if (winner !== undefined) return winner
    throw new IdentityFileError(`peer identity ${file} vanished while being created`, { cause: err })
  }
  return key
}

async function readIdentity (file: string): Promise<PrivateKey | undefined> {
  let bytes: Uint8Array
  try {
    bytes = new Uint8Array(await readFile(file))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new IdentityFileError(`cannot read peer identity ${file}: ${(err as Error).message}`, { cause: err })
  }
  try {
    const key = privateKeyFromProtobuf(bytes)
    if (key.type !== 'Ed25519') throw new Error(`key type ${key.type}, expected Ed25519`)
    return key
  } catch (err) {
    throw new IdentityFileError(`peer identity ${file} is not an Ed25519 libp2p private key (${(err as Error).message}); move it away to create a new identity, or restore it from a backup`, { cause: err, exitCode: 2 })
  }
}
