import { createHash } from 'node:crypto'
import type { StateEntry } from '../p2p/types.ts'
import type { StaticRole } from '../config/types.ts'
import { sealKeyProblem } from './credentials.ts'
import {
  ROLE_KEYS, type Accepted, type Ballot, type CaValue, type ClusterRecord, type LocalFacts, type MemberView,
  type NodeValue, type PromiseRef, type ProposalValue, type QuorumCertificate, type RolesConfig, type VoteRef, type VoteValue
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
 * Against a member running modified code, nothing is taken on its word. Every vote
 * is an entry signed by its voter; "chosen" means a quorum of the vote entries held
 * accepted one candidate in one ballot, never that a proposal says so; the record
 * carries those votes as a certificate that every node checks before acting on it;
 * and a voter accepts a proposal only when the promises it cites check out and
 * justify its candidate. A member can still lie about its own vote: the promise rule
 * outvotes as many liars as two quorums' shared voters allow (`justifiedCandidate`).
 *
 * Liveness: only the preferred node (lowest hash of peer id and network id among
 * alive, eligible nodes) stands, after its view has held still for the settle
 * period, and nobody stands while a ballot it promised is younger than the term
 * timeout. A ballot that stalls is superseded after the timeout. Voters promise
 * only the preferred node's ballots, so no other member can keep superseding them.
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

/** Highest ballot round taken from the wire; a larger one makes the entry malformed. @default 1000000 */
export const MAX_BALLOT_ROUND = 1_000_000
/** Most a proposer's new round exceeds its own highest one. @default 1000 */
export const MAX_ROUND_STEP = 1000
/** Longest peer id taken in a ballot, a vote reference or a record, characters. @default 128 */
export const MAX_PEER_ID_CHARS = 128
/** Most vote references one certificate or proposal may carry. @default 1024 */
export const MAX_CERTIFICATE_VOTES = 1024
/** Largest number of known nodes a certificate or proposal may claim. @default 100000 */
export const MAX_KNOWN_NODES = 100_000

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)
const isStr = (v: unknown): v is string => typeof v === 'string' && v.length > 0
const isId = (v: unknown): v is string => isStr(v) && v.length <= MAX_PEER_ID_CHARS
const isCount = (v: unknown, max: number): v is number => Number.isSafeInteger(v) && (v as number) >= 1 && (v as number) <= max

/** JSON with object keys sorted, to compare and hash values independent of key order. */
export function canonicalJson (value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>
    return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

const hashCache = new WeakMap<object, string>()

/**
 * The content hash a vote reference names: sha256 of the vote value's canonical JSON,
 * the first 32 hex digits. With the owner and the version it names one signed vote.
 */
export function voteHash (value: unknown): string {
  const cacheable = typeof value === 'object' && value !== null
  if (cacheable) {
    const hit = hashCache.get(value)
    if (hit !== undefined) return hit
  }
  const h = createHash('sha256').update(`kairos-p2p/vote\u0000${canonicalJson(value)}`).digest('hex').slice(0, 32)
  if (cacheable) hashCache.set(value, h)
  return h
}

/** A ballot from untrusted JSON, or undefined. */
export function parseBallot (v: unknown): Ballot | undefined {
  if (!isObj(v) || !Number.isSafeInteger(v.n) || (v.n as number) < 0 || (v.n as number) > MAX_BALLOT_ROUND || !isId(v.by)) return undefined
  return { n: v.n as number, by: v.by }
}

function parseAccepted (v: unknown): Accepted | null | undefined {
  if (v === null) return null
  if (!isObj(v)) return undefined
  const ballot = parseBallot(v.ballot)
  if (ballot === undefined || !isId(v.candidate)) return undefined
  return { ballot, candidate: v.candidate }
}

/** A vote reference from untrusted JSON, or undefined. */
export function parseVoteRef (v: unknown): VoteRef | undefined {
  if (!isObj(v) || !isId(v.voter) || !isCount(v.version, Number.MAX_SAFE_INTEGER) || typeof v.hash !== 'string' || !/^[0-9a-f]{32}$/.test(v.hash)) return undefined
  return { voter: v.voter, version: v.version, hash: v.hash }
}

function parseList<T> (v: unknown, item: (x: unknown) => T | undefined): T[] | undefined {
  if (!Array.isArray(v) || v.length > MAX_CERTIFICATE_VOTES) return undefined
  const out: T[] = []
  for (const x of v) {
    const p = item(x)
    if (p === undefined) return undefined
    out.push(p)
  }
  return out
}

function parsePromiseRef (v: unknown): PromiseRef | undefined {
  const ref = parseVoteRef(v)
  const accepted = isObj(v) ? parseAccepted(v.accepted) : undefined
  return ref === undefined || accepted === undefined ? undefined : { ...ref, accepted }
}

/** A quorum certificate from untrusted JSON, or undefined. */
export function parseCertificate (v: unknown): QuorumCertificate | undefined {
  if (!isObj(v) || !isId(v.candidate) || !isCount(v.known, MAX_KNOWN_NODES)) return undefined
  const ballot = parseBallot(v.ballot)
  const votes = parseList(v.votes, parseVoteRef)
  if (ballot === undefined || votes === undefined) return undefined
  return { ballot, candidate: v.candidate, known: v.known, votes }
}

/** A `roles/vote` value, or undefined when malformed. */
export function parseVote (v: unknown): VoteValue | undefined {
  if (!isObj(v)) return undefined
  const promised = v.promised === null ? null : parseBallot(v.promised)
  const accepted = parseAccepted(v.accepted)
  if (promised === undefined || accepted === undefined) return undefined
  // Nobody accepts above what it promised: such a vote is malformed.
  if (promised !== null && accepted !== null && compareBallots(accepted.ballot, promised) > 0) return undefined
  if (promised === null && accepted !== null) return undefined
  return { promised, accepted }
}

/** A `roles/proposal` value, or undefined when malformed. */
export function parseProposal (v: unknown): ProposalValue | undefined {
  if (!isObj(v)) return undefined
  const ballot = parseBallot(v.ballot)
  if (ballot === undefined) return undefined
  const candidate = v.candidate === null || v.candidate === undefined ? null : isId(v.candidate) ? v.candidate : undefined
  if (candidate === undefined) return undefined
  const out: ProposalValue = { ballot, candidate, committed: v.committed === true && candidate !== null }
  if (v.known !== undefined) {
    if (!isCount(v.known, MAX_KNOWN_NODES)) return undefined
    out.known = v.known
  }
  if (v.promises !== undefined) {
    const promises = parseList(v.promises, parsePromiseRef)
    if (promises === undefined) return undefined
    out.promises = promises
  }
  return out
}

/** A `roles/cluster` value, or undefined when malformed. A record without a certificate is malformed. */
export function parseRecord (v: unknown): ClusterRecord | undefined {
  if (!isObj(v) || !isStr(v.clusterId) || !isId(v.init) || typeof v.networkId !== 'string') return undefined
  const ballot = parseBallot(v.ballot)
  const certificate = parseCertificate(v.certificate)
  if (ballot === undefined || certificate === undefined) return undefined
  return { clusterId: v.clusterId, init: v.init, networkId: v.networkId, ballot, certificate }
}

/** A `roles/ca` value, or undefined when malformed. */
export function parseCa (v: unknown): CaValue | undefined {
  if (!isObj(v) || !isStr(v.clusterId) || typeof v.caHash !== 'string' || !/^[0-9a-f]{64}$/.test(v.caHash)) return undefined
  return { clusterId: v.clusterId, caHash: v.caHash }
}

/** A `roles/node` value, or undefined when malformed. */
export function parseNode (v: unknown): NodeValue | undefined {
  // A seal key no box can be sealed to would hold an HA server slot for ever (roles/plan.ts).
  if (!isObj(v) || !isStr(v.sealKey) || sealKeyProblem(v.sealKey) !== undefined) return undefined
  const role = v.role
  if (role !== 'auto' && role !== 'master' && role !== 'worker' && role !== 'none') return undefined
  return { sealKey: v.sealKey, role, eligible: v.eligible === true, k3s: v.k3s === true }
}

/** The roles entries of a snapshot, parsed and indexed. Malformed entries are ignored. */
export interface RolesView {
  nodes: Map<string, NodeValue>
  votes: Map<string, VoteValue>
  /** The `roles/vote` entries behind `votes`, by owner: what vote references are checked against. */
  voteEntries: Map<string, StateEntry>
  /** Proposals whose ballot names their owner as proposer. */
  proposals: ProposalValue[]
  /**
   * Well-formed cluster records owned by their init server, by ballot. Not yet
   * checked: `checkRecord` says which one may be acted on.
   */
  records: ClusterRecord[]
  /** `roles/ca` values by owner. */
  cas: Map<string, CaValue>
  /** Own-namespace entries by key (owner = self), including the credentials self sealed. */
  own: Map<string, StateEntry>
  /** `roles/status` entries by owner. */
  statuses: Map<string, StateEntry>
  /** `cred/<self>` entries by owner (the sealer). */
  credsForSelf: Map<string, StateEntry>
}

type Parsed = NodeValue | VoteValue | ProposalValue | ClusterRecord | CaValue | undefined
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
  const view: RolesView = { nodes: new Map(), votes: new Map(), voteEntries: new Map(), proposals: [], records: [], cas: new Map(), own: new Map(), statuses: new Map(), credsForSelf: new Map() }
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
        if (v !== undefined) { view.votes.set(e.owner, v); view.voteEntries.set(e.owner, e) }
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
      case ROLE_KEYS.ca: {
        const c = parsed(e, parseCa)
        if (c !== undefined) view.cas.set(e.owner, c)
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
  view.records.sort((a, b) => compareBallots(a.ballot, b.ballot) || (a.init < b.init ? -1 : 1))
  return view
}

// ---- quorum certificates ----

/**
 * What checking a reference against the entries held gives: `ok`, `pending` (the
 * voter's entry has not arrived in that version yet: check again later) or `refuted`.
 */
export type RefCheck = 'ok' | 'pending' | 'refuted'

/** Whether two accepted values are the same. */
function sameAccepted (a: Accepted | null, b: Accepted | null): boolean {
  if (a === null || b === null) return a === b
  return a.candidate === b.candidate && sameBallot(a.ballot, b.ballot)
}

/**
 * Checks one vote of a certificate: the voter accepted `candidate` in `ballot`.
 * In the version named, the entry must hash as named and say so; a later version
 * must still accept `candidate`, in that ballot or a later one (a voter moves on to
 * a later ballot, but once a candidate is chosen every later ballot proposes it).
 */
export function checkAcceptRef (ref: VoteRef, view: RolesView, ballot: Ballot, candidate: string): RefCheck {
  const e = view.voteEntries.get(ref.voter)
  const v = view.votes.get(ref.voter)
  if (e === undefined || v === undefined || e.version < ref.version) return 'pending'
  if (e.version === ref.version) {
    return voteHash(e.value) === ref.hash && v.accepted !== null && v.accepted.candidate === candidate && sameBallot(v.accepted.ballot, ballot) ? 'ok' : 'refuted'
  }
  return v.accepted !== null && v.accepted.candidate === candidate && compareBallots(v.accepted.ballot, ballot) >= 0 ? 'ok' : 'refuted'
}

/**
 * Checks one promise a proposal counts on: the voter promised `ballot` and had then
 * accepted what the reference reports. A later version must have promised at least
 * `ballot` and accepted either the same or in `ballot` or later (the only moves a
 * voter can make after that promise).
 */
export function checkPromiseRef (ref: PromiseRef, view: RolesView, ballot: Ballot): RefCheck {
  if (ref.accepted !== null && compareBallots(ref.accepted.ballot, ballot) >= 0) return 'refuted'
  const e = view.voteEntries.get(ref.voter)
  const v = view.votes.get(ref.voter)
  if (e === undefined || v === undefined || e.version < ref.version) return 'pending'
  if (e.version === ref.version) {
    return voteHash(e.value) === ref.hash && sameBallot(v.promised, ballot) && sameAccepted(v.accepted, ref.accepted) ? 'ok' : 'refuted'
  }
  if (v.promised === null || compareBallots(v.promised, ballot) < 0) return 'refuted'
  return sameAccepted(v.accepted, ref.accepted) || (v.accepted !== null && compareBallots(v.accepted.ballot, ballot) >= 0) ? 'ok' : 'refuted'
}

/** The result of checking a certificate or a proposal's promises. */
export type CertificateCheck = 'valid' | 'pending' | 'invalid'

/**
 * Checks a quorum certificate against the votes held: `valid` when at least
 * `quorumSize(minimumNodes, known)` distinct voters check out, `pending` when that
 * many could once the missing votes arrive, `invalid` otherwise.
 */
export function checkCertificate (cert: QuorumCertificate, view: RolesView, minimumNodes: number): CertificateCheck {
  const quorum = quorumSize(minimumNodes, cert.known)
  if (cert.votes.length < quorum) return 'invalid'
  const seen = new Set<string>()
  let ok = 0
  let pending = 0
  for (const ref of cert.votes) {
    if (seen.has(ref.voter)) continue
    seen.add(ref.voter)
    const r = checkAcceptRef(ref, view, cert.ballot, cert.candidate)
    if (r === 'ok') ok++
    else if (r === 'pending') pending++
  }
  return ok >= quorum ? 'valid' : ok + pending >= quorum ? 'pending' : 'invalid'
}

/**
 * Checks a cluster record: it names its owner as init server, its cluster id is the
 * one derived from the init server and ballot, and its certificate is for that init
 * server in that ballot and checks out.
 */
export function checkRecord (record: ClusterRecord, view: RolesView, networkId: string, minimumNodes: number): CertificateCheck {
  const c = record.certificate
  if (record.networkId !== networkId || c.candidate !== record.init || !sameBallot(c.ballot, record.ballot)) return 'invalid'
  if (record.clusterId !== clusterIdFor(networkId, record.init, record.ballot)) return 'invalid'
  return checkCertificate(c, view, minimumNodes)
}

/**
 * How many lying voters the promise rule tolerates at this quorum size: any two
 * quorums share `2·quorum − known` voters, and with `t` liars among them at least
 * `t + 1` must be honest, so `t = ⌊(2·quorum − known − 1) / 2⌋`. Zero is plain Paxos.
 */
export function liarsTolerated (minimumNodes: number, known: number): number {
  return Math.max(0, Math.floor((2 * quorumSize(minimumNodes, known) - known - 1) / 2))
}

/**
 * The candidate a set of promises justifies (Paxos phase 1).
 *
 * Plain Paxos takes the candidate accepted in the highest ballot reported. One voter
 * that lies about what it accepted (a made-up high ballot) would then steer every
 * later ballot to a candidate of its choice. With `liars` = t > 0, a candidate counts
 * at the (t+1)-th highest ballot its reporters give: a chosen candidate is reported by
 * at least t + 1 honest voters of every quorum, at its ballot or later, while any
 * other candidate's (t+1)-th report comes from an honest voter, who accepted it
 * earlier. So the chosen candidate always wins, and t liars reporting alike cannot
 * outrank it. When no candidate has t + 1 reports nothing can have been chosen, and
 * the proposer stands for itself. With t = 0 this is the plain rule.
 */
export function justifiedCandidate (reports: ReadonlyArray<Accepted | null>, proposer: string, liars: number): string {
  const byCandidate = new Map<string, Ballot[]>()
  for (const r of reports) {
    if (r === null) continue
    const list = byCandidate.get(r.candidate) ?? []
    list.push(r.ballot)
    byCandidate.set(r.candidate, list)
  }
  let best: { candidate: string, ballot: Ballot } | undefined
  for (const [candidate, ballots] of byCandidate) {
    if (ballots.length <= liars) continue
    ballots.sort((x, y) => compareBallots(y, x))
    const counted = ballots[liars] as Ballot
    if (best === undefined || compareBallots(counted, best.ballot) > 0) best = { candidate, ballot: counted }
  }
  return best?.candidate ?? proposer
}

/**
 * Whether a proposal's candidate is justified (Paxos phase 1): promises of its
 * ballot from a quorum of distinct voters, each checking out, and the candidate is
 * the one accepted in the highest ballot among them, or the proposer when none
 * accepted anything. A voter accepts only a justified proposal, so a proposal forged
 * with any candidate gathers no vote.
 */
export function checkPromises (p: ProposalValue, view: RolesView, minimumNodes: number, ownKnown: number): CertificateCheck {
  if (p.candidate === null || p.promises === undefined || p.known === undefined) return 'invalid'
  const quorum = quorumSize(minimumNodes, p.known)
  const voters = new Set(p.promises.map((r) => r.voter))
  if (voters.size !== p.promises.length || voters.size < quorum) return 'invalid'
  let pending = false
  for (const ref of p.promises) {
    const r = checkPromiseRef(ref, view, p.ballot)
    if (r === 'refuted') return 'invalid'
    if (r === 'pending') pending = true
  }
  // The rule follows the checker's own count of nodes, never the proposal's claim.
  if (justifiedCandidate(p.promises.map((r) => r.accepted), p.ballot.by, liarsTolerated(minimumNodes, ownKnown)) !== p.candidate) return 'invalid'
  return pending ? 'pending' : 'valid'
}

/** A reference to the vote entry `e` as held now. */
export function refOf (e: StateEntry): VoteRef {
  return { voter: e.owner, version: e.version, hash: voteHash(e.value) }
}

/**
 * Candidates a quorum of the votes held accepted in one ballot, each with the
 * certificate that proves it, lowest ballot first.
 */
export function certifiedChoices (view: RolesView, minimumNodes: number, known: number): QuorumCertificate[] {
  const quorum = quorumSize(minimumNodes, known)
  const groups = new Map<string, QuorumCertificate>()
  for (const [voter, v] of view.votes) {
    if (v.accepted === null) continue
    const k = `${v.accepted.ballot.n}\u0000${v.accepted.ballot.by}\u0000${v.accepted.candidate}`
    let g = groups.get(k)
    if (g === undefined) {
      g = { ballot: v.accepted.ballot, candidate: v.accepted.candidate, known, votes: [] }
      groups.set(k, g)
    }
    g.votes.push(refOf(view.voteEntries.get(voter) as StateEntry))
  }
  const out = [...groups.values()].filter((g) => g.votes.length >= quorum)
  for (const g of out) g.votes.sort((a, b) => (a.voter < b.voter ? -1 : 1))
  return out.sort((a, b) => compareBallots(a.ballot, b.ballot))
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
  /** The chosen candidate, once a quorum of the votes held accepted it in one ballot, with the proof. */
  chosen?: { candidate: string, ballot: Ballot, certificate: QuorumCertificate }
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

/**
 * The voter's part: promise the highest ballot seen, and accept in the ballot
 * promised only a proposal whose candidate its promises justify (`checkPromises`;
 * the node's own proposal is its own count) and, once a candidate is certified as
 * chosen, only that candidate.
 */
function voterStep (local: LocalFacts, proposals: readonly ProposalValue[], now: number, self: string, view: RolesView, minimumNodes: number, known: number, locked: string | undefined, mayStand: (proposer: string) => boolean): LocalFacts {
  let next = local
  let top: ProposalValue | undefined
  // Promise only ballots of a proposer that may stand in this voter's view (itself or
  // the preferred node): another member cannot keep superseding the election.
  for (const p of proposals) if (mayStand(p.ballot.by) && (top === undefined || compareBallots(p.ballot, top.ballot) > 0)) top = p
  if (top !== undefined && (next.promised === null || compareBallots(top.ballot, next.promised) > 0)) {
    next = { ...next, promised: top.ballot, promisedAt: now }
  }
  const promised = next.promised
  if (promised !== null && !sameBallot(next.accepted?.ballot, promised)) {
    const p = proposals.find((q) => sameBallot(q.ballot, promised) && q.candidate !== null)
    const justified = p !== undefined && (p.ballot.by === self || (checkPromises(p, view, minimumNodes, known) === 'valid' &&
      (p.candidate !== p.ballot.by || mayStand(p.ballot.by))))
    if (justified && p?.candidate != null && (locked === undefined || locked === p.candidate)) {
      next = { ...next, accepted: { ballot: p.ballot, candidate: p.candidate }, promisedAt: now }
    }
  }
  return next
}

/**
 * One election step of node `self` while no cluster record is accepted: the voter
 * promises and accepts, the proposer advances its ballot, the preferred node stands.
 * Returns the next local facts (persist before publishing) and the chosen candidate
 * with its certificate once the votes held prove it. Nothing a proposal says about
 * being decided is believed: only a quorum of votes is.
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
  // Who may be preferred: a member this node heard from within the grace period is
  // not taken as dead on someone's word, so a rumour cannot hand the preference on.
  const grace = config.rumourGraceMs ?? 0
  const preferable = [self, ...input.members.filter((m) => countsAsUp(m) || now - m.lastSeen < grace).map((m) => m.peerId)]

  const choices = certifiedChoices(view, config.minimumNodes, known.size)
  const locked = choices[0]?.candidate

  const proposalsWith = (l: LocalFacts): ProposalValue[] => {
    const list = view.proposals.filter((p) => p.ballot.by !== self)
    if (l.proposal !== null) {
      const { startedAt: _, ...own } = l.proposal
      list.push(own)
    }
    return list
  }
  // A proposer that puts itself forward is accepted only when no alive eligible node
  // this voter sees is preferred to it: a token holder cannot make itself init server
  // by standing early, only by being the node everyone would have preferred.
  const selfEligible = isEligible(config.staticRole, config.autoEnable)
  const preferred = preferredCandidate(preferable, self, view, networkId, selfEligible)
  const mayStandFor = (proposer: string): boolean => proposer === self || preferred === proposer
  const step = (l: LocalFacts): LocalFacts => voterStep(l, proposalsWith(l), now, self, view, config.minimumNodes, known.size, locked, mayStandFor)

  let local = step(input.local)

  // Proposer: advance own ballot, counting the vote entries held (its own included,
  // once published), so every reference it hands out can be checked by others.
  const own = local.proposal
  if (own !== null && !own.committed && (local.promised === null || compareBallots(local.promised, own.ballot) <= 0)) {
    if (own.candidate === null) {
      const promises: PromiseRef[] = []
      for (const [voter, v] of view.votes) {
        if (sameBallot(v.promised, own.ballot)) promises.push({ ...refOf(view.voteEntries.get(voter) as StateEntry), accepted: v.accepted })
      }
      if (promises.length >= quorum) {
        const candidate = justifiedCandidate(promises.map((r) => r.accepted), self, liarsTolerated(config.minimumNodes, known.size))
        promises.sort((a, b) => (a.voter < b.voter ? -1 : 1))
        local = { ...local, proposal: { ...own, candidate, known: known.size, promises } }
      }
    } else if (choices.some((c) => c.candidate === own.candidate && sameBallot(c.ballot, own.ballot))) {
      local = { ...local, proposal: { ...own, committed: true } }
    }
    local = step(local)
  }

  // Chosen: a quorum of the votes held accepted one candidate in one ballot.
  const mine = choices.find((c) => c.candidate === self)
  const cert = mine ?? choices[0]
  if (cert !== undefined) {
    return { local, chosen: { candidate: cert.candidate, ballot: cert.ballot, certificate: cert }, candidate: cert.candidate, known: known.size, quorum, alive }
  }

  // Stand for election? A node's own ballot stays in flight until it is committed or
  // superseded: restarting it on a timer would only race its own slow voters. A
  // ballot of another node is waited for until the term timeout after the last
  // promise or accept, then the preferred node may supersede it.
  // It is also given up once this node knows more nodes than when it chose its
  // candidate: voters judge the promises by their own count (`liarsTolerated`), so a
  // proposal counted on a smaller view may never be accepted.
  // And once so many voters promised a later ballot that the rest cannot make a
  // quorum: this node may not have promised that ballot itself (its proposer was not
  // preferred in its view), yet its own ballot can no longer win.
  const ownBallot = local.proposal?.ballot
  let ahead = 0
  if (ownBallot !== undefined) for (const v of view.votes.values()) if (v.promised !== null && compareBallots(v.promised, ownBallot) > 0) ahead++
  const ownLive = local.proposal !== null && !local.proposal.committed &&
    (local.promised === null || compareBallots(local.promised, local.proposal.ballot) <= 0) &&
    (local.proposal.known === undefined || local.proposal.known >= known.size) &&
    ahead <= known.size - quorum
  const othersUntil = local.promised !== null && local.promised.by !== self ? local.promisedAt + config.termTimeoutMs : 0
  const inFlight = ownLive || now < othersUntil
  const stable = now - input.viewSince >= config.settleMs
  const mayStand = selfEligible && alive >= config.minimumNodes && alive >= quorum && preferred === self
  let recheckAt: number | undefined
  if (mayStand && !ownLive && (!stable || now < othersUntil)) recheckAt = Math.max(input.viewSince + config.settleMs, othersUntil)
  if (mayStand && !inFlight && stable) {
    // Above the rounds promised around, but by at most MAX_ROUND_STEP over its own:
    // a vote claiming a huge round cannot push the election to its bound.
    const base = Math.max(local.promised?.n ?? 0, local.proposal?.ballot.n ?? 0)
    let n = base
    for (const v of view.votes.values()) if ((v.promised?.n ?? 0) <= base + MAX_ROUND_STEP) n = Math.max(n, v.promised?.n ?? 0)
    // Past the bound nobody can stand any more: the election waits (see MAX_BALLOT_ROUND).
    if (n < MAX_BALLOT_ROUND) {
      const ballot: Ballot = { n: n + 1, by: self }
      local = { ...local, proposal: { ballot, candidate: null, committed: false, startedAt: now } }
      local = step(local)
    }
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
