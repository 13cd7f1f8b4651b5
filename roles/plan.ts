/**
 * The role plan: from a snapshot of one node to its phase and the actions it takes.
 *
 * Roles, as we read Kairos's keys:
 * - `p2p.role: master` — may become the init server; otherwise a server (HA), admitted
 *   one at a time, whether or not `auto.ha` is on.
 * - `p2p.role: worker` — always an agent; never stands for election (but votes).
 * - `p2p.role: none` — state and VPN only; votes, never takes a k3s role.
 * - empty role with `p2p.auto.enable: true` — automatic: init server if elected, an
 *   HA server while `auto.ha.master_nodes` has free slots, else an agent.
 * - `p2p.auto.enable: false` — a one-time static bootstrap: no automatic roles. Only
 *   `master` nodes may become the init server (still by the same vote, so two static
 *   masters cannot both run cluster-init), `master` nodes join as servers, `worker`
 *   nodes as agents, and nodes with an empty role take part in state and VPN only.
 * Every role is persisted before it is acted on and never changes afterwards.
 */
import { createHash } from 'node:crypto'
import type { JsonValue } from '../p2p/types.ts'
import type { Config } from '../config/types.ts'
import {
  CRED_PREFIX, ROLE_KEYS, type ClusterRecord, type CredentialKind, type CredentialValue, type HandOffInput,
  type LocalFacts, type NodeValue, type RolesAction, type RolesConfig, type RolesDecision,
  type RolesSnapshot
} from './types.ts'
import { clusterIdFor, quorumSize } from './ballot.ts'
import { checkRecord } from './certificates.ts'
import { proposalWireValue, recordWireValue } from './compact-refs.ts'
import { electionStep, isEligible, takesK3sRole } from './election.ts'
import { canonicalJson, indexEntries, type RolesView } from './entries.ts'
import { chooseIssuer, clusterServers, parseSecretsCopy, type IssuerChoice } from './issuers.ts'
import { collectableCredentials, parseCredential, parseStatus, planCredentials } from './credential-plan.ts'

export { canonicalJson }

/** The `RolesConfig` of a validated `Config`. */
export function rolesConfigOf (config: Config): RolesConfig {
  const p = config.p2p
  return {
    staticRole: p.role,
    autoEnable: p.autoEnable,
    minimumNodes: p.minimumNodes,
    haEnable: p.haEnable,
    haMasterNodes: p.haMasterNodes,
    settleMs: p.timing.electionSettleMs,
    termTimeoutMs: p.timing.electionTermTimeoutMs,
    rumourGraceMs: p.timing.deadAfterMs,
    pinCa: p.installer.kind !== 'dry-run'
  }
}

/** Deep equality of two JSON values (object key order ignored; undefined members ignored). */
export function jsonEqual (a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false
    return true
  }
  if (Array.isArray(b)) return false
  const ao = a as Record<string, unknown>
  const bo = b as Record<string, unknown>
  let count = 0
  for (const k in ao) {
    if (ao[k] === undefined) continue
    count++
    if (!jsonEqual(ao[k], bo[k])) return false
  }
  for (const k in bo) if (bo[k] !== undefined) count--
  return count === 0
}

/** The key of a hand-off input: the installer runs again only when it changes. */
export function planKeyOf (input: HandOffInput): string {
  return createHash('sha256').update(canonicalJson(input)).digest('hex').slice(0, 16)
}

/** The reason of an init server whose cluster secrets are lost and cannot be rebuilt yet. */
export const SECRETS_LOST_REASON = 'waiting for the cluster secrets: cluster-secrets.json is lost and its sealed copy (roles/secrets) does not open; restore cluster-secrets.json from a backup of the state dir'

/** Why a joiner waits for its credential, naming who can seal it. */
function issuingReason (issuing: IssuerChoice, init: string): string {
  if (issuing.issuer === undefined) {
    return issuing.able.length === 1
      ? 'waiting for a credential: the only server that can issue credentials, the init server, is down'
      : `waiting for a credential: none of the ${issuing.able.length} servers that can issue credentials is up`
  }
  return issuing.issuer === init ? 'waiting for a credential from the init server' : 'waiting for a credential from a server (the init server is down)'
}

/**
 * The roles decision: a snapshot in, the phase and the actions to carry out out.
 * Pure: no clock, randomness or I/O. Actions come in the order they must run:
 * `persist` first (a promise is durable before anyone sees it), then secrets,
 * entries, credentials, and the hand-off last.
 */
export function decide (s: RolesSnapshot): RolesDecision {
  const view = indexEntries(s.self, s.networkId, s.entries)
  const cfg = s.config
  const actions: RolesAction[] = []
  const puts: RolesAction[] = []
  let local: LocalFacts = s.local

  const ensure = (key: string, value: JsonValue): void => {
    const cur = view.own.get(key)
    if (cur === undefined || !jsonEqual(cur.value, value)) puts.push({ put: key, value })
  }
  const nodeValue: NodeValue = {
    sealKey: s.sealKey,
    role: cfg.staticRole,
    eligible: isEligible(cfg.staticRole, cfg.autoEnable),
    k3s: takesK3sRole(cfg.staticRole, cfg.autoEnable)
  }
  ensure(ROLE_KEYS.node, { ...nodeValue })

  const finish = (d: Omit<RolesDecision, 'actions' | 'term'>, tail: RolesAction[] = []): RolesDecision => {
    if (local !== s.local && !jsonEqual(local, s.local)) actions.push({ persist: local })
    ensure(ROLE_KEYS.vote, { promised: local.promised, accepted: local.accepted } as unknown as JsonValue)
    if (local.proposal !== null) {
      const { startedAt: _, ...proposal } = local.proposal
      ensure(ROLE_KEYS.proposal, proposalWireValue(proposal) as JsonValue)
    }
    const generate = tail.filter((a) => 'generateSecrets' in a)
    const rest = tail.filter((a) => !('generateSecrets' in a))
    actions.push(...generate, ...puts, ...rest)
    return { ...d, term: local.promised?.n ?? 0, actions }
  }

  // The cluster this node belongs to: the one it accepted before (persisted, never
  // switched), else the lowest-ballot record whose certificate checks out.
  let cluster = local.cluster ?? (local.role === null ? null : { clusterId: local.role.clusterId, init: local.role.init })
  let ownRecord: ClusterRecord | undefined
  let unverified = false
  if (cluster === null) {
    for (const r of view.records) {
      const check = checkRecord(r, view, s.networkId, cfg.minimumNodes)
      if (check === 'valid' || endorsed(r, view, s, cfg.minimumNodes)) { cluster = { clusterId: r.clusterId, init: r.init }; break }
      if (check === 'pending') unverified = true
    }
    if (cluster !== null) local = { ...local, cluster }
  } else if (local.cluster === null) {
    local = { ...local, cluster }
  }

  // No accepted record: vote, and maybe stand.
  if (cluster === null) {
    const out = electionStep({ self: s.self, now: s.now, networkId: s.networkId, config: cfg, members: s.members, view, local, viewSince: s.viewSince, ...(s.discovering === undefined ? {} : { discovering: s.discovering }) })
    local = out.local
    if (out.chosen?.candidate === s.self) {
      const { ballot, certificate } = out.chosen
      const clusterId = clusterIdFor(s.networkId, s.self, ballot)
      ownRecord = { clusterId, init: s.self, networkId: s.networkId, ballot, certificate }
      cluster = { clusterId, init: s.self, record: ownRecord }
      local = { ...local, cluster, role: { role: 'init', clusterId, init: s.self } }
    } else {
      if (out.alive < cfg.minimumNodes) {
        return finish({
          phase: s.members.length === 0 ? 'discovering' : 'waiting',
          awaiting: cfg.minimumNodes - out.alive,
          reason: `${cfg.minimumNodes - out.alive} more node(s) needed for minimum_nodes ${cfg.minimumNodes}`
        })
      }
      return finish({
        phase: 'electing',
        ...(out.candidate === undefined ? {} : { leader: out.candidate }),
        ...(out.recheckAt === undefined ? {} : { recheckAt: out.recheckAt }),
        reason: out.chosen !== undefined
          ? 'chosen; waiting for its cluster record'
          : unverified ? 'a cluster record is waiting for the votes that certify it' : `quorum ${out.quorum} of ${out.known} known nodes`
      })
    }
  }

  // A record is accepted (or this node was just chosen).
  const acc = cluster
  if (local.role === null) {
    if (acc.init === s.self) {
      local = { ...local, role: { role: 'init', clusterId: acc.clusterId, init: s.self } }
    } else if (!nodeValue.k3s) {
      local = { ...local, role: { role: 'none', clusterId: acc.clusterId, init: acc.init } }
    } else {
      // Only the servers of the accepted record hand out credentials (roles/issuers.ts).
      const servers = clusterServers(acc.clusterId, acc.init, s.entries)
      let cred: CredentialValue | undefined
      for (const [owner, e] of view.credsForSelf) {
        const c = parseCredential(e.value)
        if (servers.has(owner) && c !== undefined && c.clusterId === acc.clusterId && c.to === s.sealKey && (cred === undefined || owner === acc.init)) cred = c
      }
      // The role this node reported before, in its own signed status: a node that lost
      // roles.json after its credential was collected takes it back, reports installing,
      // and is sealed a credential again.
      const reported = parseStatus(view.statuses.get(s.self)?.value)
      const before = reported?.clusterId === acc.clusterId && (reported.role === 'agent' || reported.role === 'server') ? reported.role : undefined
      if (cred !== undefined || before !== undefined) {
        local = { ...local, role: { role: cred?.kind ?? before as CredentialKind, clusterId: acc.clusterId, init: acc.init } }
      } else {
        const issuing = chooseIssuer({ self: s.self, networkId: s.networkId, clusterId: acc.clusterId, init: acc.init, servers, members: s.members, entries: s.entries })
        return finish({
          phase: 'waiting',
          leader: acc.init,
          clusterId: acc.clusterId,
          reason: issuingReason(issuing, acc.init),
          issuing: { ...(issuing.issuer === undefined ? {} : { issuer: issuing.issuer }), able: issuing.able }
        })
      }
    }
  }
  const role = local.role as NonNullable<LocalFacts['role']>
  const base = { role: role.role, leader: role.init, clusterId: role.clusterId }

  if (role.role === 'none') {
    ensure(ROLE_KEYS.status, { role: 'none', phase: 'joined', clusterId: role.clusterId })
    return finish({ ...base, phase: 'joined' })
  }

  const tail: RolesAction[] = []
  let handOff: HandOffInput | undefined
  let waitReason: string | undefined
  let issuing: RolesDecision['issuing']
  let keptJoin = false
  const servers = clusterServers(role.clusterId, role.init, s.entries)
  if (role.role === 'init' || role.role === 'server') {
    const own = s.entries.filter((e) => e.key === ROLE_KEYS.status || (e.owner === s.self && e.key.startsWith(CRED_PREFIX)))
    for (const id of collectableCredentials({ self: s.self, clusterId: role.clusterId, entries: own, departed: s.departed })) puts.push({ put: `${CRED_PREFIX}${id}`, value: null })
  }
  const issue = (secretsLost: boolean): void => {
    // The copy of the secrets sealed to this node's own key, from which a lost
    // cluster-secrets.json is rebuilt; sealed again when the seal key changed.
    const copy = parseSecretsCopy(view.own.get(ROLE_KEYS.secrets)?.value)
    if (!secretsLost && (copy?.to !== s.sealKey || copy.clusterId !== role.clusterId)) tail.push({ sealSecrets: role.clusterId, publicKey: s.sealKey })
    if (secretsLost) return
    const choice = chooseIssuer({ self: s.self, networkId: s.networkId, clusterId: role.clusterId, init: role.init, servers, members: s.members, entries: s.entries })
    if (choice.issuer !== s.self) return
    const grants = planCredentials({
      self: s.self,
      networkId: s.networkId,
      record: { clusterId: role.clusterId },
      config: cfg,
      now: s.now,
      nodes: view.nodes,
      members: s.members,
      entries: s.entries.filter((e) => e.key === ROLE_KEYS.status || (servers.has(e.owner) && e.key.startsWith(CRED_PREFIX))),
      selfJoined: local.joined?.clusterId === role.clusterId,
      servers,
      grantServers: s.self === role.init
    })
    for (const g of grants) tail.push({ sealCredential: g.recipient, kind: g.kind, publicKey: g.publicKey, clusterId: role.clusterId })
  }
  if (role.role === 'init') {
    // The record as persisted when chosen, so a crash before it was published loses nothing.
    ownRecord ??= local.cluster?.record ?? view.records.find((r) => r.init === s.self && r.clusterId === role.clusterId)
    if (ownRecord !== undefined) ensure(ROLE_KEYS.cluster, structuredClone(recordWireValue(ownRecord)) as JsonValue)
    if (s.caHash !== undefined) ensure(ROLE_KEYS.ca, { clusterId: role.clusterId, caHash: s.caHash })
    // The secrets are made once, by a fresh init server. Any sign that they were made
    // before (its sealed copy, a credential it sealed, a completed hand-off) means
    // k3s runs with them: new ones would lock every later joiner out. They are then
    // rebuilt from the sealed copy, or the node waits for the operator.
    const made = view.own.has(ROLE_KEYS.secrets) || local.joined?.clusterId === role.clusterId ||
      s.entries.some((e) => e.owner === s.self && e.key.startsWith(CRED_PREFIX))
    const lost = !s.hasSecrets && made
    if (!s.hasSecrets && !made) tail.push({ generateSecrets: true })
    if (lost) waitReason = SECRETS_LOST_REASON
    issue(lost)
    if (!lost) handOff = { role: 'server', clusterInit: true, clusterId: role.clusterId, initServer: s.self }
  } else {
    // A server holding the secrets (from its server credential) issues when it is the chosen one.
    if (role.role === 'server' && s.hasSecrets) issue(false)
    const sealer = s.credential !== undefined && servers.has(s.credential.owner) ? s.credential.owner : undefined
    // k3s is reached at the server that sealed the credential (the init server's
    // address until the sealer has published one).
    const sealerStatus = sealer === undefined ? undefined : parseStatus(view.statuses.get(sealer)?.value)
    const initStatus = parseStatus(view.statuses.get(role.init)?.value)
    const address = sealerStatus?.clusterId === role.clusterId && sealerStatus.address !== undefined
      ? sealerStatus.address
      : initStatus?.clusterId === role.clusterId ? initStatus.address : undefined
    // The CA is pinned from the init server the accepted record names, and only the
    // first hash it published: a later one (a rotated CA, or an init server turned
    // hostile) never moves a joiner that already trusts one.
    const ca = view.cas.get(role.init)
    const offered = ca?.clusterId === role.clusterId ? ca.caHash : undefined
    const caHash = role.caHash ?? offered
    if (role.caHash === undefined && offered !== undefined) local = { ...local, role: { ...role, caHash: offered } }
    const credential = sealer === undefined ? undefined : s.credential?.digest
    if (credential === undefined && role.role === 'agent' && local.joined?.clusterId === role.clusterId) {
      // Joined: its credential was collected (collectableCredentials), k3s holds the token.
      keptJoin = true
    } else if (credential === undefined) {
      waitReason = 'waiting for a credential sealed to this node by a server'
      const choice = chooseIssuer({ self: s.self, networkId: s.networkId, clusterId: role.clusterId, init: role.init, servers, members: s.members, entries: s.entries })
      issuing = { ...(choice.issuer === undefined ? {} : { issuer: choice.issuer }), able: choice.able }
    } else if (address === undefined) {
      waitReason = sealer === role.init ? 'waiting for the init server address' : 'waiting for the address of the server that sealed the credential'
    } else if (caHash === undefined && cfg.pinCa === true) {
      waitReason = 'waiting for the init server to publish the hash of its k3s CA (roles/ca), which the join token pins'
    } else {
      handOff = {
        role: role.role === 'server' ? 'server' : 'agent',
        clusterInit: false,
        clusterId: role.clusterId,
        initServer: role.init,
        serverAddress: address,
        credential,
        ...(caHash === undefined ? {} : { caHash })
      }
    }
  }

  const planKey = handOff === undefined ? undefined : planKeyOf(handOff)
  const joined = keptJoin || (planKey !== undefined && local.joined?.planKey === planKey)
  const everJoined = local.joined?.clusterId === role.clusterId
  ensure(ROLE_KEYS.status, {
    role: role.role,
    phase: everJoined ? 'joined' : 'installing',
    clusterId: role.clusterId,
    ...((role.role === 'init' || role.role === 'server') && s.address !== undefined ? { address: s.address } : {})
  })
  if (handOff !== undefined && planKey !== undefined && !joined) tail.push({ handOff, planKey })
  return finish({
    ...base,
    phase: joined ? 'joined' : 'installing',
    ...(waitReason === undefined ? {} : { reason: waitReason }),
    ...(issuing === undefined ? {} : { issuing })
  }, tail)
}

/**
 * Whether a quorum of the nodes this one knows report, in their own signed
 * `roles/status`, that they belong to `record`'s cluster. The votes that chose the
 * init server are collected with their voters once those have been gone for
 * `p2p.forget_after`; a node that joins a site older than that checks its record this
 * way. It asks as many distinct members as the certificate would, so it is as hard
 * to forge: a quorum of identities.
 */
function endorsed (record: ClusterRecord, view: RolesView, s: RolesSnapshot, minimumNodes: number): boolean {
  if (record.clusterId !== clusterIdFor(s.networkId, record.init, record.ballot)) return false
  const known = new Set<string>([s.self, ...s.members.map((m) => m.peerId), ...view.nodes.keys()]).size
  let members = 0
  for (const [owner, e] of view.statuses) {
    if (owner !== s.self && parseStatus(e.value)?.clusterId === record.clusterId) members++
  }
  return members >= quorumSize(minimumNodes, known)
}

/**
 * Warnings about a configuration that weakens the guarantees, for `status`.
 * `knownNodes` is the number of nodes seen so far (self included), when known.
 */
export function configWarnings (config: Pick<RolesConfig, 'minimumNodes' | 'staticRole' | 'autoEnable' | 'haEnable' | 'haMasterNodes'>, knownNodes?: number): string[] {
  const out: string[] = []
  const m = config.minimumNodes
  if (m < 2) {
    out.push(`p2p.minimum_nodes is ${m}: a node that boots alone, or is cut off during formation, forms a cluster of its own; set it to more than half of the fleet`)
  } else if (knownNodes !== undefined && m * 2 <= knownNodes) {
    out.push(`p2p.minimum_nodes is ${m}, at most half of the ${knownNodes} nodes seen: a clean network split during formation can create two clusters; set it to at least ${Math.floor(knownNodes / 2) + 1}`)
  }
  if (!config.haEnable && config.haMasterNodes > 0) {
    out.push(`p2p.auto.ha.master_nodes is ${config.haMasterNodes} but p2p.auto.ha.enable is false: no extra servers are admitted automatically`)
  }
  if (!config.autoEnable && config.staticRole === 'auto') {
    out.push('p2p.auto.enable is false and p2p.role is empty: this node takes part in the state and the VPN only, never in k3s')
  }
  return out
}

/** The index used by `decide`, exposed for status and tests. */
export type { RolesView }
