import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { writeFileAtomicSync } from '../util/atomic-file.ts'
import { KairosError, errorMessage } from '../util/errors.ts'
import { compareBallots } from './ballot.ts'
import { parseBallot, parseProposal, parseRecord } from './entries.ts'
import { EMPTY_FACTS, type Accepted, type LocalFacts, type RoleName } from './types.ts'

/** Exit code for a local file whose content is damaged: bad input the operator must fix. */
const DAMAGED = 2

/** File in the state dir holding this node's promises, vote and role (mode 0600). */
export const FACTS_FILE = 'roles.json'

/** File in the init server's state dir holding the k3s tokens (mode 0600). Never replicated. */
export const SECRETS_FILE = 'cluster-secrets.json'

/**
 * A roles file that cannot be read, parsed or written. Exit code 2 when its content is
 * damaged (the operator restores it or moves it away; it is never silently forgotten),
 * 1 for an I/O failure.
 */
export class RolesStoreError extends KairosError {
  constructor (message: string, options: { cause?: unknown, exitCode?: number } = {}) {
    super(message, options)
    this.name = 'RolesStoreError'
  }
}

/**
 * Writes `text` to `file` atomically (see `writeFileAtomicSync`): a power cut leaves
 * either the old or the new content. Synchronous inside, so a promise is on disk
 * one step after it was decided, however busy the box.
 */
export async function writeFileAtomic (file: string, text: string): Promise<void> {
  try {
    writeFileAtomicSync(file, text)
  } catch (err) {
    throw new RolesStoreError(`cannot write ${file}: ${errorMessage(err)}`, { cause: err })
  }
}

/** Reads a small local file synchronously, for the same reason it is written so (see `writeFileAtomic`). */
async function readJson (file: string): Promise<unknown> {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new RolesStoreError(`cannot read ${file}: ${errorMessage(err)}`, { cause: err })
  }
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new RolesStoreError(`${file} is not JSON; expected the roles facts written by kairos-p2p`, { cause: err, exitCode: DAMAGED })
  }
}

const ROLE_NAMES: readonly RoleName[] = ['init', 'server', 'agent', 'none']

function parseAccepted (v: unknown): Accepted | null {
  if (typeof v !== 'object' || v === null) return null
  const o = v as Record<string, unknown>
  const ballot = parseBallot(o.ballot)
  return ballot !== undefined && typeof o.candidate === 'string' ? { ballot, candidate: o.candidate } : null
}

/**
 * Parses persisted facts. A damaged file is an error, never "no facts": forgetting
 * a promise or a role could break the election's safety.
 */
export function parseFacts (value: unknown, file = FACTS_FILE): LocalFacts {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RolesStoreError(`${file}: expected an object with promised, accepted, proposal, role, joined`, { exitCode: DAMAGED })
  }
  const o = value as Record<string, unknown>
  const promised = o.promised === null || o.promised === undefined ? null : parseBallot(o.promised)
  if (promised === undefined) throw new RolesStoreError(`${file}: promised must be a ballot {n, by}, got ${JSON.stringify(o.promised)}`, { exitCode: DAMAGED })
  const accepted = parseAccepted(o.accepted)
  let proposal: LocalFacts['proposal'] = null
  if (typeof o.proposal === 'object' && o.proposal !== null) {
    const p = o.proposal as Record<string, unknown>
    const parsed = parseProposal(p)
    if (parsed === undefined) throw new RolesStoreError(`${file}: proposal must be {ballot: {n, by}, candidate, committed, known?, promises?}`, { exitCode: DAMAGED })
    proposal = { ...parsed, startedAt: typeof p.startedAt === 'number' ? p.startedAt : 0 }
  }
  let role: LocalFacts['role'] = null
  if (typeof o.role === 'object' && o.role !== null) {
    const r = o.role as Record<string, unknown>
    if (!ROLE_NAMES.includes(r.role as RoleName) || typeof r.clusterId !== 'string' || typeof r.init !== 'string') {
      throw new RolesStoreError(`${file}: role must be {role: init|server|agent|none, clusterId, init}, got ${JSON.stringify(o.role)}`, { exitCode: DAMAGED })
    }
    if (r.caHash !== undefined && (typeof r.caHash !== 'string' || !/^[0-9a-f]{64}$/.test(r.caHash))) {
      throw new RolesStoreError(`${file}: role.caHash must be a sha256 in lowercase hex, got ${JSON.stringify(r.caHash)}`, { exitCode: DAMAGED })
    }
    role = { role: r.role as RoleName, clusterId: r.clusterId, init: r.init, ...(r.caHash === undefined ? {} : { caHash: r.caHash }) }
  }
  let cluster: LocalFacts['cluster'] = null
  if (typeof o.cluster === 'object' && o.cluster !== null) {
    const c = o.cluster as Record<string, unknown>
    if (typeof c.clusterId !== 'string' || typeof c.init !== 'string') {
      throw new RolesStoreError(`${file}: cluster must be {clusterId, init, record?}, got ${JSON.stringify(o.cluster)}`, { exitCode: DAMAGED })
    }
    const record = c.record === undefined ? undefined : parseRecord(c.record)
    if (c.record !== undefined && record === undefined) throw new RolesStoreError(`${file}: cluster.record is not a cluster record with its certificate`, { exitCode: DAMAGED })
    cluster = { clusterId: c.clusterId, init: c.init, ...(record === undefined ? {} : { record }) }
  }
  let joined: LocalFacts['joined'] = null
  if (typeof o.joined === 'object' && o.joined !== null) {
    const j = o.joined as Record<string, unknown>
    if (typeof j.clusterId === 'string' && typeof j.planKey === 'string') joined = { clusterId: j.clusterId, planKey: j.planKey }
  }
  if (promised !== null && accepted !== null && compareBallots(accepted.ballot, promised) > 0) {
    throw new RolesStoreError(`${file}: accepted ballot is above the promised one; the file is inconsistent`, { exitCode: DAMAGED })
  }
  return { promised, promisedAt: typeof o.promisedAt === 'number' ? o.promisedAt : 0, accepted, proposal, cluster, role, joined }
}

/** Loads the persisted facts of `stateDir`, or the empty facts of a fresh node. */
export async function loadFacts (stateDir: string): Promise<LocalFacts> {
  const file = join(stateDir, FACTS_FILE)
  const value = await readJson(file)
  return value === undefined ? { ...EMPTY_FACTS } : parseFacts(value, file)
}

/** Persists facts atomically (mode 0600). */
export async function saveFacts (stateDir: string, facts: LocalFacts): Promise<void> {
  await writeFileAtomic(join(stateDir, FACTS_FILE), JSON.stringify(facts) + '\n')
}

/** The k3s tokens as the init server keeps them. */
export interface StoredSecrets {
  serverToken: string
  agentToken: string
  clusterId: string
}

/** Loads the init server's secrets, or undefined when this node has none. */
export async function loadSecrets (stateDir: string): Promise<StoredSecrets | undefined> {
  const file = join(stateDir, SECRETS_FILE)
  const value = await readJson(file)
  if (value === undefined) return undefined
  const o = value as Record<string, unknown>
  if (typeof o.serverToken !== 'string' || typeof o.agentToken !== 'string' || typeof o.clusterId !== 'string') {
    throw new RolesStoreError(`${file}: expected {serverToken, agentToken, clusterId}`, { exitCode: DAMAGED })
  }
  return { serverToken: o.serverToken, agentToken: o.agentToken, clusterId: o.clusterId }
}

/** Persists the init server's secrets atomically (mode 0600). */
export async function saveSecrets (stateDir: string, secrets: StoredSecrets): Promise<void> {
  await writeFileAtomic(join(stateDir, SECRETS_FILE), JSON.stringify(secrets) + '\n')
}
