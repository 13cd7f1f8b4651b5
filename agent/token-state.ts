/**
 * The network token a node holds after a rotation (docs/decisions.md, LIFE-5):
 * `<state dir>/token.json` (mode 0600), written when the node follows a rotation
 * record, read at every start. The cloud-config keeps the token the box was set up
 * with; the node prefers this file's newer one, and keeps the token it replaced until
 * the grace ends.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { deriveKeys, parseToken, type NetworkToken } from '../token/index.ts'
import { writeFileAtomicSync } from '../util/atomic-file.ts'
import { setAsideCorrupt } from '../util/set-aside.ts'
import { errorMessage } from '../util/errors.ts'

/** File in the state dir holding the token the node switched to. */
export const TOKEN_FILE = 'token.json'

/** Fingerprints of replaced tokens a node remembers, newest first. */
export const MAX_TOKEN_HISTORY = 16

/** What `token.json` holds. */
export interface TokenState {
  /** Generation of `token`: 0 for the token a site was set up with, +1 per rotation. */
  generation: number
  /** The current token's text. */
  token: string
  /** The token it replaced, honoured until `until` (ms since the Unix epoch). */
  previous?: { token: string, until: number }
  /** Fingerprints of every token this node held before `token`, newest first (at most `MAX_TOKEN_HISTORY`). */
  history: string[]
}

/** The token a node runs with, and where it came from. */
export interface ChosenToken {
  token: NetworkToken
  generation: number
  /** The previous generation while its grace runs. */
  previous?: { token: NetworkToken, until: number }
  /** `state`: token.json's newer token; `config`: the cloud-config's. */
  source: 'state' | 'config'
  /** Fingerprints of tokens this node held before (from token.json). */
  history: string[]
}

/** The fingerprint of a token (public, safe to print). */
export const fingerprintOf = (token: NetworkToken): string => deriveKeys(token).fingerprint

/**
 * Which token to run with (pure): token.json's when the cloud-config carries that
 * token or one it replaced (the box was set up before a rotation); the cloud-config's
 * when it carries a token this node never held (a box set up again with the new token,
 * or moved to another site on purpose), as generation 0 of what the node knows.
 */
export function chooseToken (config: NetworkToken, persisted: TokenState | undefined, now: number): ChosenToken {
  if (persisted === undefined) return { token: config, generation: 0, source: 'config', history: [] }
  const current = parseToken(persisted.token)
  const configFp = fingerprintOf(config)
  const known = configFp === fingerprintOf(current) || persisted.history.includes(configFp)
  if (!known) return { token: config, generation: 0, source: 'config', history: [] }
  const previous = persisted.previous !== undefined && persisted.previous.until > now
    ? { token: parseToken(persisted.previous.token), until: persisted.previous.until }
    : undefined
  return { token: current, generation: persisted.generation, ...(previous === undefined ? {} : { previous }), source: 'state', history: persisted.history }
}

/** Why `v` is not a `TokenState`, or undefined. */
function stateProblem (v: unknown): string | undefined {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return 'expected an object'
  const o = v as Record<string, unknown>
  if (o.v !== 1) return `version must be 1, got ${JSON.stringify(o.v)}`
  if (typeof o.generation !== 'number' || !Number.isSafeInteger(o.generation) || o.generation < 0) return 'generation must be a non-negative integer'
  if (typeof o.token !== 'string') return 'token must be a string'
  try { parseToken(o.token) } catch (err) { return `token: ${errorMessage(err)}` }
  if (o.previous !== undefined) {
    const p = o.previous as Record<string, unknown>
    if (p === null || typeof p !== 'object' || typeof p.token !== 'string' || typeof p.until !== 'number' || !Number.isSafeInteger(p.until)) return 'previous must be {token, until}'
    try { parseToken(p.token) } catch (err) { return `previous.token: ${errorMessage(err)}` }
  }
  if (!Array.isArray(o.history) || o.history.length > MAX_TOKEN_HISTORY || !o.history.every((h) => typeof h === 'string')) return `history must be a list of at most ${MAX_TOKEN_HISTORY} fingerprints`
  return undefined
}

/**
 * Reads `<stateDir>/token.json`: undefined when there is none. A damaged one is set
 * aside (`token.json.corrupt-<time>`) and reported through `onDamaged`: the node then
 * runs with the cloud-config's token, which rejoins the site as long as that token is
 * current or within a rotation's grace (otherwise put the current token in the
 * cloud-config).
 */
export function loadTokenState (stateDir: string, now: number, onDamaged: (aside: string, problem: string) => void): TokenState | undefined {
  const read = readTokenState(stateDir)
  if (read.problem === undefined) return read.state
  onDamaged(setAsideCorrupt(read.file, now), read.problem)
  return undefined
}

/** Reads `<stateDir>/token.json` without changing anything: its state, or why it is damaged. */
export function readTokenState (stateDir: string): { file: string, state?: TokenState, problem?: string } {
  const file = join(stateDir, TOKEN_FILE)
  if (!existsSync(file)) return { file }
  let value: unknown
  let problem: string | undefined
  try {
    value = JSON.parse(readFileSync(file, 'utf8'))
    problem = stateProblem(value)
  } catch (err) {
    problem = `not JSON (${errorMessage(err)})`
  }
  if (problem !== undefined) return { file, problem }
  const o = value as TokenState & { v: 1 }
  return { file, state: { generation: o.generation, token: o.token, ...(o.previous === undefined ? {} : { previous: { token: o.previous.token, until: o.previous.until } }), history: o.history } }
}

/** Writes `<stateDir>/token.json` durably (mode 0600: it holds the network token). */
export function saveTokenState (stateDir: string, state: TokenState): void {
  writeFileAtomicSync(join(stateDir, TOKEN_FILE), JSON.stringify({ v: 1, ...state }, null, 2) + '\n', 0o600)
}
