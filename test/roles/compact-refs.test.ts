import { describe, expect, it } from 'vitest'
import type { JsonValue, StateEntry } from '../../p2p/types.ts'
import { StateEntryTooLargeError } from '../../p2p/state/errors.ts'
import { checkCertificate, checkPromises, checkRecord, refOf } from '../../roles/certificates.ts'
import {
  CompactRefsError, MAX_CERTIFICATE_REFS_WRITTEN, MAX_REFS_CHARS, MAX_WIRE_REFS, certificateWireValue, decodePromiseRefs, decodeVoteRefs,
  encodePromiseRefs, encodeVoteRefs, isUnresolvedVoter, proposalWireValue, recordWireValue, resolveVoters, voterDigest, voterIndex
} from '../../roles/compact-refs.ts'
import { indexEntries, parseAccepted, parseProposal, parseRecord, resolvedProposal } from '../../roles/entries.ts'
import type { Accepted, Ballot, PromiseRef, ProposalValue, VoteRef } from '../../roles/types.ts'
import { store } from '../p2p/state/fixtures.ts'
import { acceptVote, certifiedRecord } from './site.ts'

const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'
/** A string shaped like an Ed25519 peer id (52 characters), distinct per `i`. */
const peer = (i: number): string => {
  let s = ''
  let x = i * 2_654_435_761 + 97
  while (s.length < 44) { s += B58[x % 58] as string; x = Math.floor(x / 58) + (s.length + 1) * 7_919 }
  return `12D3KooW${s}`
}
const accepted = (parse: unknown): Accepted | undefined => parseAccepted(parse) ?? undefined
const promiseEntry = (voter: string, ballot: Ballot, acc: Accepted | null, version = 1): StateEntry =>
  ({ owner: voter, key: 'roles/vote', version, writtenAt: 0, value: { promised: { ...ballot }, accepted: acc as unknown as JsonValue } })

/** A proposal by `by` citing the promises of `n` voters (every tenth had accepted an earlier ballot), and the vote entries behind them. */
function proposalOf (n: number, by = peer(0), version = (i: number): number => 1 + (i % 20)): { proposal: ProposalValue, votes: StateEntry[] } {
  const ballot = { n: 3, by }
  const earlier: Accepted = { ballot: { n: 2, by }, candidate: by }
  const votes = Array.from({ length: n }, (_, i) => promiseEntry(peer(i + 1), ballot, i % 10 === 0 ? earlier : null, version(i)))
  const promises: PromiseRef[] = votes.map((e) => ({ ...refOf(e), accepted: (e.value as { accepted: Accepted | null }).accepted }))
  promises.sort((a, b) => (a.voter < b.voter ? -1 : 1))
  return { proposal: { ballot, candidate: by, committed: false, known: n + 1, promises }, votes }
}

const proposalEntry = (p: ProposalValue): StateEntry =>
  ({ owner: p.ballot.by, key: 'roles/proposal', version: 1, writtenAt: 0, value: proposalWireValue(p) as JsonValue })

describe('compact vote references', () => {
  it('round-trips promises and certificate votes, voters as digests the votes held resolve', () => {
    const { proposal, votes } = proposalOf(40)
    const { accepted: table, promises } = encodePromiseRefs(proposal.promises ?? [])
    expect(table).toHaveLength(1)
    const back = decodePromiseRefs(promises, table, accepted)
    expect(back.every((r) => isUnresolvedVoter(r.voter))).toBe(true)
    expect(resolveVoters(back, voterIndex(votes.map((e) => e.owner)))).toEqual(proposal.promises)
    const refs = votes.map(refOf)
    expect(resolveVoters(decodeVoteRefs(encodeVoteRefs(refs)), voterIndex(votes.map((e) => e.owner)))).toEqual(refs)
  })

  it('keeps the keyed form for small lists (what older builds read), compact past 8 KiB', () => {
    const small = proposalOf(20).proposal
    expect(proposalWireValue(small)).toEqual(small)
    const big = proposalWireValue(proposalOf(200).proposal)
    expect(typeof big.promises).toBe('string')
    expect(Array.isArray(big.accepted)).toBe(true)
  })

  it('checks a compact proposal and record from the entries held like keyed ones', () => {
    const { proposal, votes } = proposalOf(300)
    const view = indexEntries(peer(9999), 'site', [...votes, proposalEntry(proposal)])
    expect(view.proposals[0]).toEqual(proposal)
    expect(checkPromises(view.proposals[0] as ProposalValue, view, 3, 301)).toBe('valid')
    expect(resolvedProposal(parseProposal(proposalWireValue(proposal)), votes)).toEqual(proposal)

    const voters = Array.from({ length: 300 }, (_, i) => peer(i + 1))
    const { record, entries } = certifiedRecord(peer(0), voters)
    const compact = entries.map((e) => (e.key === 'roles/cluster' ? { ...e, value: recordWireValue(record) as JsonValue } : e))
    expect(typeof (recordWireValue(record).certificate as { votes: unknown }).votes).toBe('string')
    const v2 = indexEntries(peer(9999), 'site', compact)
    expect(v2.records[0]).toEqual(record)
    expect(checkRecord(v2.records[0] as never, v2, 'site', 3)).toBe('valid')
  })

  it('fits 1 000 voters in about 36 KiB and 1 500 (vote versions below 2^21) under the 64 KiB entry limit; past that the store refuses the put', async () => {
    const s = await store(1)
    try {
      const at = async (n: number, version?: (i: number) => number): Promise<number> => {
        const { proposal } = proposalOf(n, s.self, version)
        return (await s.put('roles/proposal', proposalWireValue(proposal) as JsonValue)).wire.length
      }
      const thousand = await at(1000)
      expect(thousand).toBeLessThan(38 * 1024)
      expect(await at(1500, (i) => 2 ** 21 - 1 - i)).toBeLessThan(64 * 1024)
      await expect(at(1900)).rejects.toThrow(StateEntryTooLargeError)
      const voters = Array.from({ length: 1000 }, (_, i) => peer(i + 1))
      const { record } = certifiedRecord(s.self, voters)
      expect((await s.put('roles/cluster', recordWireValue(record) as JsonValue)).wire.length).toBeLessThan(38 * 1024)
    } finally {
      await s.close()
    }
  })

  it('writes a certificate with at most 1 500 votes, the lowest voters', () => {
    const refs: VoteRef[] = Array.from({ length: 2000 }, (_, i) => refOf(acceptVote(peer(i + 1), { n: 1, by: peer(0) }, peer(0))))
    refs.sort((a, b) => (a.voter < b.voter ? -1 : 1))
    const wire = certificateWireValue({ ballot: { n: 1, by: peer(0) }, candidate: peer(0), known: 2001, votes: refs })
    const votes = decodeVoteRefs(wire.votes)
    expect(votes).toHaveLength(MAX_CERTIFICATE_REFS_WRITTEN)
    expect(votes.map((r) => r.voter)).toEqual(refs.slice(0, MAX_CERTIFICATE_REFS_WRITTEN).map((r) => `#${voterDigest(r.voter)}`))
  })
})

describe('compact vote references from a hostile writer', () => {
  const init = peer(0)
  const voters = Array.from({ length: 200 }, (_, i) => peer(i + 1))
  const { record, entries } = certifiedRecord(init, voters)
  const votes = entries.filter((e) => e.key === 'roles/vote')
  const ballot = record.ballot
  /** The record written with `refs` as its certificate votes, checked against the votes held. */
  const check = (refs: VoteRef[], held = votes): string => {
    const value = { ...recordWireValue(record), certificate: { ...record.certificate, votes: encodeVoteRefs(refs) } }
    const e: StateEntry = { owner: init, key: 'roles/cluster', version: 1, writtenAt: 0, value: value as unknown as JsonValue }
    const view = indexEntries(peer(9999), 'site', [...held, e])
    return checkCertificate(view.records[0]?.certificate ?? record.certificate, view, 3)
  }
  const refs = votes.map(refOf)
  const quorum = 101

  it('counts a vote named by a digest no vote held has as pending, never as a vote', () => {
    expect(check(refs.slice(0, quorum))).toBe('valid')
    // One vote not held: the certificate waits for it.
    expect(check(refs.slice(0, quorum), votes.slice(1))).toBe('pending')
    // A digest of a voter that never voted.
    expect(check([...refs.slice(0, quorum - 1), { ...refs[0] as VoteRef, voter: peer(5000) }])).toBe('pending')
  })

  it('leaves a digest two vote owners share unresolved', () => {
    const list = decodeVoteRefs(encodeVoteRefs(refs.slice(0, 3)))
    const d = voterDigest(refs[0]?.voter as string)
    const index = new Map<string, string | null>([[d, null], [voterDigest(refs[1]?.voter as string), refs[1]?.voter as string]])
    const out = resolveVoters(list, index)
    expect(out[0]?.voter).toBe(`#${d}`)
    expect(out[1]?.voter).toBe(refs[1]?.voter)
    expect(isUnresolvedVoter(out[2]?.voter as string)).toBe(true)
    expect(voterIndex([peer(1), peer(1), peer(2)]).get(voterDigest(peer(1)))).toBe(peer(1))
  })

  it('refutes a vote whose hash does not match, or that names another voter\'s vote', () => {
    const wrong = refs.slice(0, quorum).map((r, i) => (i === 0 ? { ...r, hash: '0'.repeat(32) } : r))
    expect(check(wrong)).toBe('invalid')
    const swapped = refs.slice(0, quorum).map((r, i) => (i === 0 ? { ...r, hash: (refs[1] as VoteRef).hash, version: 1 } : r))
    // Votes of one content hash alike; a different ballot does not.
    const other = acceptVote(voters[0] as string, { n: 2, by: init }, init)
    expect(check(swapped.map((r, i) => (i === 0 ? { ...r, hash: refOf(other).hash } : r)))).toBe('invalid')
  })

  it('counts a voter named twice once, by digest or by peer id', () => {
    const twice = [...refs.slice(0, quorum - 1), refs[0] as VoteRef]
    expect(check(twice)).toBe('invalid')
    // The writer names by peer id the voters whose digests collide in the list.
    const marker: VoteRef = { ...refs[0] as VoteRef, voter: `#${voterDigest(refs[0]?.voter as string)}` }
    const mixed = decodeVoteRefs(encodeVoteRefs([refs[0] as VoteRef, marker]))
    expect(mixed[0]?.voter).toBe(refs[0]?.voter)
    expect(check([...refs.slice(0, quorum - 1), marker])).toBe('invalid')
    // A proposal naming one voter twice is refused.
    const { proposal, votes: pv } = proposalOf(60)
    const promises = [...(proposal.promises ?? []), (proposal.promises ?? [])[0] as PromiseRef]
    const view = indexEntries(peer(9999), 'site', [...pv, proposalEntry({ ...proposal, promises })])
    expect(checkPromises(view.proposals[0] as ProposalValue, view, 3, 61)).toBe('invalid')
  })

  it('refuses malformed and oversized lists with an error naming what is wrong', () => {
    const one = encodeVoteRefs(refs.slice(0, 1))
    const bytes = Buffer.from(one, 'base64url')
    const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64url')
    const cases: Array<[unknown, RegExp]> = [
      [42, /expected a base64url string, got number/],
      ['x'.repeat(MAX_REFS_CHARS + 1), /characters, expected at most 65536/],
      ['ab+c', /not base64url/],
      [b64(Uint8Array.of(7, ...bytes.subarray(1))), /reference 1: voter tag 7/],
      [b64(bytes.subarray(0, 20)), /reference 1 is truncated/],
      [b64(Uint8Array.of(0, ...bytes.subarray(1, 9), 0, ...bytes.subarray(10))), /reference 1: version 0, expected 1/],
      [b64(Uint8Array.of(0, ...bytes.subarray(1, 9), 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, ...bytes.subarray(10))), /reference 1: version \d+, expected 1 … 281474976710656/],
      [b64(Uint8Array.of(1, 0, 1, ...bytes.subarray(10))), /reference 1: empty peer id/],
      // More references than MAX_WIRE_REFS take more characters than an entry holds.
      [b64(new Uint8Array(26 * (MAX_WIRE_REFS + 1)).map((_, i) => (i % 26 === 9 ? 1 : 0))), /71032 characters, expected at most 65536/]
    ]
    for (const [input, message] of cases) {
      expect(() => decodeVoteRefs(input)).toThrow(CompactRefsError)
      expect(() => decodeVoteRefs(input)).toThrow(message)
    }
    const { proposal } = proposalOf(30)
    const { accepted: table, promises } = encodePromiseRefs(proposal.promises ?? [])
    const row = table[0] as [number, string, string]
    const promiseCases: Array<[unknown, unknown, RegExp]> = [
      [promises, 'x', /expected an array/],
      [promises, [...table, row], /value 2 repeats an earlier one/],
      [promises, [...table, [1, peer(1), peer(1)]], /1 value\(s\) no promise refers to/],
      [promises, [[2_000_000, row[1], row[2]]], /value 1 is not \[round, proposer, candidate\]/],
      [promises, [], /names accepted value 1, the table has 0/],
      [promises, new Array(MAX_WIRE_REFS + 1).fill(row), /2049 values, expected at most 2048/]
    ]
    for (const [p, t, message] of promiseCases) expect(() => decodePromiseRefs(p, t, accepted)).toThrow(message)
    // Malformed compact lists make the entry malformed: it is ignored, never half taken.
    expect(parseProposal({ ...proposalWireValue(proposalOf(200).proposal), accepted: [] })).toBeUndefined()
    expect(parseRecord({ ...record, certificate: { ...record.certificate, votes: 'ab+c' } })).toBeUndefined()
  })
})
