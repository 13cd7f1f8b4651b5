/**
 * The site's known identities for `kairos-p2p node list`, and the lookup `node remove`
 * does on them (pure).
 */
import { InputError, KairosError } from '../util/errors.ts'
import { shortPeer } from './reason.ts'

/** One identity this node knows of. */
export interface KnownNode {
  peerId: string
  /** True for this node. */
  self?: boolean
  /** The host name it published with its presence. */
  host?: string
  /** Its overlay address (from its VPN advert). */
  address?: string
  /** The k3s role it published. */
  role?: string
  /** `self`, `alive`, `suspect`, `dead` or `unknown` (no membership row). */
  liveness: string
  /** Wall-clock ms of its last sign of life; 0 when never seen. */
  lastSeen: number
  /** Set once this node applied a removal of it. */
  removed?: { basis: string, by: string[], at: number }
  /** Published removals of it that are not backed yet. */
  pendingRemoval?: { by: string[], needed: number }
  /** Dead longer than `p2p.forget_after`: out of WireGuard and the counts, not revoked. */
  forgotten?: boolean
}

/** No known identity matches what `node remove` was given. */
export class UnknownNodeError extends InputError {
  constructor (query: string) {
    super(`no known node matches '${query}'; expected a peer id, a host name or an overlay address from 'kairos-p2p node list'`)
    this.name = 'UnknownNodeError'
  }
}

/** Several identities match (a host name reused by a reinstalled box, say). */
export class AmbiguousNodeError extends InputError {
  readonly matches: string[]
  constructor (query: string, matches: KnownNode[]) {
    super(`'${query}' matches ${matches.length} nodes: ${matches.map((m) => `${m.peerId} (${m.liveness}${m.address === undefined ? '' : `, ${m.address}`})`).join(', ')}; give the peer id`)
    this.name = 'AmbiguousNodeError'
    this.matches = matches.map((m) => m.peerId)
  }
}

/** This node may not remove the target on its own, and `--force` was not given. */
export class NodeRemoveRefusedError extends KairosError {
  constructor (message: string) {
    super(message, { exitCode: 2 })
    this.name = 'NodeRemoveRefusedError'
  }
}

/**
 * The identity `query` names: a whole peer id, a unique peer id suffix of at least 6
 * characters (as `status` shortens them), a host name or an overlay address. Throws
 * UnknownNodeError or AmbiguousNodeError. Pure.
 */
export function resolveNode (query: string, nodes: readonly KnownNode[]): KnownNode {
  const q = query.trim()
  if (q === '') throw new UnknownNodeError(query)
  const exact = nodes.find((n) => n.peerId === q)
  if (exact !== undefined) return exact
  const tries: Array<(n: KnownNode) => boolean> = [
    (n) => n.address === q,
    (n) => n.host === q,
    (n) => q.length >= 6 && (n.peerId.endsWith(q) || n.peerId.startsWith(q))
  ]
  for (const t of tries) {
    const hits = nodes.filter(t)
    if (hits.length === 1) return hits[0] as KnownNode
    if (hits.length > 1) throw new AmbiguousNodeError(query, hits)
  }
  throw new UnknownNodeError(query)
}

function ago (now: number, at: number): string {
  if (at <= 0) return 'never'
  const s = Math.max(0, Math.round((now - at) / 1000))
  if (s < 120) return `${s}s ago`
  if (s < 7200) return `${Math.round(s / 60)}m ago`
  if (s < 172_800) return `${Math.round(s / 3600)}h ago`
  return `${Math.round(s / 86_400)}d ago`
}

/** The state a node is in for `node list`: removed, forgotten, pending removal, or its liveness. */
export function nodeState (n: KnownNode): string {
  if (n.removed !== undefined) return `removed (${n.removed.basis})`
  if (n.forgotten === true) return 'forgotten'
  if (n.pendingRemoval !== undefined) return `${n.liveness}, removal needs ${n.pendingRemoval.needed} more`
  return n.liveness
}

/** The table `kairos-p2p node list` prints. */
export function formatNodes (nodes: readonly KnownNode[], now: number): string {
  const rows = [['PEER', 'HOST', 'OVERLAY', 'ROLE', 'STATE', 'LAST SEEN']]
  for (const n of nodes) {
    rows.push([
      `${n.peerId}${n.self === true ? ' (self)' : ''}`,
      n.host ?? '-',
      n.address ?? '-',
      n.role ?? '-',
      nodeState(n),
      n.self === true ? '-' : ago(now, n.lastSeen)
    ])
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? []
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd()).join('\n') + '\n'
}

/** A one-line name of a node for messages: short id, host and address. */
export function describeNode (n: KnownNode): string {
  const extra = [n.host, n.address].filter((x): x is string => x !== undefined)
  return `${shortPeer(n.peerId)}${extra.length === 0 ? '' : ` (${extra.join(', ')})`}`
}
