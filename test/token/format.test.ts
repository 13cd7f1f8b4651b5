import { describe, expect, it } from 'vitest'
import { seededRandom } from '../../util/random.ts'
import { BECH32_ALPHABET } from '../../token/bech32m.ts'
import {
  encodeToken, generateToken, parseToken, TOKEN_LENGTH, TOKEN_PREFIX, TOKEN_SECRET_BYTES,
  TokenChecksumError, TokenError
} from '../../token/index.ts'
import { InputError } from '../../util/errors.ts'

describe('generateToken', () => {
  it('is kp1, version character p, 62 lowercase characters safe in YAML, shells and URLs', () => {
    const token = generateToken()
    expect(token).toHaveLength(TOKEN_LENGTH)
    expect(TOKEN_LENGTH).toBe(62)
    expect(token.startsWith(`${TOKEN_PREFIX}p`)).toBe(true)
    expect(token).toMatch(/^[a-z0-9]+$/)
    expect(encodeURIComponent(token)).toBe(token)
  })

  it('carries 256 bits from the random source', () => {
    const a = parseToken(generateToken(seededRandom(1)))
    const b = parseToken(generateToken(seededRandom(1)))
    const c = parseToken(generateToken(seededRandom(2)))
    expect(a.secret).toHaveLength(TOKEN_SECRET_BYTES)
    expect(a.secret).toEqual(b.secret)
    expect(a.secret).not.toEqual(c.secret)
    expect(a.secret).toEqual(seededRandom(1).bytes(32))
  })

  it('gives a different token on every call by default', () => {
    const seen = new Set(Array.from({ length: 50 }, () => generateToken()))
    expect(seen.size).toBe(50)
  })
})

describe('parseToken round trip', () => {
  it('returns the secret that was encoded', () => {
    const random = seededRandom(42)
    for (let i = 0; i < 200; i++) {
      const secret = random.bytes(32)
      const token = encodeToken(secret)
      const parsed = parseToken(token)
      expect(parsed).toEqual({ kind: 'kairos-p2p', version: 1, text: token, secret })
    }
  })

  it('encodes all-zero and all-one secrets', () => {
    for (const fill of [0x00, 0xff]) {
      const secret = new Uint8Array(32).fill(fill)
      expect(parseToken(encodeToken(secret)).secret).toEqual(secret)
    }
  })

  it('accepts surrounding whitespace and an all-uppercase copy (QR alphanumeric mode)', () => {
    const token = generateToken(seededRandom(7))
    expect(parseToken(`  ${token}\n`).text).toBe(token)
    expect(parseToken(token.toUpperCase()).text).toBe(token)
  })

  it('pins the encoding of a fixed secret', () => {
    const secret = new Uint8Array(32).map((_, i) => i)
    expect(encodeToken(secret)).toBe('kp1pqqqsyqcyq5rqwzqfpg9scrgwpugpzysnzs23v9ccrydpk8qarc0sjxjhvy')
  })

  it('refuses to encode a secret of the wrong size', () => {
    expect(() => encodeToken(new Uint8Array(31))).toThrow(RangeError)
  })
})

describe('every single-character substitution is rejected', () => {
  for (const seed of [1, 2, 3]) {
    it(`token from seed ${seed}: every position × every alphabet character`, () => {
      const token = generateToken(seededRandom(seed))
      const alphabet = new Set([...BECH32_ALPHABET, ...'kp1', ...'bio'])
      let tried = 0
      for (let i = 0; i < token.length; i++) {
        for (const c of alphabet) {
          if (c === token[i]) continue
          const changed = token.slice(0, i) + c + token.slice(i + 1)
          let error: unknown
          try { parseToken(changed) } catch (err) { error = err }
          expect(error, `${changed} (position ${i + 1} → ${c})`).toBeInstanceOf(TokenError)
          expect(error).toBeInstanceOf(InputError)
          // After the prefix, an alphabet character can only be caught by the checksum.
          if (i >= TOKEN_PREFIX.length && BECH32_ALPHABET.includes(c)) {
            expect((error as Error).name).toBe('TokenChecksumError')
            expect(error).toBeInstanceOf(TokenChecksumError)
          }
          tried++
        }
      }
      expect(tried).toBe(token.length * (alphabet.size - 1))
    })
  }

  it('also rejects every adjacent transposition', () => {
    const token = generateToken(seededRandom(9))
    for (let i = TOKEN_PREFIX.length; i < token.length - 1; i++) {
      if (token[i] === token[i + 1]) continue
      const swapped = token.slice(0, i) + token[i + 1] + token[i] + token.slice(i + 2)
      expect(() => parseToken(swapped)).toThrow(TokenChecksumError)
    }
  })
})
