/**
 * The roles layer's local files at start, and what is rebuilt when one is damaged:
 * `roles.json` (role, vote and proposal from the state, once a cluster record is
 * there), `seal-key.json` (a new key, republished) and `cluster-secrets.json` (from its
 * sealed copy `roles/secrets`, or on a server from its server credential). A damaged
 * file is set aside as `<file>.corrupt-<timestamp>`, never deleted; what cannot be
 * rebuilt stops the start with a `RolesStoreError` (exit 2) naming the file and the
 * way back.
 */
import { join } from 'node:path'
import type { StateEntry } from '../p2p/types.ts'
import { KairosError, errorMessage } from '../util/errors.ts'
import type { Logger } from '../util/log.ts'
import { setAsideCorrupt } from '../util/set-aside.ts'
import { SEAL_KEY_FILE, type JoinCredential, type SealKeys } from './credentials.ts'
import { parseProposal, parseRecord, parseVote, resolvedProposal } from './entries.ts'
import { parseSecretsCopy } from './issuers.ts'
import { FACTS_FILE, SECRETS_FILE, RolesStoreError, loadFacts, loadSecrets, type StoredSecrets } from './local-store.ts'
import { CRED_PREFIX, EMPTY_FACTS, ROLE_KEYS, type LocalFacts } from './types.ts'
import type { HeldCredential } from './apply.ts'

/** What reading the local files needs. */
export interface LocalFilesInit {
  stateDir: string
  self: string
  networkId: string
  createSealKeys: (stateDir?: string) => Promise<SealKeys>
  logger: Logger
  now: number
}

/** The local files as read (or rebuilt) at start. */
export interface LocalFiles {
  facts: LocalFacts
  sealKeys: SealKeys
  secrets: StoredSecrets | undefined
  /** Why `cluster-secrets.json` is not held, for the one log line of its rebuild ('is missing', 'is damaged (…): set aside as …'). */
  secretsGone: string | undefined
}

/**
 * Loads roles.json, seal-key.json and cluster-secrets.json (`entries`: this node's view
 * of `roles/` and `cred/`), rebuilding what the state can: see the module doc. The
 * secrets are left to `secretsFromState` and `checkInitSecrets`.
 */
export async function loadLocalFiles (init: LocalFilesInit, entries: readonly StateEntry[]): Promise<LocalFiles> {
  const { stateDir, logger, now } = init
  let facts: LocalFacts
  try {
    facts = await loadFacts(stateDir)
  } catch (err) {
    if (!(err instanceof RolesStoreError) || err.exitCode !== 2) throw err
    const record = entries.some((e) => e.key === ROLE_KEYS.cluster && parseRecord(e.value)?.networkId === init.networkId)
    if (!record) {
      throw new RolesStoreError(`${errorMessage(err)}. No cluster record is in the state yet, so the votes it held cannot be rebuilt: restore ${join(stateDir, FACTS_FILE)} from a backup, or move it away only if this node never voted (forgetting a vote during an election can give two cluster-inits)`, { cause: err, exitCode: 2 })
    }
    const aside = setAsideCorrupt(join(stateDir, FACTS_FILE), now)
    // The vote and proposal this node published stay what it promised: the cluster
    // record's certificate refers to that vote, and forgetting it would refute it.
    const own = (key: string): unknown => entries.find((e) => e.owner === init.self && e.key === key)?.value
    const vote = parseVote(own(ROLE_KEYS.vote))
    const proposal = resolvedProposal(parseProposal(own(ROLE_KEYS.proposal)), entries)
    facts = { ...EMPTY_FACTS, promised: vote?.promised ?? null, accepted: vote?.accepted ?? null, promisedAt: now, proposal: proposal === undefined ? null : { ...proposal, startedAt: now } }
    logger.warn(`${FACTS_FILE} is damaged (${errorMessage(err)}): set aside as ${aside}; the role is rebuilt from the cluster record and credentials in the state`)
  }
  let sealKeys: SealKeys
  try {
    sealKeys = await init.createSealKeys(stateDir)
  } catch (err) {
    if (!(err instanceof KairosError) || err.exitCode !== 2) throw err
    const aside = setAsideCorrupt(join(stateDir, SEAL_KEY_FILE), now)
    sealKeys = await init.createSealKeys(stateDir)
    logger.warn(`${SEAL_KEY_FILE} is damaged: set aside as ${aside}; a new seal key is published and servers seal credentials to it again`)
  }
  let secrets: StoredSecrets | undefined
  let secretsGone: string | undefined
  try {
    secrets = await loadSecrets(stateDir)
    if (secrets === undefined) secretsGone = 'is missing'
  } catch (err) {
    if (!(err instanceof RolesStoreError) || err.exitCode !== 2) throw err
    secretsGone = `is damaged (${errorMessage(err)}): set aside as ${setAsideCorrupt(join(stateDir, SECRETS_FILE), now)}`
  }
  // Nothing to rebuild on a node that holds no secrets; a joiner that becomes a server writes them.
  const role = facts.role?.role
  if (role !== 'init' && role !== 'server' && secretsGone === 'is missing') secretsGone = undefined
  return { facts, sealKeys, secrets, secretsGone }
}

/**
 * The cluster secrets as the state holds them for this node: its sealed copy
 * (`roles/secrets`), else, on a server that is not the init server, its server
 * credential, which carries both tokens. `onUnopened` hears a copy that does not open.
 */
export function secretsFromState (self: string, keys: SealKeys, entries: readonly StateEntry[], opened: HeldCredential | undefined, isInit: boolean,
  open: (keys: SealKeys, box: unknown) => JoinCredential, onUnopened: (id: string, err: unknown) => void): { next: StoredSecrets, from: string } | undefined {
  const copy = parseSecretsCopy(entries.find((e) => e.owner === self && e.key === ROLE_KEYS.secrets)?.value)
  if (copy !== undefined && copy.to === keys.publicKey) {
    try {
      const c = open(keys, copy.box)
      if (c.role === 'server' && c.agentToken !== undefined) return { next: { serverToken: c.token, agentToken: c.agentToken, clusterId: copy.clusterId }, from: 'its sealed copy in the state (roles/secrets)' }
    } catch (err) {
      onUnopened(`copy\u0000${copy.box === undefined ? '' : JSON.stringify(copy.box).slice(0, 64)}`, err)
    }
  }
  if (opened?.role === 'server' && opened.agentToken !== undefined && !isInit) {
    return { next: { serverToken: opened.token, agentToken: opened.agentToken, clusterId: opened.clusterId }, from: 'this server\'s credential' }
  }
  return undefined
}

/**
 * On an init server without its secrets after `secretsFromState`: refuses the start
 * when anything shows they were made before (k3s runs with them: new ones would lock
 * every later joiner out). Fresh secrets are made only by a fresh init server.
 */
export function checkInitSecrets (files: LocalFiles, self: string, stateDir: string, entries: readonly StateEntry[]): void {
  const role = files.facts.role
  if (files.secrets !== undefined || role?.role !== 'init') return
  const made = files.secretsGone !== 'is missing' || files.facts.joined?.clusterId === role.clusterId ||
    entries.some((e) => e.owner === self && (e.key === ROLE_KEYS.secrets || e.key.startsWith(CRED_PREFIX)))
  if (!made) return
  throw new RolesStoreError(`${join(stateDir, SECRETS_FILE)} ${files.secretsGone ?? 'is missing'}, and no sealed copy in the state opens with this node's seal key. ` +
    'This node is the init server, and k3s runs with the tokens that file held; new ones would lock every later joiner out. ' +
    `Restore ${SECRETS_FILE} ({"serverToken","agentToken","clusterId"}, mode 0600) from a backup of the state dir, or copy it from an HA server of this site (servers keep the same tokens), then start again`, { exitCode: 2 })
}
