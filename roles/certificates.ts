import type { StateEntry } from '../p2p/types.ts'
import { clusterIdFor, compareBallots, quorumSize, sameBallot } from './ballot.ts'
import { voteHash, type RolesView } from './entries.ts'
import type { Accepted, Ballot, ClusterRecord, PromiseRef, ProposalValue, QuorumCertificate, VoteRef } from './types.ts'

/*
 * Quorum certificates and the promise rule: how a node checks, from the signed vote
 * entries it holds, that a candidate was chosen or that a proposal's candidate is
 * justified, without taking any member on its word (see roles/election.ts for why
 * this makes the election safe against a member running modified code).
 */

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
