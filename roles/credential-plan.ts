/**
 * The credentials of a cluster in the state: their entries, and the plan of the issuing
 * server — who gets which credential now, and which sealed ones can be collected
 * (docs/decisions.md, LIFE-2 and LIFE-7).
 */
import { createHash } from 'node:crypto'
import type { JsonValue, StateEntry } from '../p2p/types.ts'
import {
  CRED_PREFIX, ROLE_KEYS, type ClusterRecord, type CredentialKind, type CredentialValue, type MemberView,
  type NodeValue, type RolesConfig, type StatusValue
} from './types.ts'
import { countsAsUp, preferenceKey } from './election.ts'
import { clusterServers } from './issuers.ts'

/**
 * What a hand-off key holds of an opened credential: a hash of what it carries, never
 * the secret, so a different token is a different hand-off.
 */
export function credentialDigest (c: { kind: string, token: string, agentToken?: string | undefined }): string {
  return createHash('sha256').update(`kairos-p2p/credential\u0000${c.kind}\u0000${c.token}\u0000${c.agentToken ?? ''}`).digest('hex').slice(0, 32)
}

/** The state entry carrying a sealed credential for `recipient`. */
export function credentialEntry (recipient: string, value: CredentialValue): { key: string, value: JsonValue } {
  return { key: `${CRED_PREFIX}${recipient}`, value: { kind: value.kind, to: value.to, clusterId: value.clusterId, box: value.box } }
}

/** A `cred/<recipient>` value, or undefined when malformed. */
export function parseCredential (v: unknown): CredentialValue | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined
  const o = v as Record<string, unknown>
  if ((o.kind !== 'server' && o.kind !== 'agent') || typeof o.to !== 'string' || typeof o.clusterId !== 'string' || o.box === undefined) return undefined
  return { kind: o.kind, to: o.to, clusterId: o.clusterId, box: o.box as JsonValue }
}

export function parseStatus (v: unknown): StatusValue | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined
  const o = v as Record<string, unknown>
  if (typeof o.clusterId !== 'string' || (o.phase !== 'installing' && o.phase !== 'joined')) return undefined
  if (o.role !== 'init' && o.role !== 'server' && o.role !== 'agent' && o.role !== 'none') return undefined
  return { role: o.role, phase: o.phase, clusterId: o.clusterId, ...(typeof o.address === 'string' ? { address: o.address } : {}) }
}

/**
 * The agent credentials `self` sealed that can be collected: the recipient reports in
 * its own `roles/status` that it joined the cluster (it holds the token in k3s's
 * config and needs the credential no more), or it left the site (`departed`). A
 * collected credential is written over with `null`, the state's deletion marker, which
 * the store drops once it is older than `p2p.forget_after` (p2p/state/gc.ts); so the
 * entries an issuer owns follow the nodes waiting for a credential, not every node the
 * site ever had.
 *
 * Server credentials are kept: the set of servers and their slots are read from them
 * (roles/issuers.ts `clusterServers`, and `planCredentials` counts them against
 * `auto.ha.master_nodes`), and only the init server seals them, at most `master_nodes`
 * per cluster, so they are bounded already. Collecting one would let a server stop
 * counting, and a later agent credential take its slot.
 */
export function collectableCredentials (input: {
  self: string
  clusterId: string
  /** `cred/` entries of `self`, and `roles/status` of everyone (others are ignored). */
  entries: readonly StateEntry[]
  departed?: { has: (id: string) => boolean } | undefined
}): string[] {
  const joined = new Set<string>()
  for (const e of input.entries) {
    if (e.key !== ROLE_KEYS.status) continue
    const st = parseStatus(e.value)
    if (st?.phase === 'joined' && st.clusterId === input.clusterId) joined.add(e.owner)
  }
  const out: string[] = []
  for (const e of input.entries) {
    if (e.owner !== input.self || !e.key.startsWith(CRED_PREFIX) || e.value === null) continue
    const id = e.key.slice(CRED_PREFIX.length)
    const c = parseCredential(e.value)
    // A malformed one is no credential at all; a server credential holds a slot.
    if (c?.kind === 'server') continue
    if (c === undefined || joined.has(id) || input.departed?.has(id) === true) out.push(id)
  }
  return out.sort()
}

/** How long an admitted HA server may take to report joined before the next is admitted, ms. @default 600000 */
export const SERVER_JOIN_TIMEOUT_MS = 600_000

/** One credential the issuing server (re)seals. */
export interface CredentialGrant {
  recipient: string
  kind: CredentialKind
  publicKey: string
}

/**
 * The credential plan of the issuing server (roles/issuers.ts): who gets which
 * credential now. Credentials sealed by any server of the cluster count as issued,
 * so a server that takes over from a lost init server, or the init server coming
 * back, never seals one twice.
 *
 * A credential is a role: its kind never changes once issued (re-sealed to the same
 * kind only when the recipient's seal key changed). The server token goes only to
 * the servers this plan makes: `auto.ha.master_nodes` of them besides the init
 * server when the init server's `auto.ha.enable` is on, none otherwise. Static
 * masters have the first claim on those slots, in preference order, then eligible
 * automatic nodes; a node declaring `role: master` beyond them joins as an agent, so
 * declaring it gains no token holder the server token. Each server credential is
 * issued only after the init server and every earlier server reported `joined` (or
 * the join timeout passed since its credential), so servers join one at a time. Nodes reserved for a server slot get nothing else
 * meanwhile; every other live node that takes a k3s role gets the agent credential
 * at once.
 */
export function planCredentials (input: {
  self: string
  networkId: string
  record: Pick<ClusterRecord, 'clusterId'>
  config: Pick<RolesConfig, 'haEnable' | 'haMasterNodes' | 'serverJoinTimeoutMs'>
  /** The init server's clock; absent, an admitted server waits for ever. */
  now?: number
  nodes: ReadonlyMap<string, NodeValue>
  members: readonly MemberView[]
  /** Entries under `cred/` owned by the servers, and `roles/status` of everyone. */
  entries: readonly StateEntry[]
  selfJoined: boolean
  /** The servers of the cluster (roles/issuers.ts `clusterServers`): never recipients, their credentials count as issued. @default self only */
  servers?: ReadonlySet<string>
  /**
   * Whether this issuer admits HA servers: only the init server does. Another server
   * issuing in its place seals agent credentials only, so two issuers on the two sides
   * of a partition can never fill one server slot twice. @default true
   */
  grantServers?: boolean
}): CredentialGrant[] {
  const { self, record, nodes } = input
  const servers = input.servers ?? new Set([self])
  const issued = new Map<string, CredentialValue>()
  const issuedAt = new Map<string, number>()
  const joined = new Set<string>()
  for (const e of input.entries) {
    if (servers.has(e.owner) && e.key.startsWith(CRED_PREFIX)) {
      const c = parseCredential(e.value)
      const id = e.key.slice(CRED_PREFIX.length)
      const before = issued.get(id)
      // A server credential wins over an agent one (its server token is out: it holds a
      // server slot, whatever another issuer sealed later); of one kind, the one sealed
      // to the recipient's current key wins over an outdated one.
      const wins = before === undefined || (c?.kind === 'server' && before.kind !== 'server') ||
        (c?.kind === before.kind && before.to !== nodes.get(id)?.sealKey)
      if (c !== undefined && c.clusterId === record.clusterId && wins) {
        issued.set(id, c)
        issuedAt.set(id, Math.min(e.writtenAt, issuedAt.get(id) ?? e.writtenAt))
      }
    } else if (e.key === ROLE_KEYS.status) {
      const s = parseStatus(e.value)
      if (s?.phase === 'joined' && s.clusterId === record.clusterId) joined.add(e.owner)
    }
  }
  const live = new Set(input.members.filter(countsAsUp).map((m) => m.peerId))
  const grants: CredentialGrant[] = []
  const byPreference = (a: string, b: string): number => preferenceKey(a, input.networkId) < preferenceKey(b, input.networkId) ? -1 : 1

  let pendingServer = !input.selfJoined
  let serverCount = 0
  for (const [id, c] of issued) {
    const node = nodes.get(id)
    if (c.kind === 'server') {
      serverCount++
      // A server that never reports joined (gone, or a member that took the token and
      // sits on it) holds the next one back only until the join timeout.
      const waited = input.now === undefined ? 0 : input.now - (issuedAt.get(id) ?? input.now)
      if (!joined.has(id) && waited < (input.config.serverJoinTimeoutMs ?? SERVER_JOIN_TIMEOUT_MS)) pendingServer = true
    }
    // A joined agent needs its credential no more (it is collected), not even to a new key.
    const reseal = c.kind === 'server' ? input.grantServers !== false : !joined.has(id)
    if (node !== undefined && node.sealKey !== c.to && id !== self && reseal) grants.push({ recipient: id, kind: c.kind, publicKey: node.sealKey })
  }
  const unissued: string[] = []
  for (const [id, node] of nodes) {
    if (id === self || servers.has(id) || !node.k3s) continue
    // A node that reports joined got its credential before (collected since); one that
    // lost its local files reports installing again, and gets a new one.
    if (!issued.has(id) && live.has(id) && !joined.has(id)) unissued.push(id)
  }
  unissued.sort(byPreference)
  const target = input.config.haEnable && input.grantServers !== false ? input.config.haMasterNodes : 0
  const slots = Math.max(0, target - serverCount)
  const masters = unissued.filter((id) => nodes.get(id)?.role === 'master')
  const autos = unissued.filter((id) => nodes.get(id)?.role === 'auto' && nodes.get(id)?.eligible === true)
  const reserved = [...masters, ...autos].slice(0, slots)
  const next = reserved[0]
  if (!pendingServer && next !== undefined) {
    grants.push({ recipient: next, kind: 'server', publicKey: (nodes.get(next) as NodeValue).sealKey })
  }
  const held = new Set(reserved)
  for (const id of unissued) {
    if (!held.has(id)) grants.push({ recipient: id, kind: 'agent', publicKey: (nodes.get(id) as NodeValue).sealKey })
  }
  return grants
}

