import { createHash } from 'node:crypto'
import { ByteReader, ByteWriter, CodecError } from '../p2p/state/codec.ts'
import { MAX_VERSION } from '../p2p/state/wire.ts'
import { KairosError } from '../util/errors.ts'
import type { Accepted, ClusterRecord, PromiseRef, ProposalValue, QuorumCertificate, VoteRef } from './types.ts'

/*
 * The compact form of the vote references a `roles/proposal` (its promises) and a
 * `roles/cluster` record (its quorum certificate) carry: the two roles entries whose
 * size grows with the number of voters. As keyed JSON a reference is about 140 bytes
 * (a 52-character peer id, the version, 32 hex digits of hash, the accepted value), so
 * a proposal citing 470 voters passed the state's 64 KiB entry limit. Compact, the
 * references are one base64url string of binary records, about 36 characters each:
 *
 * ```
 * ref      u8      0: the voter by its 64-bit digest (`voterDigest`), 8 bytes follow
 *                  1: the voter by its peer id: varint length (1…128), UTF-8
 *          varint  version of the voter's roles/vote entry, 1 … 2^48
 *          16 B    hash (`voteHash`, the same 128 bits the keyed form spells in hex)
 * promise  ref, then varint: 0 = accepted nothing, k = the k-th value of `accepted`
 * ```
 *
 * A proposal's accepted values go once into a table, `accepted: [[n, by, candidate]…]`.
 * A voter named by digest is resolved against the owners of the `roles/vote` entries a
 * node holds (`resolveVoters`): a digest no vote owner has, or that more than one has,
 * stays unresolved (`#` and 16 hex digits, which is no peer id), and an unresolved
 * reference is pending, never a vote. The writer names a voter by its peer id only when
 * two voters of the same list share a digest. See STATE-10 in docs/decisions.md for the
 * bit lengths and what an older build does with this form.
 */

/** Most vote references one certificate or proposal carries on the wire: more than any that fits in an entry. @default 2048 */
export const MAX_WIRE_REFS = 2048
/** Most votes a certificate is written with: enough for a quorum of 2 998 known nodes, and it fits an entry. @default 1500 */
export const MAX_CERTIFICATE_REFS_WRITTEN = 1500
/** Longest references string taken from the wire, characters (an entry is at most 64 KiB). @default 65536 */
export const MAX_REFS_CHARS = 65_536
/**
 * Lists whose keyed JSON is at most this many bytes are written keyed, as builds
 * before STATE-10 wrote them, so sites of up to about 50 voters stay readable by those
 * builds. @default 8192
 */
export const KEYED_FORM_MAX_BYTES = 8192

const DIGEST_BYTES = 8
const HASH_BYTES = 16
const MAX_ID_BYTES = 128
const BY_DIGEST = 0
const BY_ID = 1
const B64URL = /^[A-Za-z0-9_-]*$/
const UNRESOLVED = /^#[0-9a-f]{16}$/

/** A compact reference list that does not have the expected shape or bounds. */
export class CompactRefsError extends KairosError {
  constructor (message: string) {
    super(message)
    this.name = 'CompactRefsError'
  }
}

const digests = new Map<string, string>()

/** The 64-bit digest a compact reference names a voter by: 16 hex digits of a domain-separated SHA-256 of its peer id. */
export function voterDigest (peer: string): string {
  if (UNRESOLVED.test(peer)) return peer.slice(1)
  let d = digests.get(peer)
  if (d === undefined) {
    d = createHash('sha256').update(`kairos-p2p/voter\u0000${peer}`).digest().subarray(0, DIGEST_BYTES).toString('hex')
    // A cache, not a registry: bounded, refilled on demand.
    if (digests.size >= 65_536) digests.clear()
    digests.set(peer, d)
  }
  return d
}

/** Whether `voter` is a digest no vote owner resolved (pending, never a vote). */
export function isUnresolvedVoter (voter: string): boolean {
  return UNRESOLVED.test(voter)
}

function writeRefs<T extends VoteRef> (refs: readonly T[], tail?: (w: ByteWriter, ref: T) => void): string {
  const count = new Map<string, number>()
  for (const r of refs) count.set(voterDigest(r.voter), (count.get(voterDigest(r.voter)) ?? 0) + 1)
  const w = new ByteWriter()
  for (const r of refs) {
    const d = voterDigest(r.voter)
    if (count.get(d) === 1 || isUnresolvedVoter(r.voter)) w.u8(BY_DIGEST).raw(Buffer.from(d, 'hex'))
    else w.u8(BY_ID).string(r.voter)
    w.varint(r.version).raw(Buffer.from(r.hash, 'hex'))
    tail?.(w, r)
  }
  return Buffer.from(w.finish()).toString('base64url')
}

function readRefs<T> (what: string, s: unknown, tail: (r: ByteReader, ref: VoteRef, i: number) => T): T[] {
  if (typeof s !== 'string') throw new CompactRefsError(`${what}: expected a base64url string, got ${typeof s}`)
  if (s.length > MAX_REFS_CHARS) throw new CompactRefsError(`${what}: ${s.length} characters, expected at most ${MAX_REFS_CHARS}`)
  if (!B64URL.test(s)) throw new CompactRefsError(`${what}: not base64url`)
  const bytes = Buffer.from(s, 'base64url')
  if (bytes.toString('base64url') !== s) throw new CompactRefsError(`${what}: not canonical base64url`)
  const r = new ByteReader(bytes)
  const out: T[] = []
  while (r.remaining > 0) {
    const i = out.length
    if (i >= MAX_WIRE_REFS) throw new CompactRefsError(`${what}: more than ${MAX_WIRE_REFS} references`)
    try {
      const tag = r.u8()
      let voter: string
      if (tag === BY_DIGEST) voter = `#${Buffer.from(r.raw(DIGEST_BYTES)).toString('hex')}`
      else if (tag === BY_ID) {
        voter = r.string(MAX_ID_BYTES)
        if (voter.length === 0) throw new CompactRefsError(`${what}: reference ${i + 1}: empty peer id`)
      } else throw new CompactRefsError(`${what}: reference ${i + 1}: voter tag ${tag}, expected ${BY_DIGEST} (digest) or ${BY_ID} (peer id)`)
      const version = r.varint()
      if (version < 1 || version > MAX_VERSION) throw new CompactRefsError(`${what}: reference ${i + 1}: version ${version}, expected 1 … ${MAX_VERSION}`)
      const hash = Buffer.from(r.raw(HASH_BYTES)).toString('hex')
      out.push(tail(r, { voter, version, hash }, i))
    } catch (err) {
      if (err instanceof CodecError) throw new CompactRefsError(`${what}: reference ${i + 1} is truncated or out of range (${err.message})`)
      throw err
    }
  }
  return out
}

/** Vote references as a compact string. */
export function encodeVoteRefs (refs: readonly VoteRef[]): string {
  return writeRefs(refs)
}

/** Vote references from a compact string; `CompactRefsError` names what is wrong. Voters by digest stay unresolved. */
export function decodeVoteRefs (s: unknown): VoteRef[] {
  return readRefs('certificate votes', s, (_r, ref) => ref)
}

/** A promise list as a compact string and its table of accepted values. */
export function encodePromiseRefs (refs: readonly PromiseRef[]): { accepted: Array<[number, string, string]>, promises: string } {
  const table: Array<[number, string, string]> = []
  const index = new Map<string, number>()
  const keyOf = (a: Accepted): string => `${a.ballot.n}\u0000${a.ballot.by}\u0000${a.candidate}`
  for (const r of refs) {
    if (r.accepted === null || index.has(keyOf(r.accepted))) continue
    table.push([r.accepted.ballot.n, r.accepted.ballot.by, r.accepted.candidate])
    index.set(keyOf(r.accepted), table.length)
  }
  const promises = writeRefs(refs, (w, r) => w.varint(r.accepted === null ? 0 : index.get(keyOf(r.accepted)) as number))
  return { accepted: table, promises }
}

/**
 * A promise list from its compact string and table; `CompactRefsError` names what is
 * wrong. `parseAccepted` checks one table row `{ballot: {n, by}, candidate}` (roles/entries.ts).
 */
export function decodePromiseRefs (promises: unknown, accepted: unknown, parseAccepted: (v: unknown) => Accepted | undefined): PromiseRef[] {
  if (!Array.isArray(accepted)) throw new CompactRefsError(`proposal accepted: expected an array of [n, by, candidate], got ${typeof accepted}`)
  if (accepted.length > MAX_WIRE_REFS) throw new CompactRefsError(`proposal accepted: ${accepted.length} values, expected at most ${MAX_WIRE_REFS}`)
  const table: Accepted[] = []
  const seen = new Set<string>()
  for (const [k, row] of accepted.entries()) {
    const a = Array.isArray(row) && row.length === 3 ? parseAccepted({ ballot: { n: row[0], by: row[1] }, candidate: row[2] }) : undefined
    if (a === undefined) throw new CompactRefsError(`proposal accepted: value ${k + 1} is not [round, proposer, candidate] within bounds`)
    const key = `${a.ballot.n}\u0000${a.ballot.by}\u0000${a.candidate}`
    if (seen.has(key)) throw new CompactRefsError(`proposal accepted: value ${k + 1} repeats an earlier one`)
    seen.add(key)
    table.push(a)
  }
  const used = new Set<number>()
  const refs = readRefs('proposal promises', promises, (r, ref, i) => {
    const k = r.varint()
    if (k > table.length) throw new CompactRefsError(`proposal promises: reference ${i + 1} names accepted value ${k}, the table has ${table.length}`)
    if (k > 0) used.add(k)
    return { ...ref, accepted: k === 0 ? null : table[k - 1] as Accepted }
  })
  if (used.size !== table.length) throw new CompactRefsError(`proposal accepted: ${table.length - used.size} value(s) no promise refers to`)
  return refs
}

/** Whether a list is written keyed (the form older builds read): small enough, every voter by peer id. */
function keyedFits (refs: readonly VoteRef[]): boolean {
  if (refs.some((r) => isUnresolvedVoter(r.voter))) return false
  return JSON.stringify(refs).length <= KEYED_FORM_MAX_BYTES
}

/** The `roles/proposal` value as written: keyed while small, else compact. */
export function proposalWireValue (p: ProposalValue): Record<string, unknown> {
  if (p.promises === undefined || keyedFits(p.promises)) return { ...p }
  const { promises, ...rest } = p
  return { ...rest, ...encodePromiseRefs(promises) }
}

/**
 * The certificate as written: keyed while small, else compact, with at most
 * `MAX_CERTIFICATE_REFS_WRITTEN` votes (the lowest voters; any quorum up to 2 998
 * known nodes fits in them, and checking needs only a quorum).
 */
export function certificateWireValue (c: QuorumCertificate): Record<string, unknown> {
  if (keyedFits(c.votes)) return { ...c }
  const votes = c.votes.length > MAX_CERTIFICATE_REFS_WRITTEN ? [...c.votes].sort((a, b) => (a.voter < b.voter ? -1 : 1)).slice(0, MAX_CERTIFICATE_REFS_WRITTEN) : c.votes
  return { ...c, votes: encodeVoteRefs(votes) }
}

/** The `roles/cluster` value as written. */
export function recordWireValue (r: ClusterRecord): Record<string, unknown> {
  return { ...r, certificate: certificateWireValue(r.certificate) }
}

/** Owners of vote entries by voter digest; `null` for a digest two owners share. */
export type VoterIndex = ReadonlyMap<string, string | null>

/** The voter index of the owners of the `roles/vote` entries held. */
export function voterIndex (owners: Iterable<string>): VoterIndex {
  const out = new Map<string, string | null>()
  for (const o of owners) {
    const d = voterDigest(o)
    out.set(d, out.has(d) && out.get(d) !== o ? null : o)
  }
  return out
}

const resolved = new WeakMap<readonly VoteRef[], { owners: Array<string | undefined>, out: VoteRef[] }>()

/**
 * The references with each voter named by digest replaced by the one owner of a held
 * vote entry with that digest; the list itself when nothing changes. A digest no owner
 * or several owners have stays unresolved, so the reference stays pending. The last
 * result per list is kept while it resolves the same way (lists are parsed once per entry).
 */
export function resolveVoters<T extends VoteRef> (refs: T[], index: VoterIndex): T[] {
  const owners = refs.map((r) => (isUnresolvedVoter(r.voter) ? index.get(r.voter.slice(1)) ?? undefined : undefined))
  if (owners.every((o) => o === undefined)) return refs
  const hit = resolved.get(refs)
  if (hit !== undefined && hit.owners.length === owners.length && hit.owners.every((o, i) => o === owners[i])) return hit.out as T[]
  const out = refs.map((r, i) => (owners[i] === undefined ? r : { ...r, voter: owners[i] as string }))
  resolved.set(refs, { owners, out })
  return out
}
