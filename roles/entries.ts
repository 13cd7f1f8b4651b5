import { createHash } from 'node:crypto'
import type { StateEntry } from '../p2p/types.ts'
import { sealKeyProblem } from './credentials.ts'
import { compareBallots } from './ballot.ts'
import { decodePromiseRefs, decodeVoteRefs, resolveVoters, voterIndex } from './compact-refs.ts'
import {
  ROLE_KEYS, type Accepted, type Ballot, type CaValue, type ClusterRecord, type NodeValue, type PromiseRef, type ProposalValue,
  type QuorumCertificate, type VoteRef, type VoteValue
} from './types.ts'

/*
 * The roles entries other nodes wrote, parsed and indexed. Nothing in them is trusted
 * to be well formed: a malformed entry is ignored, never half taken.
 */

/** Highest ballot round taken from the wire; a larger one makes the entry malformed. @default 1000000 */
export const MAX_BALLOT_ROUND = 1_000_000
/** Longest peer id taken in a ballot, a vote reference or a record, characters. @default 128 */
export const MAX_PEER_ID_CHARS = 128
/** Most vote references one certificate or proposal may carry in the keyed form (the compact form: `MAX_WIRE_REFS`). @default 1024 */
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

/** An accepted value (or null) from untrusted JSON, or undefined. */
export function parseAccepted (v: unknown): Accepted | null | undefined {
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

/** Runs a compact decoder; a `CompactRefsError` makes the entry malformed. */
function compact<T> (decode: () => T): T | undefined {
  try {
    return decode()
  } catch {
    return undefined
  }
}

const acceptedRow = (v: unknown): Accepted | undefined => parseAccepted(v) ?? undefined

/**
 * A quorum certificate from untrusted JSON, keyed or compact (roles/compact-refs.ts),
 * or undefined. Compact voters stay unresolved digests until `indexEntries` resolves them.
 */
export function parseCertificate (v: unknown): QuorumCertificate | undefined {
  if (!isObj(v) || !isId(v.candidate) || !isCount(v.known, MAX_KNOWN_NODES)) return undefined
  const ballot = parseBallot(v.ballot)
  const votes = typeof v.votes === 'string' ? compact(() => decodeVoteRefs(v.votes)) : parseList(v.votes, parseVoteRef)
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
    const promises = typeof v.promises === 'string' ? compact(() => decodePromiseRefs(v.promises, v.accepted, acceptedRow)) : parseList(v.promises, parsePromiseRef)
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
  resolveView(view)
  view.records.sort((a, b) => compareBallots(a.ballot, b.ballot) || (a.init < b.init ? -1 : 1))
  return view
}

/** A proposal with the voters its compact promises name by digest resolved against the `roles/vote` owners among `entries`. */
export function resolvedProposal (p: ProposalValue | undefined, entries: readonly StateEntry[]): ProposalValue | undefined {
  if (p?.promises === undefined) return p
  const index = voterIndex(entries.filter((e) => e.key === ROLE_KEYS.vote && e.value !== null).map((e) => e.owner))
  return { ...p, promises: resolveVoters(p.promises, index) }
}

/** Resolves the voters compact references name by digest against the owners of the votes held. */
function resolveView (view: RolesView): void {
  const compactRefs = view.proposals.some((p) => p.promises?.some((r) => r.voter.startsWith('#')) === true) ||
    view.records.some((r) => r.certificate.votes.some((v) => v.voter.startsWith('#')))
  if (!compactRefs) return
  const index = voterIndex(view.voteEntries.keys())
  view.proposals = view.proposals.map((p) => {
    if (p.promises === undefined) return p
    const promises = resolveVoters(p.promises, index)
    return promises === p.promises ? p : { ...p, promises }
  })
  view.records = view.records.map((r) => {
    const votes = resolveVoters(r.certificate.votes, index)
    return votes === r.certificate.votes ? r : { ...r, certificate: { ...r.certificate, votes } }
  })
}
