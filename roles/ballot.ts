import { createHash } from 'node:crypto'
import type { Ballot } from './types.ts'

/*
 * Ballots and quorums: the arithmetic every other part of the election shares. A
 * ballot (round, proposer) is a term of the election (see roles/election.ts).
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

/** The cluster id of the init server chosen in `ballot`. */
export function clusterIdFor (networkId: string, init: string, ballot: Ballot): string {
  return createHash('sha256').update(`kairos-p2p/cluster\u0000${networkId}\u0000${init}\u0000${ballot.n}\u0000${ballot.by}`).digest('hex').slice(0, 16)
}
