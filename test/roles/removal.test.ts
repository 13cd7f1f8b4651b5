import { describe, expect, it } from 'vitest'
import type { JsonValue, StateEntry } from '../../p2p/types.ts'
import { judgeRemovals, majorityOf, MAX_COMPACT_REVOCATIONS, MAX_REMOVALS_PER_NODE, mayRemove, needsCompaction, parseRemovals, parseRevoked, removalAuthority, REMOVALS_KEY, revocationDigest, withRemoval } from '../../roles/removal.ts'

function e (owner: string, key: string, value: JsonValue): StateEntry {
  return { owner, key, version: 1, writtenAt: 0, value }
}
const removal = (owner: string, peer: string, at = 10): StateEntry => {
  const r = withRemoval([], peer, at)
  return e(owner, r.key, r.value)
}
const cred = (init: string, to: string, kind: 'server' | 'agent'): StateEntry => e(init, `cred/${to}`, { kind, to: 'seal-key', clusterId: 'c', box: 'sealed' })

// init I, HA server S, agents A B C, a departed box X.
const entries = [cred('I', 'S', 'server'), cred('I', 'A', 'agent'), cred('I', 'B', 'agent'), cred('I', 'C', 'agent')]
const authority = removalAuthority('I', entries)
const counted = new Set(['I', 'S', 'A', 'B', 'C', 'X'])

describe('removal authority', () => {
  it('the servers are the holders of a server credential from the accepted init server only', () => {
    expect([...authority.servers]).toEqual(['S'])
    // A server credential written by anyone else makes nobody a server.
    expect([...removalAuthority('I', [cred('A', 'B', 'server')]).servers]).toEqual([])
    expect(removalAuthority(undefined, entries)).toEqual({ init: undefined, servers: new Set() })
  })

  it.each([
    ['I', 'A', 'init-server'], ['I', 'S', 'init-server'], ['S', 'A', 'server'], ['S', 'X', 'server'],
    ['S', 'I', undefined], ['A', 'B', undefined], ['A', 'A', undefined], ['I', 'I', undefined]
  ])('%s may remove %s: %s', (remover, target, want) => {
    expect(mayRemove(authority, remover, target)).toBe(want)
  })
})

describe('judgeRemovals', () => {
  it('applies a removal by the init server, and by a server of a non-server', () => {
    const r = judgeRemovals([...entries, removal('I', 'S', 5), removal('S', 'X', 7)], authority, counted)
    expect(r.applied).toEqual([{ peer: 'S', basis: 'init-server', by: ['I'], at: 5 }, { peer: 'X', basis: 'server', by: ['S'], at: 7 }])
    expect(r.pending).toEqual([])
  })

  it('one token holder alone cannot evict an honest node: its removal stays pending', () => {
    const r = judgeRemovals([removal('A', 'B')], authority, counted)
    expect(r.applied).toEqual([])
    // 5 counted nodes without B: a majority is 3, A gave 1.
    expect(r.pending).toEqual([{ peer: 'B', by: ['A'], needed: 2 }])
  })

  it('a server cannot remove the init server or another server on its own', () => {
    const r = judgeRemovals([removal('S', 'I')], authority, counted)
    expect(r.applied).toEqual([])
    expect(r.pending.map((p) => p.peer)).toEqual(['I'])
  })

  it('a majority of the counted nodes removes any node, the init server too; uncounted publishers do not vote', () => {
    const votes = ['A', 'B', 'C'].map((o) => removal(o, 'I'))
    expect(judgeRemovals(votes, authority, counted).applied).toEqual([{ peer: 'I', basis: 'majority', by: ['A', 'B', 'C'], at: 10 }])
    const minted = ['A', 'M1', 'M2', 'M3'].map((o) => removal(o, 'B'))
    expect(judgeRemovals(minted, authority, counted).applied).toEqual([])
  })

  it('ignores a node removing itself and malformed removals', () => {
    const bad = [removal('I', 'I'), e('I', 'node/removed/A', { removed: [{ peer: 'A', at: 1 }] }), e('S', REMOVALS_KEY, 'x'), e('A', REMOVALS_KEY, { removed: [{ peer: 'D', at: -1 }, { peer: 7, at: 1 }, null, 'B'] })]
    expect(judgeRemovals(bad, authority, counted)).toEqual({ applied: [], pending: [] })
  })

  it('one entry per remover lists all its removals, newest kept within the bound', () => {
    let list = parseRemovals(e('I', ...Object.values(withRemoval([], 'A', 1)) as [string, JsonValue]))
    const next = withRemoval(list, 'B', 2)
    list = parseRemovals(e('I', next.key, next.value))
    expect(list).toEqual([{ peer: 'A', at: 1 }, { peer: 'B', at: 2 }])
    expect(withRemoval(list, 'A', 9).value).toEqual(next.value)
    const r = judgeRemovals([e('I', next.key, next.value)], authority, counted)
    expect(r.applied.map((a) => a.peer)).toEqual(['A', 'B'])
    let many = list
    for (let i = 0; i < MAX_REMOVALS_PER_NODE + 5; i++) many = parseRemovals(e('I', REMOVALS_KEY, withRemoval(many, `P${i}`, 10 + i).value))
    expect(many).toHaveLength(MAX_REMOVALS_PER_NODE)
    expect(many[0]?.peer).toBe('P5')
    // A full list of real peer ids and times fits in one entry (64 KiB) with room for the envelope.
    const full = withRemoval(many.map((x, i) => ({ peer: `12D3KooW${String(i).padStart(44, 'x')}`, at: 1_800_000_000_000 + i })), 'Q', 0).value
    expect(Buffer.byteLength(JSON.stringify(full))).toBeLessThan(60 * 1024)
  })

  it('a removal older than forget_after is kept as a digest, which still revokes the identity when it shows up', () => {
    const DAY = 86_400_000
    const compact = { now: 10 * DAY, afterMs: 7 * DAY }
    const first = withRemoval([], 'A', 1 * DAY, [], compact)
    const second = withRemoval(parseRemovals(e('I', first.key, first.value)), 'B', 9 * DAY, parseRevoked(e('I', first.key, first.value)), compact)
    const entry = { ...e('I', second.key, second.value), writtenAt: 9 * DAY }
    expect(parseRemovals(entry)).toEqual([{ peer: 'B', at: 9 * DAY }])
    expect(parseRevoked(entry)).toEqual([revocationDigest('A')])
    expect(needsCompaction(parseRemovals(entry), compact)).toBe(false)
    expect(needsCompaction(parseRemovals(entry), { ...compact, now: 17 * DAY })).toBe(true)
    // Removing A again changes nothing: its digest is there.
    expect(withRemoval(parseRemovals(entry), 'A', 10 * DAY, parseRevoked(entry), compact).value).toEqual(second.value)
    // A applies to a node that knows of A (it came back), by the init server's authority.
    const r = judgeRemovals([entry], authority, counted, ['A', 'X'])
    expect(r.applied).toEqual([{ peer: 'A', basis: 'init-server', by: ['I'], at: 9 * DAY }, { peer: 'B', basis: 'init-server', by: ['I'], at: 9 * DAY }])
    // A digest from a member without authority is one vote, like a removal by name.
    expect(judgeRemovals([{ ...e('A', second.key, second.value), writtenAt: 1 }], authority, counted, ['X']).applied).toEqual([])
    expect(judgeRemovals([{ ...e('A', second.key, { removed: [], revoked: [revocationDigest('X'), 'not a digest'] }), writtenAt: 1 }], authority, counted, ['X']).pending).toEqual([{ peer: 'X', by: ['A'], needed: 2 }])
  })

  it('one entry holds the newest removals by name and the older ones as digests, within an entry\'s bound', () => {
    const id = (i: number): string => `12D3KooW${String(i).padStart(44, 'x')}`
    let named: ReturnType<typeof parseRemovals> = []
    let revoked: string[] = []
    const total = MAX_REMOVALS_PER_NODE + MAX_COMPACT_REVOCATIONS + 10
    for (let i = 0; i < total; i++) {
      const next = withRemoval(named, id(i), 1_800_000_000_000 + i, revoked)
      named = parseRemovals(e('I', next.key, next.value))
      revoked = parseRevoked(e('I', next.key, next.value))
    }
    expect(named).toHaveLength(MAX_REMOVALS_PER_NODE)
    expect(named[0]?.peer).toBe(id(total - MAX_REMOVALS_PER_NODE))
    expect(revoked).toHaveLength(MAX_COMPACT_REVOCATIONS)
    expect(revoked[0]).toBe(revocationDigest(id(10)))
    const value = withRemoval(named, undefined, 0, revoked).value
    expect(Buffer.byteLength(JSON.stringify(value))).toBeLessThan(60 * 1024)
  })

  it('a strict majority', () => {
    expect([1, 2, 3, 4, 5].map(majorityOf)).toEqual([1, 2, 2, 3, 3])
  })
})
