import { BECH32_MAX_LENGTH } from './bech32m.ts'
import { ConfiguredTokenError, TokenEmptyError, TokenError, TokenFormatError } from './errors.ts'
import { hasTokenPrefix, parseOwnToken, TOKEN_PREFIX } from './format.ts'
import { parseKairosToken } from './kairos.ts'
import type { NetworkToken } from './types.ts'

/**
 * Parses a network token: ours (`kp1…`, any case, surrounding whitespace ignored)
 * or a Kairos/edgevpn token (base64 YAML). Throws a `TokenError` subclass whose
 * `name` says what is wrong: `TokenEmptyError`, `TokenFormatError`,
 * `TokenTooShortError`, `TokenTooLongError`, `TokenCharacterError`,
 * `TokenVersionError`, `TokenChecksumError`, `KairosTokenBase64Error`,
 * `KairosTokenYamlError`, `KairosTokenError`.
 */
export function parseToken (text: string): NetworkToken {
  if (typeof text !== 'string') throw new TokenFormatError(`network token must be a string, got ${text === null ? 'null' : typeof text}`)
  const trimmed = text.trim()
  if (trimmed === '') throw new TokenEmptyError()
  if (hasTokenPrefix(trimmed)) return parseOwnToken(trimmed)
  // Kairos tokens are base64 of a few hundred bytes of YAML; a short run of letters
  // and digits is one of ours with a damaged prefix.
  if (trimmed.length <= BECH32_MAX_LENGTH && /^[a-z0-9]+$/i.test(trimmed)) {
    throw new TokenFormatError(`network token does not start with '${TOKEN_PREFIX}' as kairos-p2p tokens do, and at ${trimmed.length} characters it is too short for a Kairos/edgevpn token — is the start mistyped?`)
  }
  return parseKairosToken(trimmed)
}

/**
 * Parses the token a config carries, naming the config key in the error
 * (`p2p.network_token: network token checksum mismatch — …`).
 */
export function parseConfiguredToken (text: string, path = 'p2p.network_token'): NetworkToken {
  try {
    return parseToken(text)
  } catch (err) {
    if (err instanceof TokenError) throw new ConfiguredTokenError(path, err)
    throw err
  }
}
