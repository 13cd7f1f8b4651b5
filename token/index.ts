// The network token: format, parsing (ours and Kairos/edgevpn) and key derivation.
export type { NetworkToken, KairosTokenSettings } from './types.ts'
export {
  generateToken, encodeToken, TOKEN_PREFIX, TOKEN_VERSION, TOKEN_LENGTH,
  TOKEN_SECRET_BYTES, SUPPORTED_TOKEN_VERSIONS
} from './format.ts'
export { parseToken, parseConfiguredToken } from './parse.ts'
export { KAIROS_IMPORT_VERSION, KAIROS_SECRET_KEYS, KAIROS_DEFAULTS } from './kairos.ts'
export { deriveKeys, type DerivedKeys, type RendezvousKeys } from './derive.ts'
export {
  TokenError, TokenEmptyError, TokenFormatError, TokenTooShortError, TokenTooLongError,
  TokenCharacterError, TokenVersionError, TokenChecksumError,
  KairosTokenBase64Error, KairosTokenYamlError, KairosTokenError, ConfiguredTokenError
} from './errors.ts'
