/**
 * The k3s stand-in's registration protocol and registry: constants, records, errors,
 * the token check and the server's (pure) decision on a registration, and the registry
 * and record files. Server in `standin-server.ts`, client in `standin-client.ts`, the
 * installer and command line in `k3s-standin.ts`.
 */
import { timingSafeEqual } from 'node:crypto'
import { readFile, rename, writeFile } from 'node:fs/promises'
import { isIP } from 'node:net'
import { InputError, KairosError, errorMessage } from '../util/errors.ts'

/** The k3s supervisor port. */
export const STANDIN_PORT = 6443
/** Registry file name inside the stand-in dir. */
export const REGISTRY_FILE = 'registry.json'
/** Running server's record (PID, address) inside the stand-in dir. */
export const SERVER_FILE = 'server.json'
/** The init server's tokens (mode 0600), kept like k3s keeps its token file, so the lab can restart the server. */
export const TOKENS_FILE = 'tokens.json'
/** Largest registration body accepted, bytes. */
export const MAX_BODY_BYTES = 16 * 1024
/** Where a k3s server serves its cluster CA bundle, unauthenticated, for joiners to check against their token. */
export const CACERTS_PATH = '/cacerts'
/** What install writes the k3s configuration it was given to, in the stand-in dir (as k3s reads /etc/rancher/k3s/config.yaml). */
export const CONFIG_FILE = 'config.yaml'

/** How a node registers: a k3s server or a k3s agent. */
export type NodeRole = 'server' | 'agent'

/** One registered node. */
export interface RegisteredNode {
  name: string
  role: NodeRole
  /** Address the node says it has (KAIROS_NODE_IP). */
  nodeIp: string
  /** Source address the registration came from; equal to `nodeIp` when it came through the overlay. */
  remoteAddress: string
  /** Wall-clock ms of the first registration. */
  registeredAt: number
  /** The cluster-init server itself. */
  init: boolean
}

/** The stand-in's persisted registry: the lab's `kubectl get nodes`. */
export interface StandinRegistry {
  version: 1
  server: { name: string, address: string, port: number, startedAt: number }
  nodes: RegisteredNode[]
}

/** Tokens a server accepts. */
export interface StandinTokens {
  /** k3s server token: servers and agents. */
  server: string
  /** k3s agent token: agents only. */
  agent?: string
}

/** What a registration asks for. */
export interface RegistrationRequest {
  name: string
  role: NodeRole
  nodeIp: string
  init?: boolean
}

/** The server's answer to one registration: the new registry, or the HTTP status and reason of a refusal. */
export type RegistrationDecision =
  | { ok: true, status: 200 | 201, registry: StandinRegistry, node: RegisteredNode }
  | { ok: false, status: 400 | 401 | 403, reason: string }

/** Bad stand-in input: environment, arguments or a registration body. */
export class StandinInputError extends InputError {
  constructor (message: string) {
    super(message)
    this.name = 'StandinInputError'
  }
}

/** The server refused the registration (wrong token or role); retrying will not help. */
export class StandinRefusedError extends KairosError {
  readonly status: number
  constructor (url: string, status: number, reason: string) {
    super(`k3s stand-in at ${url} refused the registration: HTTP ${status} ${reason}`)
    this.name = 'StandinRefusedError'
    this.status = status
  }
}

/**
 * The server's CA does not hash to the one the secure token pins: the joiner refuses
 * to send its token, as k3s does, in k3s's words.
 */
export class StandinCaMismatchError extends KairosError {
  constructor (url: string, pinned: string, served: string) {
    super(`k3s stand-in at ${url}: failed to validate token: token CA hash does not match the Cluster CA certificate hash: ${pinned} != ${served}`)
    this.name = 'StandinCaMismatchError'
  }
}

/** The stand-in could not create or read its cluster CA. */
export class StandinCaError extends KairosError {
  constructor (message: string, options: { cause?: unknown } = {}) {
    super(message, options)
    this.name = 'StandinCaError'
  }
}

/** A k3s join token taken apart: the CA hash it pins (secure format only) and the secret sent to the server. */
export interface JoinToken {
  /** sha256 of the cluster CA, lowercase hex; absent for a short token. */
  caHash?: string
  /** `server` or `node` in a secure token; absent for a short one. */
  user?: string
  /** What the server checks: the password part of a secure token, or the short token itself. */
  secret: string
}

/**
 * Parses a join token as k3s does: `K10<ca hash>::<user>:<secret>` (secure, the hash
 * 64 characters or empty), or any other string as a short token. Throws
 * StandinInputError with k3s's words for a malformed secure token.
 */
export function parseJoinToken (token: string): JoinToken {
  if (token === '') throw new StandinInputError('token must not be empty')
  if (!token.startsWith('K10')) return { secret: token }
  const rest = token.slice(3)
  const sep = rest.indexOf('::')
  const hash = sep < 0 ? '' : rest.slice(0, sep)
  const creds = sep < 0 ? rest : rest.slice(sep + 2)
  // As k3s: only the length is checked here; the hash is compared as written.
  if (hash !== '' && hash.length !== 64) throw new StandinInputError('invalid token CA hash length')
  const colon = creds.indexOf(':')
  if (colon < 0 || colon === creds.length - 1) throw new StandinInputError('invalid token format')
  return { ...(hash === '' ? {} : { caHash: hash }), user: creds.slice(0, colon), secret: creds.slice(colon + 1) }
}

/** Registration did not succeed before the deadline. */
export class StandinTimeoutError extends KairosError {
  constructor (url: string, timeoutMs: number, last: string) {
    super(`k3s stand-in at ${url} not reachable within ${timeoutMs} ms (last error: ${last})`)
    this.name = 'StandinTimeoutError'
  }
}

/** Compares two tokens in constant time (for equal lengths). */
export function tokenEquals (a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/** Validates a registration body; throws StandinInputError naming the field. */
export function parseRegistration (body: unknown): RegistrationRequest {
  if (typeof body !== 'object' || body === null) throw new StandinInputError('registration body must be a JSON object with name, role and nodeIp')
  const b = body as Record<string, unknown>
  if (typeof b.name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/.test(b.name)) {
    throw new StandinInputError(`registration field 'name' ${JSON.stringify(b.name)} is invalid; expected a node name of [A-Za-z0-9.-], at most 63 characters`)
  }
  if (b.role !== 'server' && b.role !== 'agent') {
    throw new StandinInputError(`registration field 'role' ${JSON.stringify(b.role)} is invalid; expected 'server' or 'agent'`)
  }
  if (typeof b.nodeIp !== 'string' || isIP(b.nodeIp) === 0) {
    throw new StandinInputError(`registration field 'nodeIp' ${JSON.stringify(b.nodeIp)} is invalid; expected an IP address`)
  }
  return { name: b.name, role: b.role, nodeIp: b.nodeIp, init: b.init === true }
}

/**
 * The server's decision on one registration (pure): token check as k3s does it, then
 * insert or refresh the node. A node keeps its first registration time.
 */
export function decideRegistration (registry: StandinRegistry, body: unknown, presented: string | undefined, tokens: StandinTokens, remoteAddress: string, now: number): RegistrationDecision {
  if (presented === undefined || presented === '') return { ok: false, status: 401, reason: 'no token presented' }
  const isServerToken = tokenEquals(presented, tokens.server)
  const isAgentToken = tokens.agent !== undefined && tokens.agent !== '' && tokenEquals(presented, tokens.agent)
  if (!isServerToken && !isAgentToken) return { ok: false, status: 401, reason: 'token not accepted' }
  let req: RegistrationRequest
  try {
    req = parseRegistration(body)
  } catch (err) {
    return { ok: false, status: 400, reason: errorMessage(err) }
  }
  if (req.role === 'server' && !isServerToken) return { ok: false, status: 403, reason: 'a server must present the server token' }
  const previous = registry.nodes.find((n) => n.name === req.name)
  const node: RegisteredNode = {
    name: req.name,
    role: req.role,
    nodeIp: req.nodeIp,
    remoteAddress,
    registeredAt: previous?.registeredAt ?? now,
    init: req.init === true && isServerToken && req.role === 'server'
  }
  const nodes = [...registry.nodes.filter((n) => n.name !== req.name), node].sort((a, b) => a.name.localeCompare(b.name))
  return { ok: true, status: previous === undefined ? 201 : 200, registry: { ...registry, nodes }, node }
}

/** Retry delay before attempt `attempt` (0-based): doubling from `initialMs`, capped at `maxMs`. */
export function backoffDelay (attempt: number, initialMs = 100, maxMs = 2000): number {
  return Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 20))
}

/** Reads a registry file, or undefined when it does not exist. */
export async function readRegistry (path: string): Promise<StandinRegistry | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as StandinRegistry
  } catch {
    return undefined
  }
}

/** Writes `value` as JSON through a temporary file and a rename, so readers never see half a file. */
export async function writeJsonAtomic (path: string, value: unknown, mode = 0o644): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, JSON.stringify(value, null, 2) + '\n', { mode })
  await rename(tmp, path)
}
/** Record of a running stand-in server (server.json), written by the server once it listens. */
export interface ServerRecord {
  pid: number
  name: string
  address: string
  port: number
  startedAt: number
  /** The k3s data dir holding its cluster CA, so a restart serves the same one. */
  dataDir?: string
}

