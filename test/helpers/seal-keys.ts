import { createHash } from 'node:crypto'
import { memorySealKeys, type SealKeys } from '../../roles/credentials.ts'

const keys = new Map<string, SealKeys>()

/**
 * The seal key pair of a named test node: a real X25519 pair derived from the name, the
 * same for the same name in every test, so fixtures can write `sealKeyOf('a')` where a
 * node's `roles/node` entry carries its public key.
 */
export function sealKeysOf (name: string): SealKeys {
  let k = keys.get(name)
  if (k === undefined) {
    const seed = createHash('sha256').update(`kairos-p2p/test-seal-key\u0000${name}`).digest()
    k = memorySealKeys({ bytes: (n) => new Uint8Array(seed.subarray(0, n)), int: () => 0, float: () => 0 })
    keys.set(name, k)
  }
  return k
}

/** The public seal key (base64) of a named test node: see `sealKeysOf`. */
export function sealKeyOf (name: string): string {
  return sealKeysOf(name).publicKey
}

/**
 * X25519 public keys of the small subgroup, base64: every key agreement with one gives
 * all zeros. The identity-like points 0 and 1, and a point of order 8.
 */
export const LOW_ORDER_KEYS: readonly string[] = Object.freeze([
  Buffer.alloc(32).toString('base64'),
  Buffer.from('0100000000000000000000000000000000000000000000000000000000000000', 'hex').toString('base64'),
  Buffer.from('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800', 'hex').toString('base64')
])
