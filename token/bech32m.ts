// Bech32m checksum (BIP-173 alphabet and BCH code, BIP-350 constant). The code has
// minimum distance 5 over strings of up to 89 characters, so any change of up to
// four characters — in particular every single-character substitution — changes
// the checksum. We use it only as a typo check; secrecy comes from the body.

/** The 32 data characters: lowercase, no `1`, `b`, `i`, `o`; safe in YAML, shells and URLs. */
export const BECH32_ALPHABET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l'

/** Number of checksum characters at the end of a string. */
export const BECH32_CHECKSUM_LENGTH = 6

/** Longest string (prefix, separator, data, checksum) the detection guarantee covers. */
export const BECH32_MAX_LENGTH = 90

const BECH32M_CONST = 0x2bc830a3
const GENERATOR = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3] as const

const alphabetIndex = new Map<string, number>([...BECH32_ALPHABET].map((c, i) => [c, i]))

/** Index of `char` in the alphabet, or -1. */
export function bech32Index (char: string): number {
  return alphabetIndex.get(char) ?? -1
}

function polymod (values: Iterable<number>): number {
  let chk = 1
  for (const v of values) {
    const top = chk >>> 25
    chk = ((chk & 0x1ffffff) << 5) ^ v
    for (let i = 0; i < 5; i++) {
      if (((top >>> i) & 1) === 1) chk ^= GENERATOR[i] as number
    }
  }
  return chk >>> 0
}

function expandPrefix (prefix: string): number[] {
  const out: number[] = []
  for (let i = 0; i < prefix.length; i++) out.push(prefix.charCodeAt(i) >> 5)
  out.push(0)
  for (let i = 0; i < prefix.length; i++) out.push(prefix.charCodeAt(i) & 31)
  return out
}

/** The six 5-bit checksum values for `prefix` (human-readable part) and 5-bit `data`. */
export function bech32mChecksum (prefix: string, data: readonly number[]): number[] {
  const mod = polymod([...expandPrefix(prefix), ...data, 0, 0, 0, 0, 0, 0]) ^ BECH32M_CONST
  const out: number[] = []
  for (let i = 0; i < BECH32_CHECKSUM_LENGTH; i++) out.push((mod >>> (5 * (5 - i))) & 31)
  return out
}

/** True when `dataWithChecksum` (5-bit values, checksum last) carries a valid checksum for `prefix`. */
export function bech32mVerify (prefix: string, dataWithChecksum: readonly number[]): boolean {
  return polymod([...expandPrefix(prefix), ...dataWithChecksum]) === BECH32M_CONST
}

/** Bytes to 5-bit groups, the last group zero-padded. */
export function bytesToFive (bytes: Uint8Array): number[] {
  const out: number[] = []
  let acc = 0
  let bits = 0
  for (const b of bytes) {
    acc = ((acc << 8) | b) & 0xfff
    bits += 8
    while (bits >= 5) {
      bits -= 5
      out.push((acc >>> bits) & 31)
    }
  }
  if (bits > 0) out.push((acc << (5 - bits)) & 31)
  return out
}

/**
 * 5-bit groups back to bytes. Returns undefined when the leftover padding is longer
 * than 4 bits or not zero (a non-canonical encoding).
 */
export function fiveToBytes (groups: readonly number[]): Uint8Array | undefined {
  const out: number[] = []
  let acc = 0
  let bits = 0
  for (const g of groups) {
    acc = ((acc << 5) | g) & 0xfff
    bits += 5
    if (bits >= 8) {
      bits -= 8
      out.push((acc >>> bits) & 0xff)
    }
  }
  if (bits >= 5 || (acc & ((1 << bits) - 1)) !== 0) return undefined
  return new Uint8Array(out)
}
