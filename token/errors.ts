import { InputError } from '../util/errors.ts'

/**
 * Base of every network-token failure. All of them are bad input (exit code 2);
 * the subclass `name` says which check failed. Messages never repeat the token:
 * it is a secret and error messages end up in logs.
 */
export class TokenError extends InputError {
  constructor (message: string, options: { cause?: unknown } = {}) {
    super(message, options)
    this.name = 'TokenError'
  }
}

/** The token is empty or only whitespace. */
export class TokenEmptyError extends TokenError {
  constructor () {
    super('network token is empty; expected a token from \'kairos-p2p token generate\' or a Kairos/edgevpn network token')
    this.name = 'TokenEmptyError'
  }
}

/** The text is not shaped like any token this build reads (for example a damaged `kp1` prefix). */
export class TokenFormatError extends TokenError {
  constructor (message: string) {
    super(message)
    this.name = 'TokenFormatError'
  }
}

/** Fewer characters than the token's version needs: usually a truncated copy. */
export class TokenTooShortError extends TokenError {
  constructor (message: string) {
    super(message)
    this.name = 'TokenTooShortError'
  }
}

/** More characters than the token's version allows: usually something pasted after it. */
export class TokenTooLongError extends TokenError {
  constructor (message: string) {
    super(message)
    this.name = 'TokenTooLongError'
  }
}

/** A character outside the token alphabet, or mixed upper and lower case. */
export class TokenCharacterError extends TokenError {
  /** 1-based position of the offending character. */
  readonly position: number

  constructor (message: string, position: number) {
    super(message)
    this.name = 'TokenCharacterError'
    this.position = position
  }
}

/** A well-formed token of a version this build does not read. */
export class TokenVersionError extends TokenError {
  /** The version the token carries. */
  readonly version: number

  constructor (version: number, supported: readonly number[]) {
    super(`network token has version ${version}; this build of kairos-p2p reads version ${supported.join(', ')} (upgrade kairos-p2p to use this token)`)
    this.name = 'TokenVersionError'
    this.version = version
  }
}

/** The checksum does not match the body: a character was mistyped. */
export class TokenChecksumError extends TokenError {
  constructor () {
    super('network token checksum mismatch — probably a typo; copy the token again from its source')
    this.name = 'TokenChecksumError'
  }
}

/** A Kairos/edgevpn token that is not valid base64. */
export class KairosTokenBase64Error extends TokenError {
  constructor (detail: string) {
    super(`network token is not a kairos-p2p token (those start with 'kp1') and not base64 as a Kairos/edgevpn token is: ${detail}`)
    this.name = 'KairosTokenBase64Error'
  }
}

/** A Kairos/edgevpn token whose base64 decodes to something that is not a YAML mapping. */
export class KairosTokenYamlError extends TokenError {
  constructor (detail: string, options: { cause?: unknown } = {}) {
    super(`Kairos/edgevpn network token is base64 but does not decode to YAML: ${detail}`, options)
    this.name = 'KairosTokenYamlError'
  }
}

/** A Kairos/edgevpn token whose YAML lacks a key or has a key of the wrong type. */
export class KairosTokenError extends TokenError {
  /** Dotted path of the key, e.g. `otp.crypto.key`. */
  readonly key: string

  constructor (key: string, message: string) {
    super(`Kairos/edgevpn network token: ${message}`)
    this.name = 'KairosTokenError'
    this.key = key
  }
}

/** The token configured at `p2p.network_token` is not a valid token; wraps the specific TokenError. */
export class ConfiguredTokenError extends TokenError {
  constructor (path: string, cause: TokenError) {
    super(`${path}: ${cause.message}`, { cause })
    this.name = 'ConfiguredTokenError'
  }
}
