import { describe, expect, it } from 'vitest'
import type { StateEntry } from '../../p2p/types.ts'
import { compareBallots, quorumSize } from '../../roles/ballot.ts'
import { checkCertificate, justifiedCandidate, liarsTolerated, refOf } from '../../roles/certificates.ts'
import { STAND_BACKOFF_RANKS, electionStep, standWaitMs, preferenceKey, trackView } from '../../roles/election.ts'
import { MAX_BALLOT_ROUND, indexEntries, parseProposal, parseVote, voteHash } from '../../roles/entries.ts'
import { EMPTY_FACTS, type Ballot, type LocalFacts, type VoteValue } from '../../roles/types.ts'
import { BASE_CONFIG, Site } from './site.ts'
import { sealKeyOf } from '../helpers/seal-keys.ts'

const entry = (owner: string, key: string, value: unknown, version = 1): StateEntry =>
  ({ owner, key, version, writtenAt: 0, value: value as StateEntry['value'] })
const node = (owner: string, eligible = true): StateEntry =>
  entry(owner, 'roles/node', { sealKey: sealKeyOf(owner), role: eligible ? 'auto' : 'worker', eligible, k3s: true })
const vote = (owner: string, v: VoteValue): StateEntry => entry(owner, 'roles/vote', v)
const b = (n: number, by: string): Ballot => ({ n, by })
const alive = (...ids: string[]): Array<{ peerId: string, liveness: 'alive', lastSeen: number }> => ids.map((peerId) => ({ peerId, liveness: 'alive', lastSeen: 0 }))

/** Ids sorted by preference, so tests can name "the preferred node". */
function byPreference (ids: string[]): string[] {
  return [...ids].sort((x, y) => (preferenceKey(x, 'site') < preferenceKey(y, 'site') ? -1 : 1))
}

describe('quorum', () => {
  it.each([
    // minimum_nodes, known, quorum
    [3, 1, 3],
    [3, 3, 3],
    [3, 5, 3],
    [3, 6, 4],
    [3, 10, 6],
    [6, 10, 6],
    [1, 1, 1],
    [0, 0, 1]
  ])('minimum %i with %i known needs %i votes', (m, known, q) => {
    expect(quorumSize(m, known)).toBe(q)
  })

  it('orders ballots by round, then proposer', () => {
    expect(compareBallots(b(1, 'z'), b(2, 'a'))).toBeLessThan(0)
    expect(compareBallots(b(2, 'a'), b(2, 'b'))).toBeLessThan(0)
    expect(compareBallots(b(2, 'b'), b(2, 'b'))).toBe(0)
  })

  it('refuses malformed votes and proposals from the state', () => {
    expect(parseVote({ promised: { n: -1, by: 'x' }, accepted: null })).toBeUndefined()
    expect(parseVote({ promised: null, accepted: { ballot: { n: 1, by: 'x' } } })).toBeUndefined()
    expect(parseProposal({ ballot: { n: 1, by: 'x' }, candidate: 7 })).toBeUndefined()
    expect(parseProposal({ ballot: { n: 1, by: 'x' }, candidate: null, committed: true })?.committed).toBe(false)
  })

  it('ignores a proposal whose ballot names another proposer than its owner', () => {
    const view = indexEntries('a', 'site', [entry('mallory', 'roles/proposal', { ballot: b(9, 'b'), candidate: 'mallory', committed: true })])
    expect(view.proposals).toEqual([])
  })

  it('tracks when the alive view last changed', () => {
    const t1 = trackView(undefined, alive('b', 'c'), 100)
    expect(trackView(t1, alive('c', 'b'), 500)).toBe(t1)
    expect(trackView(t1, alive('b'), 500).since).toBe(500)
  })
})

describe('a suspicion is not a verdict', () => {
  it('a member flapping between alive and suspect leaves the view stable; only dead changes it', () => {
    const t1 = trackView(undefined, alive('b', 'c'), 100)
    expect(trackView(t1, [{ peerId: 'b', liveness: 'suspect', lastSeen: 0 }, ...alive('c')], 500)).toBe(t1)
    expect(trackView(t1, [{ peerId: 'b', liveness: 'dead', lastSeen: 0 }, ...alive('c')], 500).since).toBe(500)
  })

  it('the preferred node is still preferred while others suspect it: nobody else stands', () => {
    const order = byPreference(['a', 'b', 'c', 'd', 'e'])
    const first = order[0] as string
    const second = order[1] as string
    const rest = order.slice(2)
    const view = indexEntries(second, 'site', order.map((id) => node(id)))
    const members = [{ peerId: first, liveness: 'suspect' as const, lastSeen: 0 }, ...alive(...rest)]
    const out = electionStep({ self: second, now: 10_000, networkId: 'site', config: BASE_CONFIG, members, view, local: EMPTY_FACTS, viewSince: 0 })
    expect(out.local.proposal).toBeNull()
    // Once the preferred node is declared dead, the next one stands.
    const dead = electionStep({ self: second, now: 10_000, networkId: 'site', config: BASE_CONFIG, members: [{ peerId: first, liveness: 'dead', lastSeen: 0 }, ...alive(...rest)], view, local: EMPTY_FACTS, viewSince: 0 })
    expect(dead.local.proposal?.ballot.by).toBe(second)
  })
})

describe('Paxos adoption: one-vote-per-term is not enough', () => {
  // A won ballot 1 with A, B, C and may already be running cluster-init, but
  // nobody saw its commit or record. E runs ballot 2 with promises from C, D, E.
  const members = alive('a', 'b', 'c', 'd')
  const entries = [
    node('a'), node('b'), node('c'), node('d'),
    vote('c', { promised: b(2, 'e'), accepted: { ballot: b(1, 'a'), candidate: 'a' } }),
    vote('d', { promised: b(2, 'e'), accepted: null }),
    vote('e', { promised: b(2, 'e'), accepted: null }),
    entry('e', 'roles/proposal', { ballot: b(2, 'e'), candidate: null, committed: false })
  ]
  const local: LocalFacts = { ...EMPTY_FACTS, promised: b(2, 'e'), promisedAt: 10, proposal: { ballot: b(2, 'e'), candidate: null, committed: false, startedAt: 10 } }

  it('a later ballot whose quorum reports an earlier accepted candidate proposes that candidate, not itself', () => {
    const out = electionStep({ self: 'e', now: 20, networkId: 'site', config: BASE_CONFIG, members, view: indexEntries('e', 'site', entries), local, viewSince: 0 })
    expect(out.local.proposal?.candidate).toBe('a')
    expect(out.local.accepted).toEqual({ ballot: b(2, 'e'), candidate: 'a' })
  })

  it('without a quorum of promises the proposer proposes nothing yet', () => {
    const fewer = entries.filter((e) => !(e.owner === 'd' && e.key === 'roles/vote'))
    const out = electionStep({ self: 'e', now: 20, networkId: 'site', config: BASE_CONFIG, members, view: indexEntries('e', 'site', fewer), local, viewSince: 0 })
    expect(out.local.proposal?.candidate).toBeNull()
  })

  it('a voter that promised a higher ballot refuses to accept in a lower one', () => {
    const voter: LocalFacts = { ...EMPTY_FACTS, promised: b(3, 'x'), promisedAt: 5 }
    const view = indexEntries('c', 'site', [entry('e', 'roles/proposal', { ballot: b(2, 'e'), candidate: 'e', committed: false })])
    const out = electionStep({ self: 'c', now: 20, networkId: 'site', config: { ...BASE_CONFIG, staticRole: 'worker' }, members, view, local: voter, viewSince: 0 })
    expect(out.local.accepted).toBeNull()
    expect(out.local.promised).toEqual(b(3, 'x'))
  })

  it('the candidate is chosen by a quorum of accepts it holds, and a voter checks the promises before it accepts', () => {
    const out = electionStep({ self: 'e', now: 20, networkId: 'site', config: BASE_CONFIG, members, view: indexEntries('e', 'site', entries), local, viewSince: 0 })
    const proposal = out.local.proposal
    const { startedAt: _, ...published } = proposal as NonNullable<typeof proposal>
    expect(published.promises?.map((p) => p.voter)).toEqual(['c', 'd', 'e'])
    // D checks E's proposal against the votes it holds, and accepts it.
    const atD = indexEntries('d', 'site', [...entries, entry('e', 'roles/proposal', published, 2)])
    const dLocal: LocalFacts = { ...EMPTY_FACTS, promised: b(2, 'e'), promisedAt: 10 }
    const d = electionStep({ self: 'd', now: 30, networkId: 'site', config: { ...BASE_CONFIG, staticRole: 'worker' }, members: alive('a', 'b', 'c', 'e'), view: atD, local: dLocal, viewSince: 0 })
    expect(d.local.accepted).toEqual({ ballot: b(2, 'e'), candidate: 'a' })
    // A sees a quorum accept it in ballot 2: chosen, with the certificate.
    const accepts = ['c', 'd', 'e'].map((v) => vote(v, { promised: b(2, 'e'), accepted: { ballot: b(2, 'e'), candidate: 'a' } }))
    const atA = indexEntries('a', 'site', [node('a'), node('b'), node('c'), node('d'), ...accepts])
    const chosen = electionStep({ self: 'a', now: 40, networkId: 'site', config: BASE_CONFIG, members: alive('b', 'c', 'd', 'e'), view: atA, local: EMPTY_FACTS, viewSince: 0 })
    expect(chosen.chosen?.candidate).toBe('a')
    expect(chosen.chosen?.certificate.votes.map((r) => r.voter)).toEqual(['c', 'd', 'e'])
  })
})

describe('election on a site (named after the Kairos failure each case prevents)', () => {
  const ids = ['n1', 'n2', 'n3', 'n4', 'n5']

  it.each([
    { name: 'overlapping views {1,2,3} and {3,4,5}', link: (x: string, y: string) => !((['n1', 'n2'].includes(x) && ['n4', 'n5'].includes(y)) || (['n1', 'n2'].includes(y) && ['n4', 'n5'].includes(x))) },
    { name: 'a chain of views 1-2-3-4-5', link: (x: string, y: string) => Math.abs(Number(x.slice(1)) - Number(y.slice(1))) <= 1 },
    { name: 'a star around n3', link: (x: string, y: string) => x === 'n3' || y === 'n3' || x === y }
  ])('two masters when views differ — kairos#950: $name gives at most one init', ({ link }) => {
    const site = new Site(ids, { minimumNodes: 3 })
    site.links = link
    site.run(60)
    expect(site.inits().length).toBeLessThanOrEqual(1)
    // Once the views agree, exactly one init and every node gets a role.
    site.links = () => true
    site.run(60)
    expect(site.inits()).toHaveLength(1)
    expect(site.nodes.every((n) => n.facts.role !== null)).toBe(true)
  })

  it('a clean split below minimum_nodes elects nobody; the majority side elects once', () => {
    const site = new Site(ids, { minimumNodes: 3 })
    const left = new Set(['n1', 'n2'])
    site.links = (x, y) => left.has(x) === left.has(y)
    site.run(40)
    const minority = site.nodes.filter((n) => left.has(n.id))
    expect(minority.every((n) => n.inits === 0 && n.last?.phase === 'waiting' && n.last.awaiting === 1)).toBe(true)
    expect(site.inits()).toHaveLength(1)
    site.links = () => true
    site.run(40)
    expect(site.inits()).toHaveLength(1)
    expect(site.nodes.every((n) => n.facts.role !== null)).toBe(true)
  })

  it('the first node below minimum_nodes reports how many more nodes it awaits', () => {
    const site = new Site(ids, { minimumNodes: 4 })
    site.down.add('n3').add('n4').add('n5')
    site.run(5)
    expect(site.node('n1').last?.phase).toBe('waiting')
    expect(site.node('n1').last?.awaiting).toBe(2)
    site.down.delete('n3')
    site.down.add('n2')
    site.run(1)
    expect(site.node('n1').last?.awaiting).toBe(2)
  })

  it('nobody stands before the view has been stable for the settle period', () => {
    const site = new Site(ids, { minimumNodes: 3, settleMs: 10_000 })
    site.run(20, 100)
    expect(site.nodes.every((n) => n.facts.proposal === null)).toBe(true)
    site.run(100, 100)
    expect(site.inits()).toHaveLength(1)
  })

  it('only the preferred alive eligible node stands: static workers never do', () => {
    const order = byPreference(ids)
    const roles = { [order[0] as string]: 'worker' as const }
    const site = new Site(ids, { minimumNodes: 3 }, roles)
    site.run(40)
    expect(site.inits()).toEqual([order[1]])
    expect(site.node(order[0] as string).facts.proposal).toBeNull()
  })

  it('a late node joins the existing cluster and never runs cluster-init', () => {
    const site = new Site([...ids, 'late'], { minimumNodes: 3 })
    site.down.add('late')
    site.run(40)
    const [init] = site.inits()
    site.down.delete('late')
    site.run(40)
    expect(site.inits()).toEqual([init])
    expect(site.node('late').facts.role?.role).toBe('agent')
    expect(site.node('late').facts.proposal).toBeNull()
  })

  it('power cycle reshuffles the master — kairos#3834: persisted roles come back, nothing is re-elected', () => {
    const site = new Site(ids, { minimumNodes: 3 })
    site.run(40)
    const before = site.nodes.map((n) => n.facts.role?.role)
    const [init] = site.inits()
    // Every node off; boot back one by one, the old init server last.
    for (const n of ids) site.down.add(n)
    for (const n of byPreference(ids).reverse()) {
      if (n === init) continue
      site.down.delete(n)
      site.run(5)
    }
    site.down.delete(init as string)
    site.run(20)
    expect(site.nodes.map((n) => n.facts.role?.role)).toEqual(before)
    expect(site.inits()).toEqual([init])
  })
})

describe('a hostile token holder cannot decide the election', () => {
  const members = alive('a', 'c', 'd', 'mallory')
  const base = [node('a'), node('c'), node('d'), node('mallory')]

  it('a proposal forged with a candidate and no promises gets no vote', () => {
    const forged = entry('mallory', 'roles/proposal', { ballot: b(5, 'mallory'), candidate: 'mallory', committed: true })
    const out = electionStep({ self: 'c', now: 20, networkId: 'site', config: BASE_CONFIG, members, view: indexEntries('c', 'site', [...base, forged]), local: EMPTY_FACTS, viewSince: 0 })
    expect(out.local.accepted).toBeNull()
    // Even a voter that promised its ballot does not accept it.
    const promised = electionStep({ self: 'c', now: 20, networkId: 'site', config: BASE_CONFIG, members, view: indexEntries('c', 'site', [...base, forged]), local: { ...EMPTY_FACTS, promised: b(5, 'mallory'), promisedAt: 10 }, viewSince: 0 })
    expect(promised.local.accepted).toBeNull()
  })

  it('a proposal citing promises the voters never made, or hiding what they accepted, gets no vote', () => {
    const held = [
      ...base,
      vote('a', { promised: b(5, 'mallory'), accepted: { ballot: b(1, 'a'), candidate: 'a' } }),
      vote('d', { promised: b(5, 'mallory'), accepted: null }),
      vote('mallory', { promised: b(5, 'mallory'), accepted: null })
    ]
    const view0 = indexEntries('c', 'site', held)
    const ref = (id: string): { voter: string, version: number, hash: string } => refOf(view0.voteEntries.get(id) as StateEntry)
    // A reports nothing accepted, though its vote says it accepted A in ballot 1.
    const hiding = entry('mallory', 'roles/proposal', {
      ballot: b(5, 'mallory'), candidate: 'mallory', committed: false, known: 4,
      promises: [{ ...ref('a'), accepted: null }, { ...ref('d'), accepted: null }, { ...ref('mallory'), accepted: null }]
    })
    // C "promised", with a made-up version and hash.
    const inventing = entry('mallory', 'roles/proposal', {
      ballot: b(5, 'mallory'), candidate: 'mallory', committed: false, known: 4,
      promises: [{ voter: 'c', version: 1, hash: '0'.repeat(32), accepted: null }, { ...ref('d'), accepted: null }, { ...ref('mallory'), accepted: null }]
    })
    for (const forged of [hiding, inventing]) {
      const view = indexEntries('c', 'site', [...held, vote('c', { promised: b(5, 'mallory'), accepted: null }), forged])
      const c = electionStep({ self: 'c', now: 20, networkId: 'site', config: BASE_CONFIG, members, view, local: { ...EMPTY_FACTS, promised: b(5, 'mallory'), promisedAt: 10 }, viewSince: 0 })
      expect(c.local.accepted).toBeNull()
    }
    // The honest version of the same ballot (candidate A, as A's vote requires) is accepted.
    const honest = entry('mallory', 'roles/proposal', {
      ballot: b(5, 'mallory'), candidate: 'a', committed: false, known: 4,
      promises: [{ ...ref('a'), accepted: { ballot: b(1, 'a'), candidate: 'a' } }, { ...ref('d'), accepted: null }, { ...ref('mallory'), accepted: null }]
    })
    const view = indexEntries('c', 'site', [...held, honest])
    const c = electionStep({ self: 'c', now: 20, networkId: 'site', config: BASE_CONFIG, members, view, local: { ...EMPTY_FACTS, promised: b(5, 'mallory'), promisedAt: 10 }, viewSince: 0 })
    expect(c.local.accepted).toEqual({ ballot: b(5, 'mallory'), candidate: 'a' })
  })

  it('a certificate counts each voter once, and a replayed old vote does not count once the voter moved on', () => {
    const held = [
      ...base,
      vote('a', { promised: b(1, 'a'), accepted: { ballot: b(1, 'a'), candidate: 'a' } }),
      entry('c', 'roles/vote', { promised: b(2, 'x'), accepted: { ballot: b(2, 'x'), candidate: 'x' } }, 2),
      vote('mallory', { promised: b(1, 'a'), accepted: { ballot: b(1, 'a'), candidate: 'a' } })
    ]
    const view = indexEntries('d', 'site', held)
    const old = voteHash({ promised: b(1, 'a'), accepted: { ballot: b(1, 'a'), candidate: 'a' } })
    const cert = (votes: Array<{ voter: string, version: number, hash: string }>): Parameters<typeof checkCertificate>[0] => ({ ballot: b(1, 'a'), candidate: 'a', known: 4, votes })
    const a = refOf(view.voteEntries.get('a') as StateEntry)
    const m = refOf(view.voteEntries.get('mallory') as StateEntry)
    expect(checkCertificate(cert([a, a, m]), view, 3)).toBe('invalid')
    expect(checkCertificate(cert([a, m, { voter: 'c', version: 1, hash: old }]), view, 3)).toBe('invalid')
    // Votes not arrived yet: pending, never valid.
    expect(checkCertificate(cert([a, m, { voter: 'd', version: 1, hash: old }]), view, 3)).toBe('pending')
    const withD = indexEntries('x', 'site', [...held, vote('d', { promised: b(1, 'a'), accepted: { ballot: b(1, 'a'), candidate: 'a' } })])
    expect(checkCertificate(cert([a, m, { voter: 'd', version: 1, hash: old }]), withD, 3)).toBe('valid')
  })

  it('ballot rounds beyond the bound are malformed, so no one can push the term to the end of the integers', () => {
    expect(parseProposal({ ballot: { n: Number.MAX_SAFE_INTEGER, by: 'm' }, candidate: null, committed: false })).toBeUndefined()
    expect(parseVote({ promised: { n: MAX_BALLOT_ROUND + 1, by: 'm' }, accepted: null })).toBeUndefined()
    expect(parseVote({ promised: b(1, 'm'), accepted: { ballot: b(2, 'm'), candidate: 'm' } })).toBeUndefined()
  })
})

describe('lying voters and standing early', () => {
  const acc = (n: number, by: string, candidate: string): { ballot: Ballot, candidate: string } => ({ ballot: b(n, by), candidate })

  it.each([
    { name: 'plain Paxos without tolerance: the highest report wins, even a lone one', liars: 0, reports: [acc(1, 'a', 'a'), acc(1, 'a', 'a'), acc(7, 'm', 'x')], want: 'x' },
    { name: 'one liar tolerated: a lone made-up high ballot is outranked by a candidate two voters back', liars: 1, reports: [acc(1, 'a', 'a'), acc(1, 'a', 'a'), acc(7, 'm', 'x')], want: 'a' },
    { name: 'one liar tolerated: a candidate two voters back at a later ballot still wins', liars: 1, reports: [acc(1, 'a', 'a'), acc(1, 'a', 'a'), acc(3, 'b', 'b'), acc(4, 'c', 'b')], want: 'b' },
    { name: 'nothing reported twice: the proposer stands for itself', liars: 1, reports: [acc(1, 'a', 'a'), acc(7, 'm', 'x'), null], want: 'p' },
    { name: 'no reports at all', liars: 0, reports: [null, null], want: 'p' }
  ])('$name', ({ liars, reports, want }) => {
    expect(justifiedCandidate(reports, 'p', liars)).toBe(want)
  })

  it.each([
    // minimum_nodes, known, liars tolerated
    [3, 5, 0], [4, 6, 0], [5, 6, 1], [6, 8, 1], [7, 10, 1], [7, 9, 2], [3, 3, 1]
  ])('minimum %i with %i known tolerates %i liar(s)', (m, known, t) => {
    expect(liarsTolerated(m, known)).toBe(t)
  })

  it('a proposer standing for itself gets no vote unless it is the preferred node, and a dead rumour about the preferred node hands nothing on', () => {
    const order = byPreference(['a', 'b', 'c', 'd'])
    const [first, second, third, fourth] = order as [string, string, string, string]
    const voterEntries = [node(first), node(second), node(third), node(fourth)]
    const promises = [third, fourth, second].map((id) => vote(id, { promised: b(3, second), accepted: null }))
    const view0 = indexEntries(fourth, 'site', [...voterEntries, ...promises])
    const proposal = entry(second, 'roles/proposal', {
      ballot: b(3, second), candidate: second, committed: false, known: 4,
      promises: [second, third, fourth].sort().map((id) => ({ ...refOf(view0.voteEntries.get(id) as StateEntry), accepted: null }))
    })
    const view = indexEntries(fourth, 'site', [...voterEntries, ...promises, proposal])
    const local: LocalFacts = { ...EMPTY_FACTS, promised: b(3, second), promisedAt: 10 }
    const cfg = { ...BASE_CONFIG, staticRole: 'worker' as const, rumourGraceMs: 600 }
    // The promise was made at 10 and holds for the term timeout (1 s): the checks below come after it.
    const step = (members: Array<{ peerId: string, liveness: 'alive' | 'dead', lastSeen: number }>, now = 2_000): LocalFacts =>
      electionStep({ self: fourth, now, networkId: 'site', config: cfg, members, view, local, viewSince: 0 }).local
    // The preferred node is up: the second may not stand for itself.
    expect(step([{ peerId: first, liveness: 'alive', lastSeen: 2_000 }, ...alive(second, third)]).accepted).toBeNull()
    // A rumour says it is dead, but this voter heard it 100 ms ago: still no vote.
    expect(step([{ peerId: first, liveness: 'dead', lastSeen: 1_900 }, ...alive(second, third)]).accepted).toBeNull()
    // Silent for longer than the grace period and dead: the second is preferred now.
    expect(step([{ peerId: first, liveness: 'dead', lastSeen: 100 }, ...alive(second, third)]).accepted).toEqual({ ballot: b(3, second), candidate: second })
    // Within the hold of its promise the voter keeps to the ballot it promised, although
    // the preferred node showed up since: a node discovered late does not supersede it.
    expect(step([{ peerId: first, liveness: 'alive', lastSeen: 500 }, ...alive(second, third)], 500).accepted).toEqual({ ballot: b(3, second), candidate: second })
  })
})

describe('a member cannot keep the election from ending', () => {
  it('voters promise only ballots of the preferred node, and a claimed huge round does not push the next ballot to the bound', () => {
    const order = byPreference(['a', 'b', 'c', 'mallory'].filter((id) => id !== 'mallory'))
    const [first, second, third] = order as [string, string, string]
    const entries = [node(first), node(second), node(third), node('mallory'),
      entry('mallory', 'roles/proposal', { ballot: b(9, 'mallory'), candidate: null, committed: false }),
      vote('mallory', { promised: b(MAX_BALLOT_ROUND, 'mallory'), accepted: null })]
    const members = alive(first, third, 'mallory')
    const voter = electionStep({ self: second, now: 10_000, networkId: 'site', config: BASE_CONFIG, members, view: indexEntries(second, 'site', entries), local: EMPTY_FACTS, viewSince: 0 })
    expect(voter.local.promised).toBeNull()
    const proposer = electionStep({ self: first, now: 10_000, networkId: 'site', config: BASE_CONFIG, members: alive(second, third, 'mallory'), view: indexEntries(first, 'site', entries), local: EMPTY_FACTS, viewSince: 0 })
    expect(proposer.local.proposal?.ballot).toEqual(b(1, first))
  })
})

describe('a ballot under way is not superseded by a node found later (ELEC-12)', () => {
  const cfg = { ...BASE_CONFIG, staticRole: 'worker' as const, minimumNodes: 3, termTimeoutMs: 1_000 }
  const [first, second, third, fourth] = byPreference(['a', 'b', 'c', 'd']) as [string, string, string, string]
  const nodes = [node(first), node(second), node(third), node(fourth)]

  it('a voter holding a promise to one proposer does not promise another proposer\'s higher ballot until the hold ends', () => {
    // The fourth promised the second's ballot (1); the first shows up and stands at round 2.
    const view = indexEntries(fourth, 'site', [...nodes,
      entry(second, 'roles/proposal', { ballot: b(1, second), candidate: null, committed: false }),
      entry(first, 'roles/proposal', { ballot: b(2, first), candidate: null, committed: false })])
    const local: LocalFacts = { ...EMPTY_FACTS, promised: b(1, second), promisedAt: 1_000 }
    const members = alive(first, second, third)
    const at = (now: number): LocalFacts => electionStep({ self: fourth, now, networkId: 'site', config: cfg, members, view, local, viewSince: 0 }).local
    expect(at(1_500).promised).toEqual(b(1, second))
    expect(at(2_100).promised).toEqual(b(2, first))
  })

  it('a node that prefers another proposer still promises a ballot a quorum promised already, and does not stand meanwhile', () => {
    // The first (preferred by everyone who sees it) joins late: the others promised the second's ballot.
    const view = indexEntries(first, 'site', [...nodes,
      entry(second, 'roles/proposal', { ballot: b(1, second), candidate: null, committed: false }),
      vote(second, { promised: b(1, second), accepted: null }),
      vote(third, { promised: b(1, second), accepted: null }),
      vote(fourth, { promised: b(1, second), accepted: null })])
    const out = electionStep({ self: first, now: 5_000, networkId: 'site', config: { ...cfg, staticRole: 'auto' }, members: alive(second, third, fourth), view, local: EMPTY_FACTS, viewSince: 0 })
    expect(out.local.promised).toEqual(b(1, second))
    expect(out.local.proposal).toBeNull()
  })

  it('a proposer that learns of one more node keeps its ballot, re-counted, while its promises still make a quorum', () => {
    const promisers = [second, third, fourth]
    const votes = promisers.map((id) => vote(id, { promised: b(1, second), accepted: null }))
    const view0 = indexEntries(second, 'site', [node(second), node(third), node(fourth), ...votes])
    const promises = promisers.sort().map((id) => ({ ...refOf(view0.voteEntries.get(id) as StateEntry), accepted: null }))
    const local: LocalFacts = { ...EMPTY_FACTS, promised: b(1, second), promisedAt: 10, accepted: { ballot: b(1, second), candidate: second }, proposal: { ballot: b(1, second), candidate: second, committed: false, known: 3, promises, startedAt: 10 } }
    // A fourth node (not preferred to it here: it is a worker) shows up.
    const view = indexEntries(second, 'site', [node(first, false), node(second), node(third), node(fourth), ...votes])
    const out = electionStep({ self: second, now: 20, networkId: 'site', config: { ...cfg, staticRole: 'auto' }, members: alive(first, third, fourth), view, local, viewSince: 0 })
    expect(out.local.proposal?.ballot).toEqual(b(1, second))
    expect(out.local.proposal?.known).toBe(4)
  })
})

describe('a node preferred in its view waits for the nodes that may rank above it (ELEC-14)', () => {
  // minimum_nodes 2: a site of at most 3 nodes besides those known, so nobody is unseen below.
  const cfg = { ...BASE_CONFIG, minimumNodes: 2, settleMs: 100, termTimeoutMs: 1_000 }
  const order = byPreference(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'])
  const at = (i: number): string => order[i] as string
  const step = (self: string, members: string[], entries: StateEntry[], now: number): ReturnType<typeof electionStep> =>
    electionStep({ self, now, networkId: 'site', config: cfg, members: alive(...members), view: indexEntries(self, 'site', entries), local: EMPTY_FACTS, viewSince: 0 })
  const stands = (self: string, members: string[], entries: StateEntry[], now: number): boolean => step(self, members, entries, now).local.proposal !== null

  it('the second node waits one hold while the first has published no roles/node entry to it, then stands (the first may be dead or hostile)', () => {
    const members = [at(0), at(2), at(3)]
    const entries = [node(at(1)), node(at(2)), node(at(3))]
    expect(stands(at(1), members, entries, 500)).toBe(false)
    expect(step(at(1), members, entries, 500).recheckAt).toBe(1_100)
    expect(stands(at(1), members, entries, 1_099)).toBe(false)
    expect(stands(at(1), members, entries, 1_100)).toBe(true)
  })

  it('once the entry arrives, the second stands after the settle period if the first is a worker, and never if it is eligible', () => {
    const members = [at(0), at(2), at(3)]
    const rest = [node(at(1)), node(at(2)), node(at(3))]
    expect(stands(at(1), members, [node(at(0), false), ...rest], 100)).toBe(true)
    expect(stands(at(1), members, [node(at(0)), ...rest], 10_000)).toBe(false)
  })

  it('the first node stands after the settle period however many members below it are unknown', () => {
    expect(stands(at(0), [at(1), at(2), at(3)], [node(at(0))], 99)).toBe(false)
    expect(stands(at(0), [at(1), at(2), at(3)], [node(at(0))], 100)).toBe(true)
  })

  it('the wait grows with the unknown members ranked above, so the better node stands first, and is bounded however many there are', () => {
    const members = (self: number): string[] => order.filter((_, i) => i !== self)
    const known = [node(at(5)), node(at(6)), node(at(7))]
    // Nobody above the second publishes an entry to it: one hold.
    expect(stands(at(1), members(1), known, 1_099)).toBe(false)
    expect(stands(at(1), members(1), known, 1_100)).toBe(true)
    // Two above the third: two holds.
    expect(stands(at(2), members(2), known, 2_099)).toBe(false)
    expect(stands(at(2), members(2), known, 2_100)).toBe(true)
    // Five above the sixth (minted identities that never publish one): at most STAND_BACKOFF_RANKS holds.
    expect(stands(at(5), members(5), known, 100 + (STAND_BACKOFF_RANKS * 1_000) - 1)).toBe(false)
    expect(stands(at(5), members(5), known, 100 + STAND_BACKOFF_RANKS * 1_000)).toBe(true)
  })

  it('a dead member ranked above, silent past the grace period, is not waited for', () => {
    const members = [{ peerId: at(0), liveness: 'dead' as const, lastSeen: 0 }, ...alive(at(2), at(3))]
    const out = electionStep({ self: at(1), now: 100, networkId: 'site', config: { ...cfg, rumourGraceMs: 50 }, members, view: indexEntries(at(1), 'site', [node(at(1)), node(at(2)), node(at(3))]), local: EMPTY_FACTS, viewSince: 0 })
    expect(out.local.proposal).not.toBeNull()
  })

  it('a better peer still being dialled (heard of by discovery, not a member yet) adds one hold; one ranked below, or a member, adds none', () => {
    const members = [at(2), at(3)]
    const entries = [node(at(1)), node(at(2)), node(at(3))]
    const withDiscovering = (discovering: string[], now: number): ReturnType<typeof electionStep> =>
      electionStep({ self: at(1), now, networkId: 'site', config: cfg, members: alive(...members), view: indexEntries(at(1), 'site', entries), local: EMPTY_FACTS, viewSince: 0, discovering })
    // Without it the second node stands after the settle period.
    expect(withDiscovering([], 100).local.proposal).not.toBeNull()
    // The best node is still being dialled: one hold.
    expect(withDiscovering([at(0)], 1_099).local.proposal).toBeNull()
    expect(withDiscovering([at(0)], 1_099).recheckAt).toBe(1_100)
    expect(withDiscovering([at(0)], 1_100).local.proposal).not.toBeNull()
    // A peer ranked below, or one already a member, does not delay it.
    expect(withDiscovering([at(4), at(2)], 100).local.proposal).not.toBeNull()
  })

  it('made-up discovered ids ranked above (discovery is not authenticated) delay a node by at most the cap', () => {
    const flood = byPreference(Array.from({ length: 40 }, (_, i) => `x${i}`))
    const self = at(7)
    const better = flood.filter((id) => preferenceKey(id, 'site') < preferenceKey(self, 'site'))
    expect(better.length).toBeGreaterThan(STAND_BACKOFF_RANKS)
    const wait = standWaitMs({ self, preferable: [self], discovering: flood, unseen: 0, view: indexEntries(self, 'site', [node(self)]), networkId: 'site', settleMs: 100, holdMs: 1_000 })
    expect(wait).toBe(100 + STAND_BACKOFF_RANKS * 1_000)
  })

  it('peers being dialled are heard of, so they are not counted again among the unseen', () => {
    const ids = Array.from({ length: 64 }, (_, i) => `p${i}`)
    const share = (id: string): number => Number.parseInt(preferenceKey(id, 'site').slice(0, 12), 16) / 2 ** 48
    const low = ids.find((id) => share(id) > 0.6) as string
    const below = ids.filter((id) => preferenceKey(id, 'site') > preferenceKey(low, 'site')).slice(0, 2)
    expect(below).toHaveLength(2)
    // minimum_nodes 4, five nodes known: up to two unseen; two more heard of by discovery (ranked below) leave none.
    // The members publish no eligible entry, so the low node is the one preferred.
    const members = ['q1', 'q2', 'q3', 'q4']
    const view = indexEntries(low, 'site', [low, ...members].map((id) => node(id, id === low)))
    const step4 = (discovering: string[]): ReturnType<typeof electionStep> => electionStep({ self: low, now: 100, networkId: 'site', config: { ...cfg, minimumNodes: 4 }, members: alive(...members), view, local: EMPTY_FACTS, viewSince: 0, discovering })
    expect(step4([]).local.proposal).toBeNull()
    expect(step4(below).local.proposal).not.toBeNull()
  })

  it('with nodes still unseen, a node whose key ranks low in the key space waits longer than one whose key ranks high, and never past the bound', () => {
    const ids = Array.from({ length: 64 }, (_, i) => `p${i}`)
    const share = (id: string): number => Number.parseInt(preferenceKey(id, 'site').slice(0, 12), 16) / 2 ** 48
    const top = ids.find((id) => share(id) < 0.05) as string
    const low = ids.find((id) => share(id) > 0.6) as string
    const wait = (self: string, unseen: number): number => standWaitMs({ self, preferable: [self], unseen, view: indexEntries(self, 'site', [node(self)]), networkId: 'site', settleMs: 100, holdMs: 1_000 })
    expect(wait(top, 0)).toBe(100)
    expect(wait(low, 0)).toBe(100)
    expect(wait(top, 3)).toBeLessThan(300)
    expect(wait(low, 3)).toBeGreaterThan(1_800)
    expect(wait(low, 1_000)).toBe(100 + STAND_BACKOFF_RANKS * 1_000)
    // On a site of minimum_nodes 4, five alive nodes leave up to two unseen: the low one waits for them.
    const members = ['q1', 'q2', 'q3', 'q4']
    const view = indexEntries(low, 'site', [low, ...members].map((id) => node(id, id === low)))
    const out = (now: number): ReturnType<typeof electionStep> => electionStep({ self: low, now, networkId: 'site', config: { ...cfg, minimumNodes: 4 }, members: alive(...members), view, local: EMPTY_FACTS, viewSince: 0 })
    expect(out(100).local.proposal).toBeNull()
    expect(out(100).recheckAt).toBe(wait(low, 2))
    expect(out(wait(low, 2)).local.proposal).not.toBeNull()
  })
})
