import type { JsonValue, StateEntry } from '../p2p/types.ts'
import { errorMessage } from '../util/errors.ts'
import type { ClusterSecrets, JoinCredential, SealedCredential } from './credentials.ts'
import { credentialDigest, credentialEntry, parseCredential } from './credential-plan.ts'
import { clusterServers } from './issuers.ts'
import { CRED_PREFIX, ROLE_KEYS, type CredentialKind, type CredentialValue, type HandOffInput, type LocalFacts, type RolesDecision, type RolesSnapshot } from './types.ts'

/**
 * Carrying out a roles decision: the one place that turns the actions of the pure
 * decision (roles/plan.ts) into effects. The controller, the simulation and the
 * table-test site all run their decisions through it and differ only in their ports:
 * files and the replicated state in production, memory in the simulation.
 *
 * Ports may complete synchronously (the simulation steps thousands of nodes in one
 * call stack) or return a promise (the controller's files and state); the applier
 * waits only for what is pending, so a synchronous set of ports gives a synchronous
 * result.
 */

/** A value, or a promise of it: what a port may return. */
export type MaybePromise<T> = T | Promise<T>

/** Where a decision's actions land. */
export interface ApplyPorts {
  /**
   * Makes the facts durable. Nothing after it in the decision runs before it
   * completes, and a failure ends the decision: nothing unpersisted is ever published.
   */
  persist: (facts: LocalFacts) => MaybePromise<void>
  /** The cluster secrets this node holds (servers only), or undefined. */
  secrets: () => ClusterSecrets | undefined
  /**
   * Creates the cluster secrets of `clusterId` and keeps them durably before it
   * completes. Called only while `secrets()` is undefined.
   */
  generateSecrets: (clusterId: string) => MaybePromise<void>
  /** Publishes an entry of this node. A failure skips that entry only (see `ApplyResult.refused`). */
  put: (key: string, value: JsonValue) => MaybePromise<void>
  /**
   * Seals the credential of `kind` to a recipient's public key (`sealCredential` of
   * roles/credentials.ts); a server credential sealed to this node's own key is also
   * the copy of its secrets kept in `roles/secrets`.
   */
  seal: (kind: CredentialKind, secrets: ClusterSecrets, publicKey: string) => SealedCredential
  /** Starts the hand-off to the installer; does not wait for it to finish. */
  handOff: (input: HandOffInput, planKey: string) => void
}

/** What `applyDecision` did. */
export interface ApplyResult {
  /** Keys published (sealed credentials under `cred/<recipient>`). */
  published: string[]
  /** Entries whose put (or sealing) failed, with the error: retried by a later decision. */
  refused: Array<{ key: string, error: string }>
  /** Actions carried out; fewer than the decision had when `signal` aborted. */
  applied: number
}

/** Options of `applyDecision`. */
export interface ApplyOptions {
  /** Checked before each action: once aborted, the remaining actions are left undone. */
  signal?: AbortSignal
}

/**
 * Carries out `decision.actions` in order through `ports`: persists facts before
 * anything that depends on them, generates the cluster secrets once, publishes
 * entries, seals the copy of the secrets to this node's own key and each credential
 * granted (both skipped while no secrets are held) and starts the hand-off. A persist or secret generation that fails rejects (throws,
 * with synchronous ports) and leaves the rest undone; a refused put skips that entry
 * only. Returns synchronously when every port did.
 */
export function applyDecision (decision: Pick<RolesDecision, 'actions' | 'clusterId'>, ports: ApplyPorts, options: ApplyOptions = {}): MaybePromise<ApplyResult> {
  const result: ApplyResult = { published: [], refused: [], applied: 0 }
  const { actions } = decision
  const publish = (key: string, put: () => MaybePromise<void>): MaybePromise<void> => {
    const refuse = (err: unknown): void => { result.refused.push({ key, error: errorMessage(err) }) }
    let pending: MaybePromise<void>
    try {
      pending = put()
    } catch (err) {
      refuse(err)
      return
    }
    if (pending instanceof Promise) return pending.then(() => { result.published.push(key) }, refuse)
    result.published.push(key)
  }
  const one = (i: number): MaybePromise<void> => {
    const action = actions[i] as RolesDecision['actions'][number]
    if ('persist' in action) return ports.persist(action.persist)
    if ('generateSecrets' in action) return ports.secrets() === undefined ? ports.generateSecrets(decision.clusterId ?? '') : undefined
    if ('put' in action) return publish(action.put, () => ports.put(action.put, action.value))
    if ('sealSecrets' in action) {
      const secrets = ports.secrets()
      if (secrets === undefined) return
      return publish(ROLE_KEYS.secrets, () => {
        const box = ports.seal('server', secrets, action.publicKey)
        return ports.put(ROLE_KEYS.secrets, { to: action.publicKey, clusterId: action.sealSecrets, box: box as unknown as JsonValue })
      })
    }
    if ('sealCredential' in action) {
      const secrets = ports.secrets()
      if (secrets === undefined) return
      const key = `${CRED_PREFIX}${action.sealCredential}`
      return publish(key, () => {
        const box = ports.seal(action.kind, secrets, action.publicKey)
        const e = credentialEntry(action.sealCredential, { kind: action.kind, to: action.publicKey, clusterId: action.clusterId, box: box as unknown as JsonValue })
        return ports.put(e.key, e.value)
      })
    }
    ports.handOff(action.handOff, action.planKey)
  }
  const from = (start: number): MaybePromise<ApplyResult> => {
    for (let i = start; i < actions.length; i++) {
      if (options.signal?.aborted === true) return result
      const pending = one(i)
      if (pending instanceof Promise) return pending.then(() => { result.applied = i + 1; return from(i + 1) })
      result.applied = i + 1
    }
    return result
  }
  return from(0)
}

/**
 * `applyDecision` for ports that all complete synchronously (the simulation, the
 * table-test site). Throws a TypeError if a port returned a promise.
 */
export function applyDecisionNow (decision: Pick<RolesDecision, 'actions' | 'clusterId'>, ports: ApplyPorts, options: ApplyOptions = {}): ApplyResult {
  const r = applyDecision(decision, ports, options)
  if (r instanceof Promise) throw new TypeError('applyDecisionNow: a port returned a promise; use applyDecision')
  return r
}

/** A credential this node opened, with the entry it came from. */
export interface HeldCredential extends JoinCredential {
  /** The sealer (owner of the `cred/<self>` entry). */
  owner: string
  /** Version of that entry. */
  version: number
  clusterId: string
}

/** Inputs of `credentialFor`. */
export interface CredentialForInput {
  self: string
  /** This node's seal public key: only a credential sealed to it is opened. */
  sealKey: string
  /** State entries; those under `cred/<self>` are read. */
  entries: readonly StateEntry[]
  /**
   * The servers of the cluster record this node accepted (`issuersOf`): the only
   * sealers whose credential is opened, the init server first. Undefined while it has
   * accepted none, and then nothing is opened.
   */
  issuers: Issuers | undefined
  /** The credential held before: kept as long as its entry is unchanged, so each entry is opened once. */
  held: HeldCredential | undefined
  /** Opens a sealed credential (`openCredential` of roles/credentials.ts with this node's keys); throws when it cannot. */
  open: (box: JsonValue) => JoinCredential
  /** Told about each credential sealed to this node that does not open, or whose content does not match its kind. */
  onError?: (owner: string, error: string) => void
}

/** The servers whose credentials a node opens: the accepted record's init server and the servers it made. */
export interface Issuers {
  init: string
  servers: ReadonlySet<string>
  /** The kind of credential this node's persisted role needs, once it has one: no other kind is opened. */
  kind?: CredentialKind
}

/**
 * The join credential this node may use: its `cred/<self>` entry from a server of the
 * cluster record it accepted (never from another owner, and from no one while it
 * accepted none), sealed to its own key and opened with `open`; undefined when there
 * is none it can open, and of the kind its role needs once it has one (two servers
 * on the two sides of a partition may seal it different kinds). The one held stays
 * while its entry is unchanged; else the init server's comes first, then the others'
 * by owner. This, through `credentialOf`,
 * is what the decision's `credential` input means, everywhere.
 */
export function credentialFor (input: CredentialForInput): HeldCredential | undefined {
  const { held, issuers } = input
  if (issuers === undefined) return undefined
  const key = `${CRED_PREFIX}${input.self}`
  const mine = input.entries.filter((e) => e.key === key && issuers.servers.has(e.owner) &&
    (issuers.kind === undefined || parseCredential(e.value)?.kind === issuers.kind))
  if (held !== undefined && mine.some((e) => held.owner === e.owner && held.version === e.version)) return held
  mine.sort((a, b) => a.owner === issuers.init ? -1 : b.owner === issuers.init ? 1 : a.owner < b.owner ? -1 : 1)
  for (const e of mine) {
    const cred: CredentialValue | undefined = parseCredential(e.value)
    if (cred === undefined || cred.to !== input.sealKey) continue
    try {
      const opened = input.open(cred.box)
      if (opened.role !== cred.kind) throw new Error(`sealed ${opened.role} credential published as ${cred.kind}`)
      return { ...opened, owner: e.owner, version: e.version, clusterId: cred.clusterId }
    } catch (err) {
      input.onError?.(e.owner, errorMessage(err))
    }
  }
  return undefined
}

/** The init server of the cluster this node accepted, or undefined. */
export function sealerOf (facts: Pick<LocalFacts, 'cluster' | 'role'> | undefined): string | undefined {
  return facts?.cluster?.init ?? facts?.role?.init
}

/**
 * The servers whose credential this node may open (see `credentialFor`): those of the
 * cluster it accepted, read from `entries` (roles/issuers.ts `clusterServers`);
 * undefined while it accepted none.
 */
export function issuersOf (facts: Pick<LocalFacts, 'cluster' | 'role'> | undefined, entries: readonly StateEntry[]): Issuers | undefined {
  const init = sealerOf(facts)
  const clusterId = facts?.cluster?.clusterId ?? facts?.role?.clusterId
  if (init === undefined || clusterId === undefined) return undefined
  const role = facts?.role?.role
  return { init, servers: clusterServers(clusterId, init, entries), ...(role === 'server' || role === 'agent' ? { kind: role } : {}) }
}

/**
 * The decision's `credential` input for a held credential: its sealer and digest, so
 * that a different credential means a different hand-off.
 */
export function credentialOf (held: HeldCredential | undefined): RolesSnapshot['credential'] {
  return held === undefined ? undefined : { owner: held.owner, digest: credentialDigest({ kind: held.role, token: held.token, agentToken: held.agentToken }) }
}
