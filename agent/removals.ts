/**
 * Node removal on one agent: judges the published removals (roles/removal.ts) on every
 * relevant state change and hands the backed ones to the p2p node (`revoke`), which
 * refuses their admission, drops their entries and leaves them out of the members;
 * serves `node list` and `node remove`.
 */
import type { Clock } from '../util/clock.ts'
import { errorMessage } from '../util/errors.ts'
import type { Logger } from '../util/log.ts'
import type { P2PNode } from '../p2p/index.ts'
import type { StateChange } from '../p2p/types.ts'
import { CRED_PREFIX } from '../roles/types.ts'
import { DEFAULT_FORGET_AFTER_MS } from '../config/defaults.ts'
import {
  judgeRemovals, majorityOf, mayRemove, needsCompaction, parseRemovals, parseRevoked, removalAuthority, REMOVALS_KEY, withRemoval,
  type AppliedRemoval, type PendingRemoval, type RemovalAuthority
} from '../roles/removal.ts'
import { VPN_ADVERT_KEY, parseAdvert } from '../vpn/peers.ts'
import { describeNode, NodeRemoveRefusedError, resolveNode, type KnownNode } from './nodes.ts'
import { shortPeer } from './reason.ts'

/** State key of a node's signed presence (p2p/node.ts `MEMBER_KEY`). */
const MEMBER_KEY = 'p2p/member'

/** What `node remove` answers. */
export interface RemoveResult {
  peer: string
  /** The node as it was known. */
  node: KnownNode
  /** Set when this node applies the removal now. */
  applied?: AppliedRemoval
  /** Set when the removal waits for more publishers (a `--force` vote). */
  pending?: PendingRemoval
  /** Said to the operator: a vote that is not enough, a node already removed. */
  warning?: string
}

/** Options of `createRemovals`. */
export interface RemovalsInit {
  node: Pick<P2PNode, 'peerId' | 'state' | 'status' | 'revoke' | 'revoked'>
  /** The init server of the accepted cluster record (roles controller). */
  acceptedInit: () => string | undefined
  clock: Clock
  logger: Logger
  /** `p2p.forget_after`: own removals older than this are kept as digests (roles/removal.ts). @default DEFAULT_FORGET_AFTER_MS */
  forgetAfterMs?: number
}

/** The running removal judge of one agent. */
export interface Removals {
  start: () => void
  stop: () => void
  /** Judges the removals again and applies them (also run on every relevant change). */
  refresh: () => void
  /** Every identity this node knows, self first. */
  nodes: () => KnownNode[]
  /** Removals applied (for status). */
  applied: () => AppliedRemoval[]
  /** `node remove`: resolves `query`, checks this node's authority (or `force`), publishes. */
  remove: (query: string, force: boolean) => Promise<RemoveResult>
}

const relevant = (c: StateChange): boolean => {
  const k = c.entry.key
  // roles/: the accepted record (and with it the authority) comes with the roles entries.
  return k === REMOVALS_KEY || k.startsWith(CRED_PREFIX) || k.startsWith('roles/') || k === MEMBER_KEY
}

/** Creates the judge; it acts from `start()`. */
export function createRemovals (init: RemovalsInit): Removals {
  const { node, clock, logger } = init
  const state = node.state
  let applied: AppliedRemoval[] = []
  let pending: PendingRemoval[] = []
  let authority: RemovalAuthority = { init: undefined, servers: new Set() }
  let started = false
  /** Own removals are written one at a time, each over the last. */
  let writing: Promise<unknown> = Promise.resolve()
  const compact = (): { now: number, afterMs: number } => ({ now: clock.now(), afterMs: init.forgetAfterMs ?? DEFAULT_FORGET_AFTER_MS })
  /** Adds `peer` to this node's removals (undefined: only compacts the old ones). */
  const addRemoval = async (peer: string | undefined, at: number): Promise<void> => {
    const run = writing.then(async () => {
      const own = state.get(state.self, REMOVALS_KEY)
      const current = own === undefined ? [] : parseRemovals(own)
      const revoked = own === undefined ? [] : parseRevoked(own)
      const { key, value } = withRemoval(current, peer, at, revoked, compact())
      if (own !== undefined && JSON.stringify(own.value) === JSON.stringify(value)) return
      await state.put(key, value)
    })
    writing = run.catch(() => {})
    await run
  }
  const echoing = new Set<string>()
  let compacting = false

  const counted = (): Set<string> => new Set([state.self, ...state.members().map((m) => m.peerId)])

  const refresh = (): void => {
    if (!started) return
    const entries = [...state.list(REMOVALS_KEY).filter((e) => e.key === REMOVALS_KEY), ...state.list(CRED_PREFIX)]
    authority = removalAuthority(init.acceptedInit(), entries)
    // Removals kept as digests apply to the identities this node knows of.
    const voters = counted()
    const known = new Set<string>([...voters, ...state.list(MEMBER_KEY).map((e) => e.owner)])
    const judged = judgeRemovals(entries, authority, voters, known)
    applied = judged.applied
    pending = judged.pending
    const revoke = new Set(applied.map((a) => a.peer).filter((p) => p !== state.self))
    const before = node.revoked()
    if (revoke.size !== before.size || [...revoke].some((p) => !before.has(p))) {
      for (const a of applied) if (!before.has(a.peer) && a.peer !== state.self) logger.info('applying node removal', { peer: a.peer, basis: a.basis, by: a.by })
      node.revoke(revoke)
    }
    const own = state.get(state.self, REMOVALS_KEY)
    if (own !== undefined && !compacting && needsCompaction(parseRemovals(own), compact())) {
      compacting = true
      addRemoval(undefined, 0).catch((err: unknown) => { logger.warn('cannot compact this node\'s removals', { error: errorMessage(err) }) })
        .finally(() => { compacting = false })
    }
    if (applied.some((a) => a.peer === state.self)) logger.warn('this node was removed from the site; peers refuse it. Wipe its state dir to rejoin as a new node')
    // A node with the authority for a removal publishes its own copy: the revocation
    // then outlives the node that published it first.
    for (const a of applied) {
      if (a.by.includes(state.self) || echoing.has(a.peer) || mayRemove(authority, state.self, a.peer) === undefined) continue
      echoing.add(a.peer)
      addRemoval(a.peer, a.at).catch((err: unknown) => { logger.warn('cannot publish a copy of a node removal', { peer: a.peer, error: errorMessage(err) }) })
        .finally(() => { echoing.delete(a.peer) })
    }
  }

  const onChange = (evt: CustomEvent<StateChange>): void => { if (relevant(evt.detail)) refresh() }
  const onMember = (): void => { if (pending.length > 0) refresh() }

  const nodes = (): KnownNode[] => {
    const p = node.status()
    const self = state.self
    const hosts = new Map<string, string>()
    for (const e of state.list(MEMBER_KEY)) {
      const v = e.value
      if (e.key === MEMBER_KEY && v !== null && typeof v === 'object' && !Array.isArray(v) && typeof v.host === 'string') hosts.set(e.owner, v.host)
    }
    const addresses = new Map<string, string>()
    for (const e of state.list(VPN_ADVERT_KEY)) {
      const a = e.key === VPN_ADVERT_KEY && e.value !== null ? parseAdvert(e.value) : undefined
      if (a !== undefined) addresses.set(e.owner, a.address)
    }
    const roles = new Map<string, string>()
    for (const e of state.list('roles/status')) {
      const v = e.value
      if (e.key === 'roles/status' && v !== null && typeof v === 'object' && !Array.isArray(v) && typeof v.role === 'string') roles.set(e.owner, v.role)
    }
    const rows = new Map<string, KnownNode>()
    const add = (id: string, liveness: string, lastSeen: number): KnownNode => {
      let n = rows.get(id)
      if (n === undefined) {
        const host = hosts.get(id)
        const address = addresses.get(id)
        const role = roles.get(id)
        n = { peerId: id, liveness, lastSeen, ...(host === undefined ? {} : { host }), ...(address === undefined ? {} : { address }), ...(role === undefined ? {} : { role }) }
        rows.set(id, n)
      }
      return n
    }
    add(self, 'self', clock.now()).self = true
    for (const peer of p.peers) add(peer.id, peer.liveness, peer.lastSeen)
    for (const d of p.departed) {
      const n = add(d.id, d.liveness, d.lastSeen)
      if (d.reason === 'forgotten') n.forgotten = true
    }
    for (const owner of [...hosts.keys(), ...addresses.keys(), ...roles.keys()]) add(owner, 'unknown', 0)
    for (const a of applied) add(a.peer, 'unknown', 0).removed = { basis: a.basis, by: a.by, at: a.at }
    for (const q of pending) add(q.peer, 'unknown', 0).pendingRemoval = { by: q.by, needed: q.needed }
    const [first, ...rest] = [...rows.values()]
    return [first as KnownNode, ...rest.sort((a, b) => a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0)]
  }

  const remove = async (query: string, force: boolean): Promise<RemoveResult> => {
    refresh()
    const target = resolveNode(query, nodes())
    const self = state.self
    if (target.peerId === self) throw new NodeRemoveRefusedError(`node remove: ${describeNode(target)} is this node; run the removal on another node of the site`)
    const already = applied.find((a) => a.peer === target.peerId)
    if (already !== undefined) {
      return { peer: target.peerId, node: target, applied: already, warning: `${describeNode(target)} was already removed (by ${already.by.map(shortPeer).join(', ')})` }
    }
    const basis = mayRemove(authority, self, target.peerId)
    let warning: string | undefined
    if (basis === undefined) {
      const why = authority.init === undefined
        ? 'no cluster record is accepted yet, so no node is a server'
        : authority.servers.has(self)
          ? `${describeNode(target)} is a server, and only the init server ${shortPeer(authority.init)} or a majority of the site may remove a server`
          : `this node is not a server (the init server is ${shortPeer(authority.init)})`
      const voters = new Set([...counted()].filter((id) => id !== target.peerId))
      const need = majorityOf(voters.size)
      if (!force) {
        throw new NodeRemoveRefusedError(`node remove: ${why}; run it on ${authority.init === undefined ? 'a server once the cluster has formed' : `the init server ${shortPeer(authority.init)}`}, or pass --force to publish this node's vote: the removal then takes effect once ${need} of the ${voters.size} counted nodes have run 'node remove --force' for it`)
      }
      warning = `${why}: this node's removal is a vote; it takes effect once ${need} of the ${voters.size} counted nodes (the target left out) have published it${authority.init === undefined ? '' : `, or once the init server ${shortPeer(authority.init)} does`}`
    }
    await addRemoval(target.peerId, clock.now())
    refresh()
    const now = applied.find((a) => a.peer === target.peerId)
    const wait = pending.find((q) => q.peer === target.peerId)
    if (now !== undefined) warning = undefined
    else if (wait !== undefined && warning !== undefined) warning = `${warning}; ${wait.needed} more needed`
    logger.info('node removal published', { peer: target.peerId, applied: now !== undefined, force })
    return { peer: target.peerId, node: target, ...(now === undefined ? {} : { applied: now }), ...(wait === undefined ? {} : { pending: wait }), ...(warning === undefined ? {} : { warning }) }
  }

  return {
    start: () => {
      if (started) return
      started = true
      state.addEventListener('change', onChange)
      state.addEventListener('member:join', onMember)
      state.addEventListener('member:leave', onMember)
      refresh()
    },
    stop: () => {
      if (!started) return
      started = false
      state.removeEventListener('change', onChange)
      state.removeEventListener('member:join', onMember)
      state.removeEventListener('member:leave', onMember)
    },
    refresh,
    nodes,
    applied: () => applied,
    remove
  }
}
