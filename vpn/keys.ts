import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto'
import { chmodSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { writeFileAtomicSync } from '../util/atomic-file.ts'
import { VpnStateFileError } from './errors.ts'
import { isWireGuardKey } from './peers.ts'

/** File under the state dir holding the node's WireGuard private key (mode 0600). */
export const PRIVATE_KEY_FILE = 'vpn/wireguard.key'

/** A WireGuard key pair in WireGuard's base64 format. */
export interface WireGuardKeyPair {
  privateKey: string
  publicKey: string
}

// DER prefix of a PKCS#8 X25519 private key; the 32 raw key bytes follow.
const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex')

function base64FromUrl (text: string): string {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/')
  return b64 + '='.repeat((4 - (b64.length % 4)) % 4)
}

/** A fresh X25519 key pair from the operating system's CSPRNG. */
export function generateKeyPair (): WireGuardKeyPair {
  const { privateKey } = generateKeyPairSync('x25519')
  const jwk = privateKey.export({ format: 'jwk' })
  if (jwk.d === undefined || jwk.x === undefined) throw new Error('x25519 key export returned no key material')
  return { privateKey: base64FromUrl(jwk.d), publicKey: base64FromUrl(jwk.x) }
}

/** The last key `publicKeyOf` derived: a node has one key and checks it on every reconcile. */
let lastDerived: { privateKey: string, publicKey: string } | undefined

/**
 * The public key of a WireGuard private key (base64). The last result is kept: the
 * interface's key is checked against ours on every reconcile pass (each WireGuard dump
 * carries the private key), and the derivation is an X25519 key import and export.
 * @throws VpnStateFileError when `privateKey` is not a WireGuard key.
 */
export function publicKeyOf (privateKey: string): string {
  if (lastDerived?.privateKey === privateKey) return lastDerived.publicKey
  if (!isWireGuardKey(privateKey)) throw new VpnStateFileError('WireGuard private key: expected base64 of 32 bytes')
  const der = Buffer.concat([PKCS8_X25519_PREFIX, Buffer.from(privateKey, 'base64')])
  const jwk = createPublicKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })).export({ format: 'jwk' })
  if (jwk.x === undefined) throw new Error('x25519 public key export returned no key material')
  const publicKey = base64FromUrl(jwk.x)
  lastDerived = { privateKey, publicKey }
  return publicKey
}

/**
 * Loads the node's key pair from `<stateDir>/vpn/wireguard.key`, creating it (0600,
 * written atomically) on first start. The key never changes afterwards.
 * @throws VpnStateFileError when the file cannot be read, or (exit code 2) holds no valid key.
 */
export async function loadOrCreateKeyPair (stateDir: string): Promise<WireGuardKeyPair> {
  const file = join(stateDir, PRIVATE_KEY_FILE)
  let text: string | undefined
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new VpnStateFileError(`${file}: cannot read the WireGuard key`, { cause: err })
  }
  if (text !== undefined) {
    const privateKey = text.trim()
    if (!isWireGuardKey(privateKey)) throw new VpnStateFileError(`${file}: expected a WireGuard private key (base64 of 32 bytes); refusing to replace it`, { exitCode: 2 })
    chmodSync(file, 0o600)
    return { privateKey, publicKey: publicKeyOf(privateKey) }
  }
  const pair = generateKeyPair()
  await writePrivateFile(file, pair.privateKey + '\n')
  return pair
}

/** Writes `content` to `file` with mode 0600, atomically and durably (see `writeFileAtomicSync`). */
export async function writePrivateFile (file: string, content: string): Promise<void> {
  writeFileAtomicSync(file, content, 0o600)
}
