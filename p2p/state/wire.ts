/**
 * Wire format of one cluster-state entry (format 1). Binary, all integers unsigned
 * LEB128 varints, strings length-prefixed UTF-8:
 *
 * ```
 * header   u8      format = 1
 *          string  owner      canonical base58btc peer id of the writer (≤ 128 bytes)
 *          string  key        1–256 bytes, no control characters
 *          varint  version    1 … MAX_VERSION (2^48)
 *          varint  writtenAt  writer's wall clock, ms (informational), ≤ MAX_WRITTEN_AT
 * payload  12 B    nonce      random per entry
 *          bytes   ciphertext AES-256-GCM(stateKey, nonce, JSON(value), ad = header) ‖ 16 B tag
 * trailer  u8      sigLen     0 (unsigned, always refused) or 64
 *          sigLen  signature  Ed25519 by the owner over SIGN_DOMAIN ‖ header ‖ payload
 * ```
 *
 * The header is the AEAD's associated data, so a ciphertext cannot be moved to
 * another owner, key or version; the signature covers header and payload, so only
 * the owner can produce an entry for its own namespace. Nothing may follow the
 * signature. `decodeWire` never throws.
 */
import { createCipheriv, createDecipheriv, createHash, createPublicKey, verify, type KeyObject } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import type { JsonValue } from '../types.ts'
import { ByteReader, ByteWriter, utf8Length } from './codec.ts'

/** Format byte of entries written by this code. */
export const WIRE_FORMAT = 1
/** Domain separation for entry signatures, so they can never be confused with other uses of the peer key. */
export const SIGN_DOMAIN = new TextEncoder().encode('kairos-p2p/state-entry/1\u0000')
/** Longest key, in UTF-8 bytes. */
export const MAX_KEY_BYTES = 256
/** Longest owner string, in UTF-8 bytes. */
export const MAX_OWNER_BYTES = 128
/**
 * Largest entry version accepted or written: a node writing a thousand versions a
 * second takes 8 900 years to reach it, and everything that adds to a version stays a
 * safe integer. @default 2^48
 */
export const MAX_VERSION = 2 ** 48
/** Latest `writtenAt` accepted, ms since the epoch (the year 10 000). */
export const MAX_WRITTEN_AT = 253_402_300_800_000
/** AES-GCM nonce length. */
export const NONCE_BYTES = 12
/** AES-GCM tag length. */
export const TAG_BYTES = 16
/** Ed25519 signature length. */
export const SIGNATURE_BYTES = 64
/** Length of the network state key (AES-256). */
export const STATE_KEY_BYTES = 32

/** The fields of a decoded entry, before verification and decryption. */
export interface WireFields {
  owner: string
  key: string
  version: number
  writtenAt: number
  nonce: Uint8Array
  ciphertext: Uint8Array
}

/** A structurally valid wire entry: its fields and the byte ranges the crypto needs. */
export interface DecodedWire extends WireFields {
  /** The header bytes (AEAD associated data). */
  header: Uint8Array
  /** Header and payload: what the signature covers (after SIGN_DOMAIN). */
  body: Uint8Array
  /** Empty when the entry is unsigned. */
  signature: Uint8Array
}

/** Why `key` is not a valid state key, or undefined when it is. */
export function keyProblem (key: unknown): string | undefined {
  if (typeof key !== 'string') return `expected a string, got ${typeof key}`
  if (key.length === 0) return 'expected a non-empty string'
  const n = utf8Length(key)
  if (n > MAX_KEY_BYTES) return `expected at most ${MAX_KEY_BYTES} UTF-8 bytes, got ${n}`
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(key)) return 'expected no control characters'
  return undefined
}

/** Encodes the header: format, owner, key, version, writtenAt. */
export function encodeHeader (owner: string, key: string, version: number, writtenAt: number): Uint8Array {
  return new ByteWriter().u8(WIRE_FORMAT).string(owner).string(key).varint(version).varint(writtenAt).finish()
}

/** Encodes a full entry from its header, payload and signature (empty = unsigned). */
export function encodeWire (header: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, signature: Uint8Array): Uint8Array {
  const w = new ByteWriter().raw(header).raw(nonce).bytes(ciphertext)
  return w.u8(signature.length).raw(signature).finish()
}

/** Header and payload without the trailer: what gets signed. */
export function encodeBody (header: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  return new ByteWriter().raw(header).raw(nonce).bytes(ciphertext).finish()
}

/** Parses an entry's structure. Returns undefined for anything malformed; never throws. */
export function decodeWire (bytes: Uint8Array): DecodedWire | undefined {
  try {
    const r = new ByteReader(bytes)
    if (r.u8() !== WIRE_FORMAT) return undefined
    const owner = r.string(MAX_OWNER_BYTES)
    const key = r.string(MAX_KEY_BYTES)
    if (keyProblem(key) !== undefined) return undefined
    const version = r.varint()
    if (version < 1 || version > MAX_VERSION) return undefined
    const writtenAt = r.varint()
    if (writtenAt > MAX_WRITTEN_AT) return undefined
    const headerEnd = r.offset
    const nonce = r.raw(NONCE_BYTES)
    const ciphertext = r.bytes(bytes.length)
    if (ciphertext.length < TAG_BYTES) return undefined
    const bodyEnd = r.offset
    const sigLen = r.u8()
    if (sigLen !== 0 && sigLen !== SIGNATURE_BYTES) return undefined
    const signature = r.raw(sigLen)
    r.end()
    return {
      owner,
      key,
      version,
      writtenAt,
      nonce,
      ciphertext,
      header: bytes.subarray(0, headerEnd),
      body: bytes.subarray(0, bodyEnd),
      signature
    }
  } catch {
    // Only CodecError can come from the reader; anything else would be a bug, and a
    // wire entry must still never throw out of the decoder.
    return undefined
  }
}

/** The bytes an owner signs for a body. */
export function signedBytes (body: Uint8Array): Uint8Array {
  const out = new Uint8Array(SIGN_DOMAIN.length + body.length)
  out.set(SIGN_DOMAIN)
  out.set(body, SIGN_DOMAIN.length)
  return out
}

/** Encrypts `value` as JSON under the state key, bound to `header`. */
export function sealValue (stateKey: Uint8Array, header: Uint8Array, nonce: Uint8Array, value: JsonValue): Uint8Array {
  const cipher = createCipheriv('aes-256-gcm', stateKey, nonce, { authTagLength: TAG_BYTES })
  cipher.setAAD(header)
  const plaintext = Buffer.from(JSON.stringify(value), 'utf8')
  const out = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()])
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
}

/**
 * Decrypts a payload. Returns `undecryptable` when the tag does not verify (wrong
 * network key, tampered ciphertext or header) and `malformed` when the plaintext is
 * not JSON. Never throws.
 */
export function openValue (stateKey: Uint8Array, wire: DecodedWire): { value: JsonValue } | { problem: 'undecryptable' | 'malformed' } {
  let plaintext: Buffer
  try {
    const cut = wire.ciphertext.length - TAG_BYTES
    const decipher = createDecipheriv('aes-256-gcm', stateKey, wire.nonce, { authTagLength: TAG_BYTES })
    decipher.setAAD(wire.header)
    decipher.setAuthTag(wire.ciphertext.subarray(cut))
    plaintext = Buffer.concat([decipher.update(wire.ciphertext.subarray(0, cut)), decipher.final()])
  } catch {
    return { problem: 'undecryptable' }
  }
  try {
    return { value: deepFreeze(JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(plaintext)) as JsonValue) }
  } catch {
    return { problem: 'malformed' }
  }
}

/** `openValue` under each key in turn: the first that authenticates wins (a rotation's grace holds two). */
export function openValueWith (keys: readonly Uint8Array[], wire: DecodedWire): { value: JsonValue } | { problem: 'undecryptable' | 'malformed' } {
  let last: { value: JsonValue } | { problem: 'undecryptable' | 'malformed' } = { problem: 'undecryptable' }
  for (const key of keys) {
    last = openValue(key, wire)
    if (!('problem' in last) || last.problem !== 'undecryptable') return last
  }
  return last
}

/** SHA-256 of the exact wire bytes: the entry's identity for duplicates, tie-break and digests. */
export function hashWire (bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest())
}

/** DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410); the 32 raw key bytes follow. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

/**
 * The Ed25519 verification key behind a peer id string, as a Node key object (built
 * once per owner and cached by the store: building it costs as much as a verification),
 * or undefined when the string is not a canonical Ed25519 peer id (another spelling of
 * the same id would open a second namespace for the same owner).
 */
export function ownerPublicKey (owner: string): KeyObject | undefined {
  try {
    const id = peerIdFromString(owner)
    if (id.type !== 'Ed25519' || id.toString() !== owner) return undefined
    return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, id.publicKey.raw]), format: 'der', type: 'spki' })
  } catch {
    return undefined
  }
}

/** Everything needed to write one signed, encrypted entry. */
export interface WriteEntryInit {
  privateKey: PrivateKey
  owner: string
  key: string
  version: number
  writtenAt: number
  value: JsonValue
  stateKey: Uint8Array
  /** 12 fresh random bytes; reusing a nonce under the same state key breaks AES-GCM. */
  nonce: Uint8Array
}

/** Encrypts, signs and encodes one entry. */
export async function writeEntry (init: WriteEntryInit): Promise<Uint8Array> {
  const header = encodeHeader(init.owner, init.key, init.version, init.writtenAt)
  const ciphertext = sealValue(init.stateKey, header, init.nonce, init.value)
  const body = encodeBody(header, init.nonce, ciphertext)
  const signature = await init.privateKey.sign(signedBytes(body))
  return encodeWire(header, init.nonce, ciphertext, signature)
}

/** Checks the owner's signature over a decoded entry (`publicKey` from `ownerPublicKey`). Never throws. */
export function verifyWire (wire: DecodedWire, publicKey: KeyObject): boolean {
  try {
    return verify(null, signedBytes(wire.body), publicKey, wire.signature)
  } catch {
    return false
  }
}

/** Why `value` is not a JSON value (non-finite number, cycle, class instance…), or undefined. */
export function jsonValueProblem (value: unknown, path = 'value', seen = new Set<unknown>()): string | undefined {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return undefined
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : `${path}: expected a finite number, got ${value}`
  if (typeof value !== 'object') return `${path}: expected JSON, got ${typeof value}`
  if (seen.has(value)) return `${path}: expected a tree, found a cycle`
  seen.add(value)
  try {
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const p = jsonValueProblem(value[i], `${path}[${i}]`, seen)
        if (p !== undefined) return p
      }
      return undefined
    }
    const proto = Object.getPrototypeOf(value) as unknown
    if (proto !== Object.prototype && proto !== null) return `${path}: expected a plain object`
    for (const [k, v] of Object.entries(value)) {
      const p = jsonValueProblem(v, `${path}.${k}`, seen)
      if (p !== undefined) return p
    }
    return undefined
  } finally {
    seen.delete(value)
  }
}

function deepFreeze<T> (v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    for (const child of Object.values(v)) deepFreeze(child)
    Object.freeze(v)
  }
  return v
}
