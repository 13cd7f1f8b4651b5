/**
 * Removal of a node from the site (pure): who may remove whom, and which removals a
 * node applies.
 *
 * Each node that removes others publishes one state entry, `node/removed`, listing
 * every node it removed (`RemovalValue`s), signed by its key: one entry whatever the
 * number of removals over the site's life, so removals never take from the per-owner
 * entry count. Any token holder can publish one, so a node applies a removal only
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

/** State key of a node's removals, `{"removed": [RemovalValue…]}`. */
export const REMOVALS_KEY = 'node/removed'

/** Most removals one node's entry lists (about 80 bytes each, within an entry's bound); the oldest go first. */
export const MAX_REMOVALS_PER_NODE = 600

/** One removal in a `node/removed` entry. */
export interface RemovalValue {
  /** Peer id of the removed node. */
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

/**
 * The removals a `node/removed` value lists; malformed items are skipped (an entry
 * that is not a list yields none).
 */
export function parseRemovals (e: Pick<StateEntry, 'key' | 'value'>): RemovalValue[] {
  if (e.key !== REMOVALS_KEY) return []
  const v = e.value
  if (v === null || typeof v !== 'object' || Array.isArray(v) || !Array.isArray(v.removed)) return []
  const out: RemovalValue[] = []
  for (const item of v.removed) {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) continue
    const { peer, at } = item
    if (typeof peer !== 'string' || peer === '' || peer.length > 128 || typeof at !== 'number' || !Number.isFinite(at) || at < 0) continue
    out.push({ peer, at })
  }
  return out
}

/**
 * The `node/removed` value of a node that held `current` and now also removes `peer`
 * at `at` (unchanged when it already lists it). Keeps the newest
 * `MAX_REMOVALS_PER_NODE`. Pure.
 */
export function withRemoval (current: readonly RemovalValue[], peer: string, at: number): { key: string, value: JsonValue } {
  const list = current.some((r) => r.peer === peer) ? [...current] : [...current, { peer, at }]
  const kept = list.sort((a, b) => a.at - b.at || (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0)).slice(-MAX_REMOVALS_PER_NODE)
  return { key: REMOVALS_KEY, value: { removed: kept.map((r) => ({ peer: r.peer, at: r.at })) } }
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
 * The removals to apply and those still pending, from every `node/removed` entry.
 * `counted` is the site's counted identities (this node, its members and the
 * publishers' own ids as they count); a majority is taken over them without the
 * target, and only counted publishers vote. Pure.
 */
export function judgeRemovals (entries: readonly StateEntry[], authority: RemovalAuthority, counted: ReadonlySet<string>): { applied: AppliedRemoval[], pending: PendingRemoval[] } {
  const byPeer = new Map<string, Map<string, number>>()
  for (const e of entries) {
    for (const r of parseRemovals(e)) {
      if (e.owner === r.peer) continue
      const m = byPeer.get(r.peer) ?? new Map<string, number>()
      m.set(e.owner, r.at)
      byPeer.set(r.peer, m)
    }
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
