/**
 * Who may issue join credentials, and which of them does (pure).
 *
 * The servers of a cluster are the init server its accepted record names and every
 * node a server of it sealed the server credential to (`cred/<id>` of kind `server`,
 * signed by a server). A server credential carries both k3s tokens, so each server
 * holds the cluster secrets and can seal credentials for a joiner: losing the init
 * server no longer ends the site's growth. The trust is the record's and nothing
 * else's: an entry owned by any other member names no server, however it is worded,
 * and a member that holds the server token could already act as a k3s server.
 *
 * One server issues at a time, chosen the same way by every node: the init server
 * while it is up, else the first in preference order of the live servers that
 * reported `joined` and published the sealed copy of their secrets (`roles/secrets`),
 * the sign that they hold them. Views may differ for a moment, or a partition may
 * cut the init server off, and two servers seal a credential for one joiner; both
 * carry the same tokens. Only the init server admits HA servers (a server issuing in
 * its place seals agent credentials only), so two sides of a partition never fill a
 * server slot twice, and a joiner opens only the kind its persisted role needs.
 */
import type { StateEntry } from '../p2p/types.ts'
import { countsAsUp, preferenceKey } from './election.ts'
import { CRED_PREFIX, ROLE_KEYS, type MemberView } from './types.ts'

/**
 * The servers of cluster `clusterId` whose init server is `init`: `init`, then every
 * recipient of a server credential of that cluster sealed by a server, to a fixed point.
 */
export function clusterServers (clusterId: string, init: string, entries: readonly StateEntry[]): Set<string> {
  const servers = new Set<string>([init])
  const grants: Array<{ owner: string, recipient: string }> = []
  for (const e of entries) {
    if (!e.key.startsWith(CRED_PREFIX)) continue
    const v = e.value as { kind?: unknown, clusterId?: unknown } | null
    if (v?.kind === 'server' && v.clusterId === clusterId) grants.push({ owner: e.owner, recipient: e.key.slice(CRED_PREFIX.length) })
  }
  let grew = true
  while (grew) {
    grew = false
    for (const g of grants) {
      if (servers.has(g.owner) && !servers.has(g.recipient)) { servers.add(g.recipient); grew = true }
    }
  }
  return servers
}

/** `roles/secrets`, owned by a server: its copy of the cluster secrets, sealed to its own seal key. */
export interface SecretsCopyValue {
  /** The seal key the copy is sealed to (the owner's, public). */
  to: string
  clusterId: string
  /** A server credential (roles/credentials.ts `SealedCredential`): both k3s tokens. */
  box: unknown
}

/** A `roles/secrets` value, or undefined when malformed. */
export function parseSecretsCopy (v: unknown): SecretsCopyValue | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined
  const o = v as Record<string, unknown>
  if (typeof o.to !== 'string' || typeof o.clusterId !== 'string' || o.box === undefined) return undefined
  return { to: o.to, clusterId: o.clusterId, box: o.box }
}

/** Inputs of `chooseIssuer`. */
export interface IssuerInput {
  self: string
  networkId: string
  clusterId: string
  init: string
  /** `clusterServers` of the cluster. */
  servers: ReadonlySet<string>
  /** Members other than self. */
  members: readonly MemberView[]
  /** `roles/status` and `roles/secrets` entries (others are ignored). */
  entries: readonly StateEntry[]
}

/** What `chooseIssuer` found. */
export interface IssuerChoice {
  /** The server that seals credentials now, or undefined when none is up. */
  issuer: string | undefined
  /** Every server that can issue: the init server and the servers that hold the secrets, up or not. */
  able: string[]
}

/** The one server that seals credentials now (see the module comment). */
export function chooseIssuer (input: IssuerInput): IssuerChoice {
  const { self, init, clusterId } = input
  const up = new Set<string>([self, ...input.members.filter(countsAsUp).map((m) => m.peerId)])
  const joined = new Set<string>()
  const holding = new Set<string>()
  for (const e of input.entries) {
    if (!input.servers.has(e.owner)) continue
    const v = e.value as { phase?: unknown, clusterId?: unknown } | null
    if (e.key === ROLE_KEYS.status && v?.phase === 'joined' && v.clusterId === clusterId) joined.add(e.owner)
    else if (e.key === ROLE_KEYS.secrets && parseSecretsCopy(e.value)?.clusterId === clusterId) holding.add(e.owner)
  }
  const others = [...input.servers]
    .filter((id) => id !== init && joined.has(id) && holding.has(id))
    .sort((a, b) => preferenceKey(a, input.networkId) < preferenceKey(b, input.networkId) ? -1 : 1)
  const able = [init, ...others]
  return { issuer: able.find((id) => up.has(id)), able }
}
