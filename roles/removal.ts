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
 *
 * A removal older than `p2p.forget_after` (or beyond the newest
 * `MAX_REMOVALS_PER_NODE`) is kept in a compact form: a 96-bit digest of the peer id
 * (`revocationDigest`) in the entry's `revoked` list, about a quarter of the bytes. By
 * then every node that was up has applied it by name; a digest still revokes the
 * identity wherever it shows up again (`judgeRemovals` matches the ids a node knows),
 * so a box back after years is refused like one back the next day. Only the names are
 * gone from `node list`. One entry holds `MAX_REMOVALS_PER_NODE` removals by name and
 * `MAX_COMPACT_REVOCATIONS` digests; past that the oldest digests go.
 */
import { createHash } from 'node:crypto'
import type { JsonValue, StateEntry } from '../p2p/types.ts'
import { CRED_PREFIX } from './types.ts'

/** State key of a node's removals, `{"removed": [RemovalValue…]}`. */
export const REMOVALS_KEY = 'node/removed'

/** Most removals one node's entry lists by name (about 80 bytes each); older ones are kept as digests. @default 250 */
export const MAX_REMOVALS_PER_NODE = 250

/** Most revocation digests one node's entry keeps (19 bytes each in the entry); the oldest go first. @default 2000 */
export const MAX_COMPACT_REVOCATIONS = 2000

/**
 * The compact form of a revoked peer id: base64url of the first 12 bytes of a
 * domain-separated SHA-256 of it (16 characters). A collision with an honest identity
 * is a 2^-96 chance per pair.
 */
export function revocationDigest (peer: string): string {
  return createHash('sha256').update(`kairos-p2p/revoked\u0000${peer}`).digest().subarray(0, 12).toString('base64url')
}

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

/** The revocation digests of a `node/removed` value (`revocationDigest`); malformed items are skipped. */
export function parseRevoked (e: Pick<StateEntry, 'key' | 'value'>): string[] {
  if (e.key !== REMOVALS_KEY) return []
  const v = e.value
  if (v === null || typeof v !== 'object' || Array.isArray(v) || !Array.isArray(v.revoked)) return []
  return v.revoked.filter((d): d is string => typeof d === 'string' && /^[A-Za-z0-9_-]{16}$/.test(d))
}

/** How `withRemoval` compacts: removals older than `afterMs` at `now` are kept as digests. */
export interface CompactOptions {
  now: number
  /** `p2p.forget_after`, ms. */
  afterMs: number
}

/**
 * The `node/removed` value of a node that held `current` (by name) and `revoked`
 * (digests) and now also removes `peer` at `at` (`peer` undefined: compacts only).
 * Removals older than `compact.afterMs`, and those beyond the newest
 * `MAX_REMOVALS_PER_NODE`, move to the digests, of which the newest
 * `MAX_COMPACT_REVOCATIONS` are kept. Pure.
 */
export function withRemoval (current: readonly RemovalValue[], peer: string | undefined, at: number, revoked: readonly string[] = [], compact?: CompactOptions): { key: string, value: JsonValue } {
  const listed = peer === undefined || current.some((r) => r.peer === peer) || revoked.includes(revocationDigest(peer))
  const list = listed ? [...current] : [...current, { peer, at }]
  list.sort((a, b) => a.at - b.at || (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0))
  const old = (r: RemovalValue): boolean => compact !== undefined && compact.now - r.at >= compact.afterMs
  const cut = Math.max(list.length - MAX_REMOVALS_PER_NODE, list.filter(old).length)
  const digests = [...revoked]
  for (const r of list.slice(0, cut)) {
    const d = revocationDigest(r.peer)
    if (!digests.includes(d)) digests.push(d)
  }
  const kept = list.slice(cut)
  const value: { removed: JsonValue[], revoked?: JsonValue[] } = { removed: kept.map((r) => ({ peer: r.peer, at: r.at })) }
  if (digests.length > 0) value.revoked = digests.slice(-MAX_COMPACT_REVOCATIONS)
  return { key: REMOVALS_KEY, value }
}

/** Whether `withRemoval` with `compact` would change the value: a removal by name is old enough. Pure. */
export function needsCompaction (current: readonly RemovalValue[], compact: CompactOptions): boolean {
  return current.some((r) => compact.now - r.at >= compact.afterMs)
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
 * target, and only counted publishers vote. A removal kept as a digest applies to
 * each of `known` (the identities this node knows of) whose digest it is, as of the
 * entry's `writtenAt`. Pure.
 */
export function judgeRemovals (entries: readonly StateEntry[], authority: RemovalAuthority, counted: ReadonlySet<string>, known: Iterable<string> = []): { applied: AppliedRemoval[], pending: PendingRemoval[] } {
  const byPeer = new Map<string, Map<string, number>>()
  let byDigest: Map<string, string> | undefined
  for (const e of entries) {
    const revoked = parseRevoked(e)
    if (revoked.length > 0) byDigest ??= new Map([...known].map((id) => [revocationDigest(id), id]))
    const named = revoked.map((d) => byDigest?.get(d)).filter((p) => p !== undefined).map((p) => ({ peer: p, at: e.writtenAt }))
    for (const r of [...parseRemovals(e), ...named]) {
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
