/**
 * Removal of a node from the site (pure): who may remove whom, and which removals a
 * node applies.
 *
 * A removal is a state entry `node/removed/<peer id>` (`RemovalValue`) signed by the
 * node that published it. Any token holder can publish one, so a node applies it only
 * when it is backed by one of:
 *
 * - the init server named in the cluster record this node accepted (backed by a
 *   quorum certificate): it may remove any node;
 * - a server, that is a node holding a server credential the accepted init server
 *   sealed (`cred/<peer>` of kind `server`): it may remove any node that is not a
 *   server itself;
 * - a strict majority of the site's counted identities (the target left out), each
 *   having published the same removal (`node remove --force` on a node that is not
 *   a server): it may remove any node, the init server included.
 *
 * So one hostile token holder cannot evict an honest node: without a server's
 * credential its removal is one vote among many. A hostile HA server can evict
 * agents, but it already holds the k3s server token, with which it can delete them
 * from the cluster anyway; it cannot evict another server or the init server.
 *
 * A server that applies a removal it has the authority for publishes its own copy,
 * so the revocation outlives the node that first published it.
 */
import type { JsonValue, StateEntry } from '../p2p/types.ts'
import { CRED_PREFIX } from './types.ts'

/** State key prefix of removals: `node/removed/<peer id>`, owned by whoever removes. */
export const REMOVAL_PREFIX = 'node/removed/'

/** What a removal entry carries. */
export interface RemovalValue {
  /** Peer id of the removed node (also the key's suffix). */
  peer: string
  /** Wall-clock ms when the remover published it (informational). */
  at: number
}

/** Who may remove: the accepted init server and the servers it sealed a server credential for. */
export interface RemovalAuthority {
  /** The init server of the accepted cluster record; undefined before one is accepted. */
  init: string | undefined
  /** Holders of a server credential from `init` (init excluded). */
  servers: ReadonlySet<string>
}

/** Why a removal applies. */
export type RemovalBasis = 'init-server' | 'server' | 'majority'

/** A removal this node applies. */
export interface AppliedRemoval {
  peer: string
  basis: RemovalBasis
  /** Every node that published this removal, sorted. */
  by: string[]
  /** Earliest `at` among them. */
  at: number
}

/** A removal published but not (yet) backed: for status and the CLI's answer. */
export interface PendingRemoval {
  peer: string
  by: string[]
  /** Publishers still needed for a majority. */
  needed: number
}

/** The state entry of a removal of `peer`. */
export function removalEntry (peer: string, at: number): { key: string, value: JsonValue } {
  return { key: `${REMOVAL_PREFIX}${peer}`, value: { peer, at } }
}

/** A removal value, or undefined when malformed or not matching its key. */
export function parseRemoval (e: Pick<StateEntry, 'key' | 'value'>): RemovalValue | undefined {
  if (!e.key.startsWith(REMOVAL_PREFIX)) return undefined
  const v = e.value
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined
  if (typeof v.peer !== 'string' || v.peer !== e.key.slice(REMOVAL_PREFIX.length) || v.peer === '') return undefined
  if (typeof v.at !== 'number' || !Number.isFinite(v.at) || v.at < 0) return undefined
  return { peer: v.peer, at: v.at }
}

/** The authority from the accepted init server and its `cred/` entries. Pure. */
export function removalAuthority (init: string | undefined, entries: readonly StateEntry[]): RemovalAuthority {
  const servers = new Set<string>()
  if (init !== undefined) {
    for (const e of entries) {
      if (e.owner !== init || !e.key.startsWith(CRED_PREFIX)) continue
      const v = e.value
      if (v === null || typeof v !== 'object' || Array.isArray(v) || v.kind !== 'server') continue
      const to = e.key.slice(CRED_PREFIX.length)
      if (to !== init) servers.add(to)
    }
  }
  return { init, servers }
}

/** Whether `remover` may remove `target` on its own. Pure. */
export function mayRemove (authority: RemovalAuthority, remover: string, target: string): RemovalBasis | undefined {
  if (remover === target) return undefined
  if (authority.init !== undefined && remover === authority.init) return 'init-server'
  if (authority.servers.has(remover) && target !== authority.init && !authority.servers.has(target)) return 'server'
  return undefined
}

/** Publishers a majority of `counted` needs: a strict majority of them. */
export function majorityOf (counted: number): number {
  return Math.floor(counted / 2) + 1
}

/**
 * The removals to apply and those still pending, from every `node/removed/` entry.
 * `counted` is the site's counted identities (this node, its members and the
 * publishers' own ids as they count); a majority is taken over them without the
 * target, and only counted publishers vote. Pure.
 */
export function judgeRemovals (entries: readonly StateEntry[], authority: RemovalAuthority, counted: ReadonlySet<string>): { applied: AppliedRemoval[], pending: PendingRemoval[] } {
  const byPeer = new Map<string, Map<string, number>>()
  for (const e of entries) {
    const r = parseRemoval(e)
    if (r === undefined || e.owner === r.peer) continue
    const m = byPeer.get(r.peer) ?? new Map<string, number>()
    m.set(e.owner, r.at)
    byPeer.set(r.peer, m)
  }
  const applied: AppliedRemoval[] = []
  const pending: PendingRemoval[] = []
  for (const [peer, publishers] of [...byPeer].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)) {
    const by = [...publishers.keys()].sort()
    const at = Math.min(...publishers.values())
    const bases = by.map((p) => mayRemove(authority, p, peer))
    const basis = bases.includes('init-server') ? 'init-server' : bases.includes('server') ? 'server' : undefined
    if (basis !== undefined) { applied.push({ peer, basis, by, at }); continue }
    const voters = new Set([...counted].filter((id) => id !== peer))
    const votes = by.filter((p) => voters.has(p)).length
    const need = majorityOf(voters.size)
    if (votes >= need) applied.push({ peer, basis: 'majority', by, at })
    else pending.push({ peer, by, needed: need - votes })
  }
  return { applied, pending }
}
