import { createHash } from 'node:crypto'
import type { StateEntry } from '../p2p/types.ts'
import type { StaticRole } from '../config/types.ts'
import { compareBallots, quorumSize, sameBallot } from './ballot.ts'
import { certifiedChoices, checkPromises, justifiedCandidate, liarsTolerated, refOf } from './certificates.ts'
import { MAX_BALLOT_ROUND, type RolesView } from './entries.ts'
import type { Ballot, LocalFacts, MemberView, PromiseRef, ProposalValue, QuorumCertificate, RolesConfig } from './types.ts'

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
 * period, and nobody stands while a ballot it promised is younger than the hold
 * (the term timeout, at least the rumour grace). A ballot that stalls is superseded
 * after the hold. Voters promise only the preferred node's ballots, or one a quorum
 * promised, so no other member can keep superseding them; and a voter keeps to the
 * ballot it promised for the hold, so a better node discovered late on a large site
 * does not supersede a ballot under way (once several ballots per election at 30 nodes).
 * Discovery on a forming site takes seconds, so a node can be preferred in its view
 * only because the better nodes are not in it yet, and standing then costs a second
 * ballot. So a node preferred in its view waits, besides the settle period, one hold
 * for each node that may still rank above it, at most `STAND_BACKOFF_RANKS` holds
 * (`standWaitMs`): members whose `roles/node` entry has not reached it (state travels
 * more slowly than membership, so their eligibility is unknown), and the nodes not
 * heard from yet, weighted by the chance that one ranks above it (the position of its
 * key in the order). Like Raft's randomised timeouts, but deterministic and in the
 * order of preference: the best node waits least and the others usually learn of its
 * ballot first. The bound keeps a member that never publishes an entry (dead, or
 * hostile) from holding the election up for good.
 */

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

/** Whether a node with this static role may be init server or an automatic HA server. */
export function isEligible (role: StaticRole, autoEnable: boolean): boolean {
  return role === 'master' || (role === 'auto' && autoEnable)
}

/** Whether a node with this static role takes a k3s role at all. */
export function takesK3sRole (role: StaticRole, autoEnable: boolean): boolean {
  return role === 'master' || role === 'worker' || (role === 'auto' && autoEnable)
}

/** Most a proposer's new round exceeds its own highest one. @default 1000 */
export const MAX_ROUND_STEP = 1000

/**
 * Whether the election counts a member as up: alive or merely suspect. A suspicion is
 * a question, not a verdict (SWIM): on a busy box members flap between alive and
 * suspect every few seconds, and counting them out made the settle period restart and
 * nodes disagree on who should stand. A member that is really gone is dead moments later.
 */
export function countsAsUp (m: MemberView): boolean {
  return m.liveness !== 'dead'
}

/** Most holds a node that is preferred in its view waits for nodes that may rank above it (see `standWaitMs`). @default 3 */
export const STAND_BACKOFF_RANKS = 3

/**
 * How long the view must have held still before a node that is preferred in it
 * stands: the settle period, plus one hold for each node that may still rank above
 * it, at most `STAND_BACKOFF_RANKS` holds. Those are the members ranked above it whose
 * `roles/node` entry it does not hold (they may be eligible), the peers it is still
 * dialling (`discovering`: heard of by discovery, not members yet) that rank above it,
 * and the `unseen` nodes it has not heard of, each counted with the chance that it
 * ranks above: the share of the key space below its own key. Discovery is not
 * authenticated, so a made-up peer id can add at most the cap, and only while the
 * dialler still tries it (a failed dial holds it off, and out of `discovering`).
 */
export function standWaitMs (input: { self: string, preferable: readonly string[], discovering?: readonly string[], unseen: number, view: RolesView, networkId: string, settleMs: number, holdMs: number }): number {
  const own = preferenceKey(input.self, input.networkId)
  let ranks = Math.max(0, input.unseen) * Number.parseInt(own.slice(0, 12), 16) / 2 ** 48
  for (const id of input.preferable) {
    if (ranks >= STAND_BACKOFF_RANKS) break
    if (id !== input.self && !input.view.nodes.has(id) && preferenceKey(id, input.networkId) < own) ranks++
  }
  for (const id of input.discovering ?? []) {
    if (ranks >= STAND_BACKOFF_RANKS) break
    if (id !== input.self && preferenceKey(id, input.networkId) < own) ranks++
  }
  return input.settleMs + Math.min(ranks, STAND_BACKOFF_RANKS) * input.holdMs
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
 *
 * A promise to another proposer holds for `holdMs` after the voter's last promise or
 * accept: meanwhile it promises no other proposer's ballot and accepts the one it
 * promised although a node it prefers has shown up since (a node discovered late on a
 * large site no longer supersedes a ballot that is under way). A proposer's ballot is
 * promised when it may stand in the voter's view, or when a quorum of the votes held
 * promised it already: those voters found it preferred, and a node that joins late
 * follows them instead of standing against them.
 */
function voterStep (local: LocalFacts, proposals: readonly ProposalValue[], now: number, self: string, view: RolesView, minimumNodes: number, known: number, locked: string | undefined, mayStand: (proposer: string) => boolean, holdMs: number): LocalFacts {
  let next = local
  let top: ProposalValue | undefined
  const quorum = quorumSize(minimumNodes, known)
  const held = next.promised !== null && next.promised.by !== self && now < next.promisedAt + holdMs ? next.promised : null
  const vouched = (p: ProposalValue): boolean => {
    let n = 0
    for (const v of view.votes.values()) if (sameBallot(v.promised, p.ballot)) n++
    return n >= quorum
  }
  // Promise only ballots of a proposer that may stand in this voter's view (itself or
  // the preferred node) or that a quorum promised: another member cannot keep
  // superseding the election.
  for (const p of proposals) {
    if (held !== null && p.ballot.by !== held.by) continue
    if ((mayStand(p.ballot.by) || vouched(p)) && (top === undefined || compareBallots(p.ballot, top.ballot) > 0)) top = p
  }
  if (top !== undefined && (next.promised === null || compareBallots(top.ballot, next.promised) > 0)) {
    next = { ...next, promised: top.ballot, promisedAt: now }
  }
  const promised = next.promised
  if (promised !== null && !sameBallot(next.accepted?.ballot, promised)) {
    const p = proposals.find((q) => sameBallot(q.ballot, promised) && q.candidate !== null)
    const stillHeld = promised.by !== self && now < next.promisedAt + holdMs
    const justified = p !== undefined && (p.ballot.by === self || (checkPromises(p, view, minimumNodes, known) === 'valid' &&
      (p.candidate !== p.ballot.by || mayStand(p.ballot.by) || stillHeld)))
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
  /** Peers being dialled that are not members yet (see `standWaitMs`); unauthenticated. */
  discovering?: readonly string[]
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
  // How long a promise to another proposer holds (see voterStep): the term timeout, and
  // at least the grace a silent member gets before it counts as gone.
  const holdMs = Math.max(config.termTimeoutMs, grace)
  const step = (l: LocalFacts): LocalFacts => voterStep(l, proposalsWith(l), now, self, view, config.minimumNodes, known.size, locked, mayStandFor, holdMs)

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
    } else if (own.known !== undefined && own.known < known.size && own.promises !== undefined &&
      own.promises.length >= quorum &&
      justifiedCandidate(own.promises.map((r) => r.accepted), self, liarsTolerated(config.minimumNodes, known.size)) === own.candidate) {
      // More nodes known than when the candidate was chosen, yet the promises held still
      // make a quorum and justify the same candidate by the larger count: the ballot
      // stands, re-counted. Giving it up for every node that shows up late is what made
      // large sites elect in several ballots; voters check it by their own count anyway.
      local = { ...local, proposal: { ...own, known: known.size } }
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
  // candidate and its promises no longer make a quorum or justify that candidate by
  // the larger count (re-counted above): voters judge the promises by their own count
  // (`liarsTolerated`), so such a proposal may never be accepted.
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
  const othersUntil = local.promised !== null && local.promised.by !== self ? local.promisedAt + holdMs : 0
  const inFlight = ownLive || now < othersUntil
  const mayStand = selfEligible && alive >= config.minimumNodes && alive >= quorum && preferred === self
  // Peers still being dialled are heard of; the nodes not heard of at all are at most
  // as many as the site can hold besides those while `minimum_nodes` is a majority of
  // it (see the quorum note above).
  const discovering = (input.discovering ?? []).filter((id) => !known.has(id))
  const unseen = 2 * config.minimumNodes - 1 - known.size - discovering.length
  const standAt = mayStand ? input.viewSince + standWaitMs({ self, preferable, discovering, unseen, view, networkId, settleMs: config.settleMs, holdMs }) : Infinity
  const stable = now >= standAt
  let recheckAt: number | undefined
  if (mayStand && !ownLive && (!stable || now < othersUntil)) recheckAt = Math.max(standAt, othersUntil)
  // A voter's promise to another proposer stops holding with time alone.
  else if (now < othersUntil) recheckAt = othersUntil
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
