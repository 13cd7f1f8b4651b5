import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { IdentityFileError } from './errors.ts'

/** File name of the peer identity inside the state dir. */
export const IDENTITY_FILE = 'identity.key'

/**
 * Loads the node's Ed25519 identity from `<dir>/identity.key`, or creates and
 * persists one (mode 0600, written atomically) on first start. The same key
 * means the same peer id across restarts, which membership, roles and the
 * VPN rely on.
 */
export async function loadOrCreateIdentity (dir: string): Promise<PrivateKey> {
  const file = join(dir, IDENTITY_FILE)
  let bytes: Uint8Array | undefined
  try {
    bytes = new Uint8Array(await readFile(file))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new IdentityFileError(`cannot read peer identity ${file}: ${(err as Error).message}`, { cause: err })
  }
  if (bytes !== undefined) {
    try {
      const key = privateKeyFromProtobuf(bytes)
      if (key.type !== 'Ed25519') throw new Error(`key type ${key.type}, expected Ed25519`)
      return key
    } catch (err) {
      throw new IdentityFileError(`peer identity ${file} is not an Ed25519 libp2p private key (${(err as Error).message}); move it away to create a new identity`, { cause: err })
    }
  }
  const key = await generateKeyPair('Ed25519')
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const tmp = `${file}.tmp`
  await writeFile(tmp, privateKeyToProtobuf(key), { mode: 0o600 })
  await chmod(tmp, 0o600)
  await rename(tmp, file)
  return key
}
