import { X509Certificate, createCipheriv, createDecipheriv, createHash, createPrivateKey, createPublicKey, diffieHellman, hkdfSync, type KeyObject } from 'node:crypto'
import { chmod, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { createFileDurableSync } from '../util/atomic-file.ts'
import { KairosError, errorMessage } from '../util/errors.ts'
import { cryptoRandom, type RandomSource } from '../util/random.ts'

/**
 * k3s join credentials: generation of the server and agent tokens on the init
 * server, and sealing of each copy to the one node that may read it.
 *
 * A sealed box is ECIES over X25519: a fresh ephemeral key per box, HKDF-SHA256
 * over the shared secret (salted with both public keys), AES-256-GCM with the
 * recipient's and the ephemeral public key as additional data. Binding both keys
 * matters: X25519 ignores the top bit of a public key, so without the binding a
 * box could be altered in that bit and still open; with it any change fails.
 */

/** Bytes of randomness in each generated k3s token. @default 32 (256 bits) */
export const CLUSTER_SECRET_BYTES = 32

/** File in the state dir holding this node's sealing key (mode 0600). */
export const SEAL_KEY_FILE = 'seal-key.json'

const SEAL_VERSION = 1
const SEAL_LABEL = 'kairos-p2p/seal/v1'
const NONCE_BYTES = 12
const TAG_BYTES = 16
const KEY_BYTES = 32
// DER wrappers turning a raw 32-byte X25519 key into the forms node:crypto imports.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex')
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex')

/** The k3s secrets the init server creates before k3s starts. */
export interface ClusterSecrets {
  /** `--token`: joins servers (and would join agents); only servers receive it. */
  serverToken: string
  /** `--agent-token`: joins agents only; what agents receive. */
  agentToken: string
}

/**
 * A copy of a secret that only the holder of one X25519 key can open.
 * Plain JSON, so it can be written into the cluster state as is.
 */
export type SealedBox = {
  /** Format version. */
  v: 1
  /** Ephemeral X25519 public key, base64 of the raw 32 bytes. */
  epk: string
  /** AES-256-GCM nonce, base64 of 12 bytes. */
  nonce: string
  /** Ciphertext followed by the 16-byte GCM tag, base64. */
  ct: string
}

/** This node's sealing identity. The private half never leaves this object. */
export interface SealKeys {
  /** X25519 public key, base64 of the raw 32 bytes; publish it so others can seal to it. */
  readonly publicKey: string
  /** Opens a box sealed to `publicKey`; throws `SealError` on a wrong key or any tampering. */
  open(box: SealedBox): string
}

/** Options of `createSealKeys`. */
export interface SealKeysOptions {
  /** Source of the private key when one is created. @default cryptoRandom */
  random?: RandomSource
}

/** Why a box could not be opened. */
export type SealErrorReason = 'malformed' | 'unsupported-version' | 'authentication-failed'

/** A sealed box that cannot be opened: malformed, of an unknown version, for another key, or altered. */
export class SealError extends KairosError {
  readonly reason: SealErrorReason

  constructor (reason: SealErrorReason, message: string, options: { cause?: unknown } = {}) {
    super(message, options)
    this.name = 'SealError'
    this.reason = reason
  }
}

/** Unusable key material: a recipient public key that is not 32 raw bytes, or an unreadable key file. */
export class SealKeyError extends KairosError {
  constructor (message: string, options: { cause?: unknown, exitCode?: number } = {}) {
    super(message, options)
    this.name = 'SealKeyError'
  }
}

/**
 * Generates the k3s server token and the separate agent token, each
 * `CLUSTER_SECRET_BYTES` of randomness as lowercase hex (64 characters): a
 * charset k3s takes verbatim in `--token`, config.yaml and environment files,
 * with no `:` that k3s would parse as a `K10…::user:secret` token.
 * Use `cryptoRandom` in production; a seeded source only in the simulation.
 */
export function generateClusterSecrets (random: RandomSource): ClusterSecrets {
  const serverToken = hex(random.bytes(CLUSTER_SECRET_BYTES))
  let agentToken = hex(random.bytes(CLUSTER_SECRET_BYTES))
  // Equal tokens would let an agent join as a server; only a broken source gets here.
  while (agentToken === serverToken) agentToken = hex(random.bytes(CLUSTER_SECRET_BYTES))
  return { serverToken, agentToken }
}

/**
 * The hash k3s pins its cluster CA by in its secure join token (`K10<hash>::…`), as
 * k3s computes it over the bundle it serves at `/cacerts` (the content of
 * `<data-dir>/server/tls/server-ca.crt`), lowercase hex: sha256 of the file's bytes
 * when it holds one certificate (k3s's own self-signed CA); for a bundle of several
 * (a custom CA with intermediates), sha256 of the DER of the root that the first
 * certificate chains to through the others, so a renewed intermediate keeps the pin.
 * Unlike k3s, the chain is checked by signatures alone, not validity dates.
 * Throws `CaBundleError` when `pem` holds no certificate.
 */
export function caHashOf (pem: string | Uint8Array): string {
  const bytes = Buffer.from(pem)
  const certs = pemCertificates(bytes)
  const root = certs.length > 1 ? chainRoot(certs) : undefined
  return createHash('sha256').update(root?.raw ?? bytes).digest('hex')
}

/** A CA bundle with no certificate in it, or one that does not parse. */
export class CaBundleError extends KairosError {
  constructor (message: string, options: { cause?: unknown } = {}) {
    super(message, options)
    this.name = 'CaBundleError'
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g

/** The certificates of a PEM bundle, in order; `CaBundleError` when there is none or one does not parse. */
export function pemCertificates (pem: string | Uint8Array): X509Certificate[] {
  const blocks = Buffer.from(pem).toString('latin1').match(PEM_CERTIFICATE) ?? []
  if (blocks.length === 0) throw new CaBundleError('CA bundle: expected PEM certificates (-----BEGIN CERTIFICATE-----), found none')
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block)
    } catch (err) {
      throw new CaBundleError(`CA bundle: certificate ${i + 1} of ${blocks.length} does not parse: ${errorMessage(err)}`, { cause: err })
    }
  })
}

/** The self-signed root the first certificate chains to through the others, or undefined. */
function chainRoot (certs: X509Certificate[]): X509Certificate | undefined {
  const [leaf, ...rest] = certs as [X509Certificate, ...X509Certificate[]]
  const selfSigned = (c: X509Certificate): boolean => c.checkIssued(c) && c.verify(c.publicKey)
  let cur = leaf
  for (let hops = 0; hops < rest.length; hops++) {
    const issuer = rest.find((c) => c !== cur && cur.checkIssued(c) && cur.verify(c.publicKey))
    if (issuer === undefined) return undefined
    if (selfSigned(issuer)) return issuer
    cur = issuer
  }
  return undefined
}

/**
 * Why `publicKey` cannot be sealed to, or undefined when it can: it must be canonical
 * base64 of 32 raw bytes and not a low-order point. A key of the small subgroup makes
 * every Diffie-Hellman with it all zeros (tested with one fixed clamped scalar: any
 * scalar gives zeros on such a point), so no box can ever be sealed to it; a node that
 * advertises one is treated as having no `roles/node` entry at all.
 */
export function sealKeyProblem (publicKey: string): string | undefined {
  if (publicKey.length !== KEY_BASE64_CHARS) return `it is ${publicKey.length} characters; base64 of a ${KEY_BYTES}-byte X25519 key is ${KEY_BASE64_CHARS}`
  const cached = keyProblems.get(publicKey)
  if (cached !== undefined) return cached === '' ? undefined : cached
  const problem = checkSealKey(publicKey)
  if (keyProblems.size >= KEY_PROBLEM_CACHE) keyProblems.clear()
  keyProblems.set(publicKey, problem ?? '')
  return problem
}

/** Verdicts of `sealKeyProblem` by key ('' = usable): each node's key is checked once, not on every decision. */
const keyProblems = new Map<string, string>()
const KEY_PROBLEM_CACHE = 4096
const KEY_BASE64_CHARS = 44
/** A fixed clamped X25519 scalar (RFC 7748): what the low-order test multiplies by. */
const PROBE_SCALAR = (() => {
  const raw = Buffer.alloc(KEY_BYTES, 0x5a)
  raw[0] = (raw[0] as number) & 248
  raw[31] = ((raw[31] as number) & 127) | 64
  return raw
})()
let probeKey: KeyObject | undefined

function checkSealKey (publicKey: string): string | undefined {
  const raw = strictBase64(publicKey)
  if (raw === undefined) return 'it is not canonical base64'
  if (raw.length !== KEY_BYTES) return `it is ${raw.length} bytes; an X25519 public key is ${KEY_BYTES}`
  let key: KeyObject
  try {
    key = publicKeyFromRaw(raw)
  } catch (err) {
    return `it is not an X25519 public key (${errorMessage(err)})`
  }
  const lowOrder = 'it is a low-order point: every key agreement with it gives all zeros'
  probeKey ??= privateKeyFromRaw(PROBE_SCALAR)
  try {
    // OpenSSL refuses an all-zero result itself; the check below covers a library that does not.
    return isAllZero(diffieHellman({ privateKey: probeKey, publicKey: key })) ? lowOrder : undefined
  } catch {
    return lowOrder
  }
}

/**
 * Seals `plaintext` to the holder of `recipientPublicKey` (base64 raw X25519).
 * The ephemeral key and nonce come from `random`, so a seeded source gives the
 * same box every time (simulation); production uses the default.
 */
export function sealTo (recipientPublicKey: string, plaintext: string, random: RandomSource = cryptoRandom): SealedBox {
  const rpk = decodeKey(recipientPublicKey, 'recipient public key')
  const ephemeral = privateKeyFromRaw(random.bytes(KEY_BYTES))
  const epk = rawPublicKey(ephemeral)
  let shared: Buffer
  try {
    shared = diffieHellman({ privateKey: ephemeral, publicKey: publicKeyFromRaw(rpk) })
  } catch (err) {
    throw new SealKeyError(`cannot seal to recipient public key ${recipientPublicKey}: ${errorMessage(err)}`, { cause: err })
  }
  if (isAllZero(shared)) throw new SealKeyError(`cannot seal to recipient public key ${recipientPublicKey}: it is a low-order point`)
  const nonce = Buffer.from(random.bytes(NONCE_BYTES))
  const cipher = createCipheriv('aes-256-gcm', boxKey(shared, epk, rpk), nonce)
  cipher.setAAD(additionalData(rpk, epk))
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()])
  return { v: SEAL_VERSION, epk: epk.toString('base64'), nonce: nonce.toString('base64'), ct: ct.toString('base64') }
}

/** Who a credential is for: servers join with the server token, agents with the agent token. */
export type CredentialRole = 'server' | 'agent'

/**
 * One node's k3s join credential as published in the cluster state: the role in
 * clear (so readers can route it) and a box only the recipient can open. The box
 * repeats the role, so relabelling the outer field is detected on open.
 */
export type SealedCredential = {
  v: 1
  role: CredentialRole
  box: SealedBox
}

/** An opened credential. `agentToken` is present for servers only (k3s wants it equal on every server). */
export interface JoinCredential {
  role: CredentialRole
  /** `--token`: the server token for a server, the agent token for an agent. */
  token: string
  /** `--agent-token` for a server; never set for an agent. */
  agentToken?: string
}

/**
 * Seals the credential a node of `role` may hold to its public key: a server
 * gets the server token (and the agent token, which k3s wants identical on all
 * servers); an agent gets the agent token only, never anything that admits a
 * server or an admin.
 */
export function sealCredential (role: CredentialRole, secrets: ClusterSecrets, recipientPublicKey: string, random: RandomSource = cryptoRandom): SealedCredential {
  const inner: JoinCredential = role === 'server'
    ? { role, token: secrets.serverToken, agentToken: secrets.agentToken }
    : { role, token: secrets.agentToken }
  return { v: 1, role, box: sealTo(recipientPublicKey, JSON.stringify(inner), random) }
}

/**
 * Opens a credential read from the cluster state with this node's keys. Throws
 * `SealError` when it is not for this node, was altered, or its content does not
 * match its role (an agent credential carrying more than the agent token).
 */
export function openCredential (keys: SealKeys, value: unknown): JoinCredential {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SealError('malformed', `credential: expected an object {v, role, box}, got ${describe(value)}`)
  }
  const outer = value as Record<string, unknown>
  if (outer.v !== 1) throw new SealError('unsupported-version', `credential: expected version 1, got ${describe(outer.v)}`)
  if (outer.role !== 'server' && outer.role !== 'agent') throw new SealError('malformed', `credential: role must be server or agent, got ${describe(outer.role)}`)
  const text = keys.open(parseSealedBox(outer.box))
  let inner: Partial<JoinCredential>
  try {
    inner = JSON.parse(text) as Partial<JoinCredential>
  } catch (err) {
    throw new SealError('malformed', 'credential: sealed content is not JSON', { cause: err })
  }
  const shapeOk = inner.role === outer.role && typeof inner.token === 'string' && inner.token !== '' &&
    (inner.role === 'server' ? typeof inner.agentToken === 'string' : inner.agentToken === undefined)
  if (!shapeOk) throw new SealError('malformed', `credential: sealed content does not match a ${String(outer.role)} credential`)
  return inner.role === 'server'
    ? { role: 'server', token: inner.token as string, agentToken: inner.agentToken as string }
    : { role: 'agent', token: inner.token as string }
}

/**
 * Checks that `value` (for example read from the cluster state) is a sealed box
 * of a version we open; throws `SealError` naming what is wrong otherwise.
 */
export function parseSealedBox (value: unknown): SealedBox {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SealError('malformed', `sealed box: expected an object {v, epk, nonce, ct}, got ${describe(value)}`)
  }
  const box = value as Record<string, unknown>
  if (box.v !== SEAL_VERSION) {
    throw new SealError('unsupported-version', `sealed box: expected version ${SEAL_VERSION}, got ${describe(box.v)}`)
  }
  for (const field of ['epk', 'nonce', 'ct'] as const) {
    if (typeof box[field] !== 'string') throw new SealError('malformed', `sealed box: field ${field} must be a base64 string, got ${describe(box[field])}`)
  }
  return { v: SEAL_VERSION, epk: box.epk as string, nonce: box.nonce as string, ct: box.ct as string }
}

/**
 * This node's sealing key pair. With `stateDir` the private key is kept in
 * `<stateDir>/seal-key.json` (mode 0600), created on first use and reused after
 * a restart, so boxes sealed before a reboot still open; without it the key
 * lives in memory only.
 */
export async function createSealKeys (stateDir?: string, options: SealKeysOptions = {}): Promise<SealKeys> {
  const random = options.random ?? cryptoRandom
  if (stateDir === undefined) return memorySealKeys(random)
  return sealKeysFromRaw(await loadOrCreateKey(stateDir, random))
}

/**
 * A sealing key pair that lives in memory only, drawn from `random`. Synchronous,
 * for the simulation's seeded nodes; a node uses `createSealKeys`.
 */
export function memorySealKeys (random: RandomSource = cryptoRandom): SealKeys {
  return sealKeysFromRaw(random.bytes(KEY_BYTES))
}

function sealKeysFromRaw (raw: Uint8Array): SealKeys {
  const privateKey = privateKeyFromRaw(raw)
  const own = rawPublicKey(privateKey)
  return {
    publicKey: own.toString('base64'),
    open: (input) => openBox(privateKey, own, input)
  }
}

function openBox (privateKey: KeyObject, own: Buffer, input: SealedBox): string {
  const box = parseSealedBox(input)
  const epk = decodeField(box.epk, 'epk')
  const nonce = decodeField(box.nonce, 'nonce')
  const ct = decodeField(box.ct, 'ct')
  if (epk.length !== KEY_BYTES) throw new SealError('malformed', `sealed box: epk must be ${KEY_BYTES} bytes, got ${epk.length}`)
  if (nonce.length !== NONCE_BYTES) throw new SealError('malformed', `sealed box: nonce must be ${NONCE_BYTES} bytes, got ${nonce.length}`)
  if (ct.length < TAG_BYTES) throw new SealError('malformed', `sealed box: ct must hold at least the ${TAG_BYTES}-byte tag, got ${ct.length} bytes`)
  let shared: Buffer
  try {
    shared = diffieHellman({ privateKey, publicKey: publicKeyFromRaw(epk) })
  } catch (err) {
    throw new SealError('authentication-failed', 'sealed box: key agreement with its ephemeral key failed', { cause: err })
  }
  if (isAllZero(shared)) throw new SealError('authentication-failed', 'sealed box: ephemeral key is a low-order point')
  try {
    const decipher = createDecipheriv('aes-256-gcm', boxKey(shared, epk, own), nonce)
    decipher.setAAD(additionalData(own, epk))
    decipher.setAuthTag(ct.subarray(ct.length - TAG_BYTES))
    const plain = Buffer.concat([decipher.update(ct.subarray(0, ct.length - TAG_BYTES)), decipher.final()])
    return new TextDecoder('utf-8', { fatal: true }).decode(plain)
  } catch (err) {
    throw new SealError('authentication-failed', 'sealed box: not sealed to this node\'s key, or altered', { cause: err })
  }
}

async function loadOrCreateKey (stateDir: string, random: RandomSource): Promise<Uint8Array> {
  const file = join(stateDir, SEAL_KEY_FILE)
  const existing = await readKeyFile(file)
  if (existing !== undefined) return existing
  const raw = random.bytes(KEY_BYTES)
  // Created once, durably (fsync of the file and its directory), and linked into
  // place: link never replaces an existing file, so two racing starts agree on
  // whichever key landed first, and a power cut leaves no file or the whole key.
  try {
    createFileDurableSync(file, JSON.stringify({ v: 1, x25519: Buffer.from(raw).toString('base64') }) + '\n', 0o600)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new SealKeyError(`cannot write seal key ${file}: ${errorMessage(err)}`, { cause: err })
    const winner = await readKeyFile(file)
    if (winner !== undefined) return winner
    throw new SealKeyError(`seal key ${file} vanished while being created`, { cause: err })
  }
  return raw
}

async function readKeyFile (file: string): Promise<Uint8Array | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new SealKeyError(`cannot read seal key ${file}: ${errorMessage(err)}`, { cause: err })
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw new SealKeyError(`seal key ${file} is not JSON; expected {"v":1,"x25519":"<base64>"} (restore it from a backup, or move it away to create a new key)`, { cause: err, exitCode: 2 })
  }
  const key = (parsed as { x25519?: unknown } | null)?.x25519
  const raw = typeof key === 'string' && (parsed as { v?: unknown }).v === 1 ? strictBase64(key) : undefined
  if (raw?.length !== KEY_BYTES) throw new SealKeyError(`seal key ${file} is damaged; expected {"v":1,"x25519":"<base64 of ${KEY_BYTES} bytes>"} (restore it from a backup, or move it away to create a new key)`, { exitCode: 2 })
  // A key file readable by others is repaired rather than trusted as is.
  if (((await stat(file)).mode & 0o077) !== 0) await chmod(file, 0o600)
  return raw
}

function boxKey (shared: Buffer, epk: Buffer, rpk: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, Buffer.concat([epk, rpk]), `${SEAL_LABEL} aes-256-gcm`, 32))
}

function additionalData (rpk: Buffer, epk: Buffer): Buffer {
  return Buffer.concat([Buffer.from(SEAL_LABEL, 'utf8'), rpk, epk])
}

function privateKeyFromRaw (raw: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' })
}

function publicKeyFromRaw (raw: Buffer): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' })
}

function rawPublicKey (privateKey: KeyObject): Buffer {
  return createPublicKey(privateKey).export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.length)
}

function decodeKey (text: string, what: string): Buffer {
  const raw = strictBase64(text)
  if (raw?.length !== KEY_BYTES) throw new SealKeyError(`${what}: expected base64 of ${KEY_BYTES} raw X25519 bytes, got ${JSON.stringify(text)}`)
  return raw
}

function decodeField (text: string, field: string): Buffer {
  const raw = strictBase64(text)
  if (raw === undefined) throw new SealError('malformed', `sealed box: field ${field} is not canonical base64`)
  return raw
}

/** Decodes base64 only when it is canonical (Buffer.from alone skips junk characters). */
function strictBase64 (text: string): Buffer | undefined {
  const raw = Buffer.from(text, 'base64')
  return raw.toString('base64') === text ? raw : undefined
}

function isAllZero (bytes: Uint8Array): boolean {
  return bytes.every((b) => b === 0)
}

function hex (bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex')
}

function describe (value: unknown): string {
  if (value === undefined) return 'nothing'
  const text = JSON.stringify(value)
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}
