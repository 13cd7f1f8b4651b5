import { cryptoRandom, type RandomSource } from '../util/random.ts'
import {
  BECH32_ALPHABET, BECH32_CHECKSUM_LENGTH, BECH32_MAX_LENGTH,
  bech32Index, bech32mChecksum, bech32mVerify, bytesToFive, fiveToBytes
} from './bech32m.ts'
import {
  TokenCharacterError, TokenChecksumError, TokenFormatError, TokenTooLongError,
  TokenTooShortError, TokenVersionError
} from './errors.ts'
import type { NetworkToken } from './types.ts'

// Layout of our token, version 1 (62 characters):
//
//   kp 1 p <52 characters: 256-bit secret> <6 characters: bech32m checksum>
//   │  │ └ version (5-bit value 1), the first data character, covered by the checksum
//   │  └ separator
//   └ human-readable prefix, also covered by the checksum
//
// The version comes first so a future version may change everything after it
// (body length, meaning) while old builds still say "unknown version" rather
// than "checksum mismatch".

/** Human-readable part of our tokens. */
const PREFIX_HRP = 'kp'

/** Every token of ours starts with this. */
export const TOKEN_PREFIX = `${PREFIX_HRP}1`

/** The version `generateToken` writes. */
export const TOKEN_VERSION = 1

/** Versions `parseToken` reads. */
export const SUPPORTED_TOKEN_VERSIONS: readonly number[] = [TOKEN_VERSION]

/** Bytes of CSPRNG output in a version-1 token. */
export const TOKEN_SECRET_BYTES = 32

const V1_BODY_CHARS = bytesToFive(new Uint8Array(TOKEN_SECRET_BYTES)).length

/** Length of a version-1 token in characters. */
export const TOKEN_LENGTH = TOKEN_PREFIX.length + 1 + V1_BODY_CHARS + BECH32_CHECKSUM_LENGTH

/** Encodes a 32-byte secret as a version-1 token. */
export function encodeToken (secret: Uint8Array): string {
  if (secret.length !== TOKEN_SECRET_BYTES) {
    throw new RangeError(`token secret must be ${TOKEN_SECRET_BYTES} bytes, got ${secret.length}`)
  }
  const data = [TOKEN_VERSION, ...bytesToFive(secret)]
  const all = [...data, ...bech32mChecksum(PREFIX_HRP, data)]
  return TOKEN_PREFIX + all.map((v) => BECH32_ALPHABET[v]).join('')
}

/**
 * A new network token: 256 bits from `random`, version 1, with a bech32m checksum.
 * 62 lowercase characters, safe unquoted in YAML, shells and URLs.
 */
export function generateToken (random: RandomSource = cryptoRandom): string {
  return encodeToken(random.bytes(TOKEN_SECRET_BYTES))
}

/** True when `text` (trimmed) claims to be one of our tokens, i.e. starts with `kp1` in any case. */
export function hasTokenPrefix (text: string): boolean {
  return text.slice(0, TOKEN_PREFIX.length).toLowerCase() === TOKEN_PREFIX
}

/** A character for an error message: itself when printable ASCII, else its code point. */
export function showChar (char: string): string {
  const code = char.codePointAt(0) ?? 0
  return code > 0x20 && code < 0x7f ? `'${char}'` : `U+${code.toString(16).toUpperCase().padStart(4, '0')}`
}

/**
 * Parses one of our tokens (`text` already trimmed and starting with `kp1` in any
 * case). Checks, in order: case, characters, overall length, checksum, version,
 * length for the version; a failed checksum on a token of the right version but
 * the wrong length is reported as truncated or too long, not as a typo.
 */
export function parseOwnToken (text: string): NetworkToken {
  const upper = text.toUpperCase()
  const lower = text.toLowerCase()
  if (text !== upper && text !== lower) {
    const firstIsUpper = text[0] === upper[0]
    let at = 0
    for (let i = 0; i < text.length; i++) {
      const c = text[i] as string
      if (c.toLowerCase() !== c.toUpperCase() && (c === c.toUpperCase()) !== firstIsUpper) { at = i; break }
    }
    throw new TokenCharacterError(`network token mixes upper and lower case (position ${at + 1}); a token is all lowercase or all uppercase`, at + 1)
  }
  if (!hasTokenPrefix(lower)) {
    throw new TokenFormatError(`network token does not start with '${TOKEN_PREFIX}'`)
  }
  const body = lower.slice(TOKEN_PREFIX.length)
  const values: number[] = []
  for (let i = 0; i < body.length; i++) {
    const c = body[i] as string
    const v = bech32Index(c)
    if (v < 0) {
      const position = TOKEN_PREFIX.length + i + 1
      throw new TokenCharacterError(`network token has character ${showChar(c)} at position ${position}, which no token contains; expected one of ${BECH32_ALPHABET}`, position)
    }
    values.push(v)
  }
  if (lower.length > BECH32_MAX_LENGTH) {
    throw new TokenTooLongError(`network token has ${lower.length} characters; a kairos-p2p token has at most ${BECH32_MAX_LENGTH} (version ${TOKEN_VERSION}: ${TOKEN_LENGTH}) — is something pasted after it?`)
  }
  if (values.length < 1 + BECH32_CHECKSUM_LENGTH) {
    throw new TokenTooShortError(`network token has ${lower.length} characters, too few for a kairos-p2p token (version ${TOKEN_VERSION} has ${TOKEN_LENGTH}) — truncated?`)
  }
  const version = values[0] as number
  const known = SUPPORTED_TOKEN_VERSIONS.includes(version)
  const checksumOk = bech32mVerify(PREFIX_HRP, values)
  if (!checksumOk && !known) throw new TokenChecksumError()
  if (!known) throw new TokenVersionError(version, SUPPORTED_TOKEN_VERSIONS)
  if (lower.length < TOKEN_LENGTH) {
    throw new TokenTooShortError(`network token has ${lower.length} characters; a version ${version} token has ${TOKEN_LENGTH} — truncated?`)
  }
  if (lower.length > TOKEN_LENGTH) {
    throw new TokenTooLongError(`network token has ${lower.length} characters; a version ${version} token has ${TOKEN_LENGTH} — is something pasted after it?`)
  }
  if (!checksumOk) throw new TokenChecksumError()
  const secret = fiveToBytes(values.slice(1, values.length - BECH32_CHECKSUM_LENGTH))
  if (secret?.length !== TOKEN_SECRET_BYTES) {
    // Only reachable by a hand-made token with a valid checksum.
    throw new TokenFormatError(`network token body is not a canonical version ${version} encoding of ${TOKEN_SECRET_BYTES} bytes`)
  }
  return { kind: 'kairos-p2p', version, text: lower, secret }
}
