import { createHash } from 'node:crypto'
import type { StateEntry } from '../p2p/types.ts'
import type { StaticRole } from '../config/types.ts'
import {
  ROLE_KEYS, type Accepted, type Ballot, type ClusterRecord, type LocalFacts, type MemberView,
  type NodeValue, type ProposalValue, type RolesConfig, type VoteValue
} from './types.ts'

/*
 * Why the election is safe.
 *
 * Votes per term alone are not enough: candidate A can win term 1 and start
 * cluster-init while its record has not reached anyone, and B can then win term 2
 * with voters who moved on. So the election is single-decree Paxos over the state:
 * a ballot (round, proposer) is a term. A voter promises the highest ballot it has
 * seen and reports, with the promise, the value it last accepted; it accepts a
 * proposal only in the ballot it promised. Both are persisted before they are
 * published, so a restart cannot make a voter forget them. A proposer that gathers a
 * quorum of promises must propose the candidate of the highest ballot any of them
 * accepted, and only itself when none accepted anything. A candidate is chosen once
 * a quorum accepted it in one ballot; only then does it run cluster-init. Any two
 * quorums share a voter, so every later ballot re-proposes the chosen candidate:
 * there is never a second one, however messages are lost, delayed or reordered.
 *
 * Quorums intersect because a quorum is at least `minimum_nodes` voters and a strict
 * majority of the nodes the proposer knows. While `minimum_nodes` is more than half
 * of the nodes that boot before the cluster forms, two quorums cannot be disjoint.
 * With `minimum_nodes` at most half, a clean split can give each side a quorum of
 * its own: that is the documented limit, and `configWarnings` says so.
 *
 * Liveness: only the preferred node (lowest hash of peer id and network id among
 * alive, eligible nodes) stands, after its view has held still for the settle
 * period, and nobody stands while a ballot it promised is younger than the term
 * timeout. A ballot that stalls is superseded after the timeout.
 */

/** Orders ballots: by round, then by proposer id. */
export function compareBallots (a: Ballot, b: Ballot): number {
  if (a.n !== b.n) return a.n < b.n ? -1 : 1
  return a.by < b.by ? -1 : a.by > b.by ? 1 : 0
}

/** True when both ballots are present and equal. */
export function sameBallot (a: Ballot | null | undefined, b: Ballot | null | undefined): boolean {
  return a != null && b != null && a.n === b.n && a.by === b.by
}

/**
 * Votes a proposer needs: at least `minimum_nodes`, and a strict majority of the
 * nodes it knows (itself included).
 */
export function quorumSize (minimumNodes: number, knownNodes: number): number {
  return Math.max(minimumNodes, Math.floor(knownNodes / 2) + 1, 1)
}

const preferenceCache = new Map<string, string>()

/**
 * Deterministic preference of a node as init server candidate: lower is preferred.
 * sha256 of network id and peer id, hex.
 */
export function preferenceKey (peerId: string, networkId: string): string {
  const id = `${networkId}\u0000${peerId}`
  let key = preferenceCache.get(id)
  if (key === undefined) {
    key = createHash('sha256').update(id).digest('hex')
    if (preferenceCache.size > 4096) preferenceCache.clear()
    preferenceCache.set(id, key)
  }
  return key
}

/** The cluster id of the init server chosen in `ballot`. */
export function clusterIdFor (networkId: string, init: string, ballot: Ballot): string {
  return createHash('sha256').update(`kairos-p2p/cluster\u0000${networkId}\u0000${init}\u0000${ballot.n}\u0000${ballot.by}`).digest('hex').slice(0, 16)
}

/** Whether a node with this static role may be init server or an automatic HA server. */
export function isEligible (role: StaticRole, autoEnable: boolean): boolean {
  return role === 'master' || (role === 'auto' && autoEnable)
}

/** Whether a node with this static role takes a k3s role at all. */
export function takesK3sRole (role: StaticRole, autoEnable: boolean): boolean {
  return role === 'master' || role === 'worker' || (role === 'auto' && autoEnable)
}

// ---- parsing of entries written by other nodes (never trusted to be well formed) ----

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)
const isStr = (v: unknown): v is string => typeof v === 'string' && v.length > 0

/** A ballot from untrusted JSON, or undefined. */
export function parseBallot (v: unknown): Ballot | undefined {
  if (!isObj(v) || !Number.isSafeInteger(v.n) || (v.n as number) < 0 || !isStr(v.by)) return undefined
  return { n: v.n as number, by: v.by }
}

function parseAccepted (v: unknown): Accepted | null | undefined {
  if (v === null) return null
  if (!isObj(v)) return undefined
  const ballot = parseBallot(v.ballot)
  if (ballot === undefined || !isStr(v.candidate)) return undefined
  return { ballot, candidate: v.candidate }
}

/** A `roles/vote` value, or undefined when malformed. */
export function parseVote (v: unknown): VoteValue | undefined {
  if (!isObj(v)) return undefined
  const promised = v.promised === null ? null : parseBallot(v.promised)
  const accepted = parseAccepted(v.accepted)
  if (promised === undefined || accepted === undefined) return undefined
  return { promised, accepted }
}

/** A `roles/proposal` value, or undefined when malformed. */
export function parseProposal (v: unknown): ProposalValue | undefined {
  if (!isObj(v)) return undefined
  const ballot = parseBallot(v.ballot)
  if (ballot === undefined) return undefined
  const candidate = v.candidate === null || v.candidate === undefined ? null : isStr(v.candidate) ? v.candidate : undefined
  if (candidate === undefined) return undefined
  return { ballot, candidate, committed: v.committed === true && candidate !== null }
}

/** A `roles/cluster` value, or undefined when malformed. */
export function parseRecord (v: unknown): ClusterRecord | undefined {
  if (!isObj(v) || !isStr(v.clusterId) || !isStr(v.init) || typeof v.networkId !== 'string') return undefined
  const ballot = parseBallot(v.ballot)
  if (ballot === undefined) return undefined
  return { clusterId: v.clusterId, init: v.init, networkId: v.networkId, ballot }
}

/** A `roles/node` value, or undefined when malformed. */
export function parseNode (v: unknown): NodeValue | undefined {
  if (!isObj(v) || !isStr(v.sealKey)) return undefined
  const role = v.role
  if (role !== 'auto' && role !== 'master' && role !== 'worker' && role !== 'none') return undefined
  return { sealKey: v.sealKey, role, eligible: v.eligible === true, k3s: v.k3s === true }
}

/** The roles entries of a snapshot, parsed and indexed. Malformed entries are ignored. */
export interface RolesView {
  nodes: Map<string, NodeValue>
  votes: Map<string, VoteValue>
  /** Proposals whose ballot names their owner as proposer. */
  proposals: ProposalValue[]
  /** Cluster records owned by their init server. */
  records: ClusterRecord[]
  /** Own-namespace entries by key (owner = self), including the credentials self sealed. */
  own: Map<string, StateEntry>
  /** `roles/status` entries by owner. */
  statuses: Map<string, StateEntry>
  /** `cred/<self>` entries by owner (the sealer). */
  credsForSelf: Map<string, StateEntry>
}

type Parsed = NodeValue | VoteValue | ProposalValue | ClusterRecord | undefined
/** Parsed values by entry object: entries are immutable, so parsing once is enough. */
const parsedCache = new WeakMap<StateEntry, Parsed>()

function parsed<T extends Parsed> (e: StateEntry, parse: (v: unknown) => T): T {
  if (parsedCache.has(e)) return parsedCache.get(e) as T
  const v = parse(e.value)
  parsedCache.set(e, v)
  return v
}

/** Parses and indexes the `roles/` and `cred/` entries. */
export function indexEntries (self: string, networkId: string, entries: readonly StateEntry[]): RolesView {
  const view: RolesView = { nodes: new Map(), votes: new Map(), proposals: [], records: [], own: new Map(), statuses: new Map(), credsForSelf: new Map() }
  const selfCred = `cred/${self}`
  for (const e of entries) {
    if (e.owner === self) view.own.set(e.key, e)
    if (e.value === null) continue
    switch (e.key) {
      case ROLE_KEYS.node: {
        const n = parsed(e, parseNode)
        if (n !== undefined) view.nodes.set(e.owner, n)
        break
      }
      case ROLE_KEYS.vote: {
        const v = parsed(e, parseVote)
        if (v !== undefined) view.votes.set(e.owner, v)
        break
      }
      case ROLE_KEYS.proposal: {
        const p = parsed(e, parseProposal)
        if (p !== undefined && p.ballot.by === e.owner) view.proposals.push(p)
        break
      }
      case ROLE_KEYS.cluster: {
        const r = parsed(e, parseRecord)
        if (r !== undefined && r.init === e.owner && r.networkId === networkId) view.records.push(r)
        break
      }
      case ROLE_KEYS.status:
        view.statuses.set(e.owner, e)
        break
      case selfCred:
        view.credsForSelf.set(e.owner, e)
        break
    }
  }
  // Deterministic choice if ever more than one record exists (only past the documented limit).
  view.records.sort((a, b) => compareBallots(a.ballot, b.ballot) || (a.init < b.init ? -1 : 1))
  return view
}

/**
 * Whether the election counts a member as up: alive or merely suspect. A suspicion is
 * a question, not a verdict (SWIM): on a busy box members flap between alive and
 * suspect every few seconds, and counting them out made the settle period restart and
 * nodes disagree on who should stand. A member that is really gone is dead moments later.
 */
export function countsAsUp (m: MemberView): boolean {
  return m.liveness !== 'dead'
}

/** Tracks since when the set of members counted as up is unchanged. Pure: returns the next tracker. */
export function trackView (prev: { key: string, since: number } | undefined, members: readonly MemberView[], now: number): { key: string, since: number } {
  const key = members.filter(countsAsUp).map((m) => m.peerId).sort().join(',')
  return prev !== undefined && prev.key === key ? prev : { key, since: now }
}

/** What the election step decided, besides the updated facts. */
export interface ElectionOutcome {
  local: LocalFacts
  /** The chosen candidate, when a commit was seen. */
  chosen?: { candidate: string, ballot: Ballot }
  /** A candidate currently being voted on (for status). */
  candidate?: string
  /** Nodes known (self included) and the quorum this node would need. */
  known: number
  quorum: number
  /** Nodes counted as up (alive or suspect, see `countsAsUp`), self included. */
  alive: number
  /** When the outcome may change with time alone (settle period or term timeout ending). */
  recheckAt?: number
}

function voterStep (local: LocalFacts, proposals: readonly ProposalValue[], now: number): LocalFacts {
  let next = local
  let top: ProposalValue | undefined
  for (const p of proposals) if (top === undefined || compareBallots(p.ballot, top.ballot) > 0) top = p
  if (top !== undefined && (next.promised === null || compareBallots(top.ballot, next.promised) > 0)) {
    next = { ...next, promised: top.ballot, promisedAt: now }
  }
  const promised = next.promised
  if (promised !== null && !sameBallot(next.accepted?.ballot, promised)) {
    const p = proposals.find((q) => sameBallot(q.ballot, promised) && q.candidate !== null)
    if (p?.candidate != null) next = { ...next, accepted: { ballot: p.ballot, candidate: p.candidate }, promisedAt: now }
  }
  return next
}

/**
 * One election step of node `self` while no cluster record exists: the voter
 * promises and accepts, the proposer advances its ballot, the preferred node stands.
 * Returns the next local facts (persist before publishing) and a commit if seen.
 */
export function electionStep (input: {
  self: string
  now: number
  networkId: string
  config: RolesConfig
  members: readonly MemberView[]
  view: RolesView
  local: LocalFacts
  viewSince: number
}): ElectionOutcome {
  const { self, now, config, view, networkId } = input
  const known = new Set<string>([self])
  for (const m of input.members) known.add(m.peerId)
  for (const id of view.nodes.keys()) known.add(id)
  const quorum = quorumSize(config.minimumNodes, known.size)
  const aliveIds = [self, ...input.members.filter(countsAsUp).map((m) => m.peerId)]
  const alive = aliveIds.length

  const proposalsWith = (l: LocalFacts): ProposalValue[] => {
    const list = view.proposals.filter((p) => p.ballot.by !== self)
    if (l.proposal !== null) list.push({ ballot: l.proposal.ballot, candidate: l.proposal.candidate, committed: l.proposal.committed })
    return list
  }
  const votesWith = (l: LocalFacts): Array<[string, VoteValue]> => {
    const list: Array<[string, VoteValue]> = [...view.votes].filter(([id]) => id !== self)
    list.push([self, { promised: l.promised, accepted: l.accepted }])
    return list
  }

  let local = voterStep(input.local, proposalsWith(input.local), now)

  // Proposer: advance own ballot.
  const own = local.proposal
  if (own !== null && !own.committed && (local.promised === null || compareBallots(local.promised, own.ballot) <= 0)) {
    const votes = votesWith(local)
    if (own.candidate === null) {
      const promisers = votes.filter(([, v]) => sameBallot(v.promised, own.ballot))
      if (promisers.length >= quorum) {
        let best: Accepted | null = null
        for (const [, v] of promisers) {
          if (v.accepted !== null && (best === null || compareBallots(v.accepted.ballot, best.ballot) > 0)) best = v.accepted
        }
        local = { ...local, proposal: { ...own, candidate: best?.candidate ?? self } }
      }
    } else {
      const acceptors = votes.filter(([, v]) => sameBallot(v.accepted?.ballot, own.ballot))
      if (acceptors.length >= quorum) local = { ...local, proposal: { ...own, committed: true } }
    }
    local = voterStep(local, proposalsWith(local), now)
  }

  // A commit, by any proposer; or a quorum of accepts for self seen directly.
  let chosen: ElectionOutcome['chosen']
  for (const p of proposalsWith(local)) {
    if (p.committed && p.candidate !== null) { chosen = { candidate: p.candidate, ballot: p.ballot }; break }
  }
  if (chosen === undefined) {
    const tally = new Map<string, { ballot: Ballot, candidate: string, count: number }>()
    for (const [, v] of votesWith(local)) {
      if (v.accepted === null || v.accepted.candidate !== self) continue
      const k = `${v.accepted.ballot.n}\u0000${v.accepted.ballot.by}`
      const t = tally.get(k) ?? { ballot: v.accepted.ballot, candidate: self, count: 0 }
      t.count++
      tally.set(k, t)
      if (t.count >= quorum) chosen = { candidate: self, ballot: t.ballot }
    }
  }
  if (chosen !== undefined) return { local, chosen, candidate: chosen.candidate, known: known.size, quorum, alive }

  // Stand for election? A node's own ballot stays in flight until it is committed or
  // superseded: restarting it on a timer would only race its own slow voters. A
  // ballot of another node is waited for until the term timeout after the last
  // promise or accept, then the preferred node may supersede it.
  const ownLive = local.proposal !== null && !local.proposal.committed &&
    (local.promised === null || compareBallots(local.promised, local.proposal.ballot) <= 0)
  const othersUntil = local.promised !== null && local.promised.by !== self ? local.promisedAt + config.termTimeoutMs : 0
  const inFlight = ownLive || now < othersUntil
  const selfEligible = isEligible(config.staticRole, config.autoEnable)
  const stable = now - input.viewSince >= config.settleMs
  const mayStand = selfEligible && alive >= config.minimumNodes && alive >= quorum &&
    preferredCandidate(aliveIds, self, view, networkId, selfEligible) === self
  let recheckAt: number | undefined
  if (mayStand && !ownLive && (!stable || now < othersUntil)) recheckAt = Math.max(input.viewSince + config.settleMs, othersUntil)
  if (mayStand && !inFlight && stable) {
    let n = Math.max(local.promised?.n ?? 0, local.proposal?.ballot.n ?? 0)
    for (const p of view.proposals) n = Math.max(n, p.ballot.n)
    for (const v of view.votes.values()) n = Math.max(n, v.promised?.n ?? 0)
    const ballot: Ballot = { n: n + 1, by: self }
    local = { ...local, proposal: { ballot, candidate: null, committed: false, startedAt: now } }
    local = voterStep(local, proposalsWith(local), now)
  }
  const current = local.accepted?.candidate ?? undefined
  return { local, candidate: current, known: known.size, quorum, alive, ...(recheckAt === undefined ? {} : { recheckAt }) }
}

/**
 * The node that should stand: lowest preference key among alive nodes whose
 * `roles/node` entry says they are eligible.
 */
export function preferredCandidate (aliveIds: readonly string[], self: string, view: RolesView, networkId: string, selfEligible: boolean): string | undefined {
  let best: string | undefined
  let bestKey = ''
  for (const id of aliveIds) {
    const eligible = id === self ? selfEligible : view.nodes.get(id)?.eligible === true
    if (!eligible) continue
    const key = preferenceKey(id, networkId)
    if (best === undefined || key < bestKey) { best = id; bestKey = key }
  }
  return best
}
