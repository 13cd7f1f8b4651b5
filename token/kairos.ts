import { FAILSAFE_SCHEMA, load } from 'js-yaml'
import { errorMessage } from '../util/errors.ts'
import { showChar } from './format.ts'
import { KairosTokenBase64Error, KairosTokenError, KairosTokenYamlError, TokenTooLongError } from './errors.ts'
import type { KairosTokenSettings, NetworkToken } from './types.ts'

// An edgevpn/Kairos network token is standard base64 (with padding) of the YAML
// edgevpn's GenerateNewConnectionData marshals:
//
//   otp: {dht: {interval, key, length}, crypto: {interval, key, length}}
//   room, rendezvous, mdns, max_message_size
//
// We do not speak edgevpn's protocols; we take its secret fields as key material
// so a Kairos user keeps the token in their cloud-config and gets our network.

/** Version of the mapping from a Kairos token's fields to our key material. */
export const KAIROS_IMPORT_VERSION = 1

/** The secret fields, in the order they enter the key material. */
export const KAIROS_SECRET_KEYS = ['otp.dht.key', 'otp.crypto.key', 'room', 'rendezvous', 'mdns'] as const

/** edgevpn's defaults for the numeric fields, used when a token omits them. */
export const KAIROS_DEFAULTS = { interval: 9000, maxMessageSize: 20 << 20 } as const

const BASE64_CHAR = /[A-Za-z0-9+/=]/
/**
 * Longest Kairos/edgevpn token read, characters: edgevpn writes about 400; the bound
 * keeps a pasted file or a hostile config from costing seconds of decoding. @default 16384
 */
export const MAX_KAIROS_TOKEN_CHARS = 16_384

/**
 * Parses a Kairos/edgevpn network token (`text` trimmed). Line breaks are ignored,
 * as Go's base64 decoder does. Throws `KairosTokenBase64Error`,
 * `KairosTokenYamlError` or `KairosTokenError` (naming the key path).
 */
export function parseKairosToken (text: string): NetworkToken {
  const compact = text.replace(/[\r\n]/g, '')
  if (compact.length > MAX_KAIROS_TOKEN_CHARS) {
    throw new TokenTooLongError(`network token has ${compact.length} characters; a Kairos/edgevpn token has a few hundred (at most ${MAX_KAIROS_TOKEN_CHARS} read) — is something else pasted with it?`)
  }
  const yamlText = decodeBase64Text(compact)
  let doc: unknown
  try {
    doc = load(yamlText, { schema: FAILSAFE_SCHEMA, maxAliases: 0, maxDepth: 16 })
  } catch (err) {
    throw new KairosTokenYamlError(firstLine(errorMessage(err)), { cause: err })
  }
  if (!isMapping(doc)) {
    throw new KairosTokenYamlError(`it decodes to ${describe(doc)}; expected a mapping with otp, room, rendezvous and mdns`)
  }
  const secrets = KAIROS_SECRET_KEYS.map((path) => requireString(doc, path))
  const settings: KairosTokenSettings = {
    room: secrets[2] as string,
    rendezvous: secrets[3] as string,
    mdns: secrets[4] as string,
    dhtInterval: optionalInt(doc, 'otp.dht.interval', KAIROS_DEFAULTS.interval),
    cryptoInterval: optionalInt(doc, 'otp.crypto.interval', KAIROS_DEFAULTS.interval),
    maxMessageSize: optionalInt(doc, 'max_message_size', KAIROS_DEFAULTS.maxMessageSize)
  }
  return {
    kind: 'kairos',
    version: KAIROS_IMPORT_VERSION,
    text: compact,
    secret: kairosKeyMaterial(secrets),
    kairos: settings
  }
}

/**
 * Key material of a Kairos token: each secret field (in `KAIROS_SECRET_KEYS`
 * order) as a 4-byte big-endian length and its UTF-8 bytes, so no two different
 * field sets encode alike.
 */
export function kairosKeyMaterial (fields: readonly string[]): Uint8Array {
  const parts = fields.map((f) => Buffer.from(f, 'utf8'))
  const out = Buffer.alloc(parts.reduce((n, p) => n + 4 + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.writeUInt32BE(p.length, at)
    p.copy(out, at + 4)
    at += 4 + p.length
  }
  return new Uint8Array(out)
}

function decodeBase64Text (compact: string): string {
  for (let i = 0; i < compact.length; i++) {
    const c = compact[i] as string
    if (!BASE64_CHAR.test(c)) throw new KairosTokenBase64Error(`unexpected character ${showChar(c)} at position ${i + 1}`)
  }
  const pad = compact.indexOf('=')
  if (pad >= 0 && (pad < compact.length - 2 || !/^=+$/.test(compact.slice(pad)))) {
    throw new KairosTokenBase64Error(`padding '=' at position ${pad + 1} is not at the end`)
  }
  if (compact.length % 4 !== 0) {
    throw new KairosTokenBase64Error(`${compact.length} characters is not a multiple of 4 — truncated?`)
  }
  const bytes = Buffer.from(compact, 'base64')
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    throw new KairosTokenYamlError('the decoded bytes are not UTF-8 text')
  }
}

type Mapping = Record<string, unknown>

function isMapping (v: unknown): v is Mapping {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function describe (v: unknown): string {
  if (v === null || v === undefined) return 'an empty document'
  if (Array.isArray(v)) return 'a list'
  if (isMapping(v)) return 'a mapping'
  return 'a plain string'
}

function firstLine (s: string): string {
  return s.split('\n')[0] ?? s
}

/** The value at a dotted path; a non-mapping on the way is an error naming that part. */
function lookup (doc: Mapping, path: string): unknown {
  const parts = path.split('.')
  let node: unknown = doc
  for (let i = 0; i < parts.length; i++) {
    if (node === null || node === undefined) return undefined
    if (!isMapping(node)) {
      const where = parts.slice(0, i).join('.')
      throw new KairosTokenError(path, `${where} must be a mapping (it holds ${parts.slice(i).join('.')}), got ${describe(node)}`)
    }
    node = Object.hasOwn(node, parts[i] as string) ? node[parts[i] as string] : undefined
  }
  return node
}

function requireString (doc: Mapping, path: string): string {
  const v = lookup(doc, path)
  if (v === undefined || v === null) throw new KairosTokenError(path, `missing key ${path} (expected a non-empty string)`)
  if (typeof v !== 'string') throw new KairosTokenError(path, `${path} must be a string, got ${describe(v)}`)
  if (v === '') throw new KairosTokenError(path, `${path} is empty; expected a non-empty string`)
  return v
}

function optionalInt (doc: Mapping, path: string, fallback: number): number {
  const v = lookup(doc, path)
  if (v === undefined || v === null || v === '') return fallback
  if (typeof v !== 'string' || !/^\d{1,15}$/.test(v)) {
    throw new KairosTokenError(path, `${path} must be a non-negative integer, got ${typeof v === 'string' ? `'${v.slice(0, 20)}'` : describe(v)}`)
  }
  return Number(v)
}
