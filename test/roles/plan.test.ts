import { describe, expect, it } from 'vitest'
import type { StateEntry } from '../../p2p/types.ts'
import { applyDecisionNow } from '../../roles/apply.ts'
import { generateClusterSecrets, sealCredential, type ClusterSecrets } from '../../roles/credentials.ts'
import { preferenceKey } from '../../roles/election.ts'
import { indexEntries } from '../../roles/entries.ts'
import { seededRandom } from '../../util/random.ts'
import { canonicalJson, configWarnings, decide, jsonEqual } from '../../roles/plan.ts'
import { collectableCredentials, planCredentials } from '../../roles/credential-plan.ts'
import { EMPTY_FACTS, type ClusterRecord, type LocalFacts, type NodeValue, type RolesSnapshot } from '../../roles/types.ts'
import { BASE_CONFIG, Site, certifiedRecord } from './site.ts'
import { LOW_ORDER_KEYS, sealKeyOf, sealKeysOf } from '../helpers/seal-keys.ts'

const entry = (owner: string, key: string, value: unknown, version = 1): StateEntry =>
  ({ owner, key, version, writtenAt: 0, value: value as StateEntry['value'] })
const CERTIFIED = certifiedRecord('init', ['init', 'a', 'b'])
const RECORD: ClusterRecord = CERTIFIED.record
const C1 = RECORD.clusterId
const nodeValue = (role: NodeValue['role'] = 'auto', sealKey = sealKeyOf('k')): NodeValue =>
  ({ sealKey, role, eligible: role === 'auto' || role === 'master', k3s: role !== 'none' })
const alive = (...ids: string[]): Array<{ peerId: string, liveness: 'alive', lastSeen: number }> => ids.map((peerId) => ({ peerId, liveness: 'alive', lastSeen: 0 }))
const byPref = (ids: string[]): string[] => [...ids].sort((x, y) => (preferenceKey(x, 'site') < preferenceKey(y, 'site') ? -1 : 1))

function snapshot (over: Partial<RolesSnapshot>): RolesSnapshot {
  return {
    self: 'me', now: 10_000, networkId: 'site', config: BASE_CONFIG, members: [], entries: [], local: EMPTY_FACTS,
    viewSince: 0, sealKey: sealKeyOf('me'), hasSecrets: false, address: '10.0.0.9', ...over
  }
}

describe('credential plan', () => {
  const base = {
    self: 'init', networkId: 'site', record: RECORD, config: { haEnable: false, haMasterNodes: 0 }, selfJoined: true
  }

  it.each([
    {
      name: 'every live node taking a k3s role gets the agent credential at once',
      nodes: { a: nodeValue(), b: nodeValue('worker'), c: nodeValue('none') },
      members: alive('a', 'b', 'c'),
      entries: [],
      want: [['a', 'agent'], ['b', 'agent']]
    },
    {
      name: 'a lost gossip message strands workers — provider-kairos#909: a node whose credential was never issued gets it on the next recompute',
      nodes: { a: nodeValue(), b: nodeValue() },
      members: alive('a', 'b'),
      entries: [entry('init', 'cred/a', { kind: 'agent', to: sealKeyOf('k'), clusterId: C1, box: {} })],
      want: [['b', 'agent']]
    },
    {
      name: 'a node with a new seal key gets its credential re-sealed, same kind',
      nodes: { a: nodeValue('auto', sealKeyOf('new-key')) },
      members: alive('a'),
      entries: [entry('init', 'cred/a', { kind: 'server', to: sealKeyOf('old-key'), clusterId: C1, box: {} }), entry('a', 'roles/status', { role: 'server', phase: 'joined', clusterId: C1 })],
      want: [['a', 'server']]
    },
    {
      name: 'dead nodes get nothing until they are back',
      nodes: { a: nodeValue() },
      members: [{ peerId: 'a', liveness: 'dead' as const, lastSeen: 0 }],
      entries: [],
      want: []
    },
    {
      name: 'a credential of another cluster id is not counted as issued',
      nodes: { a: nodeValue() },
      members: alive('a'),
      entries: [entry('init', 'cred/a', { kind: 'agent', to: sealKeyOf('k'), clusterId: 'other', box: {} })],
      want: [['a', 'agent']]
    }
  ])('$name', ({ nodes, members, entries, want }) => {
    const grants = planCredentials({ ...base, nodes: new Map(Object.entries(nodes)), members, entries })
    expect(grants.map((g) => [g.recipient, g.kind]).sort()).toEqual(want)
  })

  it('HA: admits one server at a time, only after the init server and earlier servers joined', () => {
    const ids = byPref(['a', 'b', 'c', 'd'])
    const nodes = new Map(ids.map((id) => [id, nodeValue()]))
    const ha = { ...base, config: { haEnable: true, haMasterNodes: 2 }, nodes, members: alive(...ids) }
    // Init not joined yet: no server yet, and the two reserved nodes get nothing else.
    let grants = planCredentials({ ...ha, entries: [], selfJoined: false })
    expect(grants.map((g) => [g.recipient, g.kind]).sort()).toEqual([[ids[2], 'agent'], [ids[3], 'agent']].sort())
    // Init joined: the most preferred is admitted.
    grants = planCredentials({ ...ha, entries: [], selfJoined: true })
    expect(grants.filter((g) => g.kind === 'server').map((g) => g.recipient)).toEqual([ids[0]])
    // First server admitted but not joined: nobody else yet.
    const issued = [entry('init', `cred/${ids[0] as string}`, { kind: 'server', to: sealKeyOf('k'), clusterId: C1, box: {} })]
    grants = planCredentials({ ...ha, entries: issued, selfJoined: true })
    expect(grants.filter((g) => g.kind === 'server')).toEqual([])
    // It reports joined: the next one.
    grants = planCredentials({ ...ha, entries: [...issued, entry(ids[0] as string, 'roles/status', { role: 'server', phase: 'joined', clusterId: C1 })], selfJoined: true })
    expect(grants.filter((g) => g.kind === 'server').map((g) => g.recipient)).toEqual([ids[1]])
  })

  it('declaring role: master gains no server token: with HA off a static master joins as an agent', () => {
    const nodes = new Map([['m', nodeValue('master')], ['a', nodeValue()]])
    const grants = planCredentials({ ...base, nodes, members: alive('m', 'a'), entries: [] })
    expect(grants.map((g) => [g.recipient, g.kind]).sort()).toEqual([['a', 'agent'], ['m', 'agent']])
  })

  it('static masters have the first claim on the HA slots, and no more servers than master_nodes', () => {
    const ids = byPref(['m1', 'm2', 'a1'])
    const nodes = new Map<string, NodeValue>([['m1', nodeValue('master')], ['m2', nodeValue('master')], ['a1', nodeValue()]])
    const ha = { ...base, config: { haEnable: true, haMasterNodes: 1 }, nodes, members: alive(...ids) }
    const grants = planCredentials({ ...ha, entries: [] })
    const firstMaster = byPref(['m1', 'm2'])[0] as string
    expect(grants.filter((g) => g.kind === 'server').map((g) => g.recipient)).toEqual([firstMaster])
    const issued = [entry('init', `cred/${firstMaster}`, { kind: 'server', to: sealKeyOf('k'), clusterId: C1, box: {} }), entry(firstMaster, 'roles/status', { role: 'server', phase: 'joined', clusterId: C1 })]
    const after = planCredentials({ ...ha, entries: issued })
    expect(after.filter((g) => g.kind === 'server')).toEqual([])
    expect(after.map((g) => g.recipient).sort()).toEqual(['a1', firstMaster === 'm1' ? 'm2' : 'm1'].sort())
  })
})

describe('an HA server that sits on the server token', () => {
  it('holds the next server back only until the join timeout', () => {
    const ids = byPref(['m', 'a1', 'a2'])
    const nodes = new Map<string, NodeValue>([['m', nodeValue('master')], ['a1', nodeValue()], ['a2', nodeValue()]])
    const issued = [{ ...entry('init', 'cred/m', { kind: 'server', to: sealKeyOf('k'), clusterId: C1, box: {} }), writtenAt: 1_000 }]
    const input = { self: 'init', networkId: 'site', record: RECORD, config: { haEnable: true, haMasterNodes: 2, serverJoinTimeoutMs: 60_000 }, nodes, members: alive(...ids), entries: issued, selfJoined: true }
    expect(planCredentials({ ...input, now: 30_000 }).filter((g) => g.kind === 'server')).toEqual([])
    const after = planCredentials({ ...input, now: 61_000 }).filter((g) => g.kind === 'server').map((g) => g.recipient)
    expect(after).toEqual([byPref(['a1', 'a2'])[0]])
  })
})

describe('a hostile token holder cannot hijack the cluster', () => {
  const members = alive('init', 'a', 'b', 'mallory')
  const nodes = ['init', 'a', 'b', 'mallory', 'me'].map((id) => entry(id, 'roles/node', { sealKey: sealKeyOf(id), role: 'auto', eligible: true, k3s: true }))
  const initRole = (d: ReturnType<typeof decide>): boolean => d.actions.some((a) => 'persist' in a && a.persist.role?.role === 'init')

  it('a proposal marked committed is not the decision: the named node does not run cluster-init with zero votes', () => {
    const forged = entry('mallory', 'roles/proposal', { ballot: { n: 7, by: 'mallory' }, candidate: 'me', committed: true })
    const d = decide(snapshot({ members, entries: [...nodes, forged] }))
    expect(initRole(d)).toBe(false)
    expect(d.role).toBeUndefined()
    // Two forged identities naming two victims: neither inits.
    const forged2 = entry('mallory2', 'roles/proposal', { ballot: { n: 8, by: 'mallory2' }, candidate: 'a', committed: true })
    const d2 = decide(snapshot({ self: 'a', members: alive('init', 'me', 'b', 'mallory'), entries: [...nodes, forged, forged2] }))
    expect(initRole(d2)).toBe(false)
  })

  it('a record without a certificate, even with ballot 0, is not acted on; the certified one is', () => {
    const fake = entry('mallory', 'roles/cluster', { clusterId: 'evil', init: 'mallory', networkId: 'site', ballot: { n: 0, by: 'mallory' } })
    const alone = decide(snapshot({ members, entries: [...nodes, fake] }))
    expect(alone.clusterId).toBeUndefined()
    expect(alone.phase).toBe('electing')
    const both = decide(snapshot({ members, entries: [...nodes, fake, ...CERTIFIED.entries] }))
    expect(both.leader).toBe('init')
    expect(both.clusterId).toBe(C1)
  })

  it('a record whose certificate names votes that do not say so is not acted on', () => {
    const forged = certifiedRecord('mallory', ['mallory', 'a', 'b'], 'site', { n: 0, by: 'mallory' })
    // Only mallory's own vote is real; A's and B's say they accepted the init server.
    const held = [...nodes, ...forged.entries.filter((e) => e.key === 'roles/cluster' || e.owner === 'mallory'), ...CERTIFIED.entries]
    const d = decide(snapshot({ members, entries: held }))
    expect(d.leader).toBe('init')
    expect(d.clusterId).toBe(C1)
    // Minted voters with no entries make the certificate pending, never valid.
    const minted = certifiedRecord('mallory', ['mallory', 'sybil1', 'sybil2'], 'site', { n: 0, by: 'mallory' })
    const onlyMinted = decide(snapshot({ members, entries: [...nodes, ...minted.entries.filter((e) => e.key === 'roles/cluster' || e.owner === 'mallory')] }))
    expect(onlyMinted.clusterId).toBeUndefined()
  })

  it('a node that accepted a record never switches to another, whatever its ballot', () => {
    const first = decide(snapshot({ members, entries: [...nodes, ...CERTIFIED.entries] }))
    const persisted = first.actions.find((a) => 'persist' in a)
    const facts = persisted !== undefined && 'persist' in persisted ? persisted.persist : EMPTY_FACTS
    expect(facts.cluster).toEqual({ clusterId: C1, init: 'init' })
    const other = certifiedRecord('x', ['x', 'y', 'z'], 'site', { n: 0, by: 'x' })
    const later = decide(snapshot({ members, local: facts, entries: [...nodes, ...other.entries, ...CERTIFIED.entries] }))
    expect(later.clusterId).toBe(C1)
    expect(later.leader).toBe('init')
    const onlyOther = decide(snapshot({ members, local: facts, entries: [...nodes, ...other.entries] }))
    expect(onlyOther.clusterId).toBe(C1)
  })

  it('a late node accepts a record whose votes were collected when a quorum of members report its cluster, and a fake one when none do', () => {
    const recordOnly = CERTIFIED.entries.filter((e) => e.key === 'roles/cluster')
    const statuses = ['init', 'a', 'b'].map((id) => entry(id, 'roles/status', { role: id === 'init' ? 'init' : 'agent', phase: 'joined', clusterId: C1 }))
    expect(decide(snapshot({ members, entries: [...nodes, ...recordOnly] })).clusterId).toBeUndefined()
    expect(decide(snapshot({ members, entries: [...nodes, ...recordOnly, ...statuses] })).clusterId).toBe(C1)
    // Mallory's record with its own status and one more: two of the three needed.
    const fake = certifiedRecord('mallory', ['mallory', 'sybil1', 'sybil2'], 'site', { n: 0, by: 'mallory' })
    const fakeStatus = ['mallory', 'sybil1'].map((id) => entry(id, 'roles/status', { role: 'agent', phase: 'joined', clusterId: fake.record.clusterId }))
    expect(decide(snapshot({ members, entries: [...nodes, ...fake.entries.filter((e) => e.key === 'roles/cluster'), ...fakeStatus] })).clusterId).toBeUndefined()
  })

  it('a credential sealed to this node by anyone but the init server is not taken', () => {
    const entries = [...nodes, ...CERTIFIED.entries, entry('mallory', 'cred/me', { kind: 'server', to: sealKeyOf('me'), clusterId: C1, box: {} })]
    const d = decide(snapshot({ members, entries, credential: { owner: 'mallory', digest: 'evil' } }))
    expect(d.role).toBeUndefined()
    expect(d.actions.some((a) => 'handOff' in a)).toBe(false)
  })

  it('the init server publishes its CA hash for its cluster once it has one', () => {
    const local: LocalFacts = { ...EMPTY_FACTS, cluster: { clusterId: C1, init: 'me', record: { ...RECORD, init: 'me' } }, role: { role: 'init', clusterId: C1, init: 'me' } }
    const puts = (d: ReturnType<typeof decide>): string[] => d.actions.flatMap((a) => ('put' in a ? [a.put] : []))
    expect(puts(decide(snapshot({ local, members })))).not.toContain('roles/ca')
    const d = decide(snapshot({ local, members, caHash: 'c'.repeat(64) }))
    const ca = d.actions.find((a) => 'put' in a && a.put === 'roles/ca')
    expect(ca !== undefined && 'put' in ca ? ca.value : undefined).toEqual({ clusterId: C1, caHash: 'c'.repeat(64) })
  })

  it('a joiner pins the CA hash the init server of its record published, and no one else\'s', () => {
    const hash = 'c'.repeat(64)
    const entries = [
      ...nodes, ...CERTIFIED.entries,
      entry('init', 'cred/me', { kind: 'agent', to: sealKeyOf('me'), clusterId: C1, box: {} }),
      entry('init', 'roles/status', { role: 'init', phase: 'joined', clusterId: C1, address: '10.0.0.1' })
    ]
    const handOff = (extra: StateEntry[]): unknown => {
      const h = decide(snapshot({ members, entries: [...entries, ...extra], credential: { owner: 'init', digest: 'd1' } })).actions.find((a) => 'handOff' in a)
      return h !== undefined && 'handOff' in h ? h.handOff : undefined
    }
    expect(handOff([entry('init', 'roles/ca', { clusterId: C1, caHash: hash })])).toMatchObject({ caHash: hash })
    expect(handOff([entry('mallory', 'roles/ca', { clusterId: C1, caHash: 'd'.repeat(64) })])).not.toHaveProperty('caHash')
  })

  it('a joiner persists the first CA hash of its init server and never switches to another', () => {
    const [h1, h2] = ['c'.repeat(64), 'd'.repeat(64)]
    const entries = [
      ...nodes, ...CERTIFIED.entries,
      entry('init', 'cred/me', { kind: 'agent', to: sealKeyOf('me'), clusterId: C1, box: {} }),
      entry('init', 'roles/status', { role: 'init', phase: 'joined', clusterId: C1, address: '10.0.0.1' })
    ]
    const run = (local: LocalFacts, ca: StateEntry[]): { d: ReturnType<typeof decide>, facts: LocalFacts, pin: unknown } => {
      const d = decide(snapshot({ members, local, entries: [...entries, ...ca], credential: { owner: 'init', digest: 'd1' } }))
      const p = d.actions.find((a) => 'persist' in a)
      const h = d.actions.find((a) => 'handOff' in a)
      return { d, facts: p !== undefined && 'persist' in p ? p.persist : local, pin: h !== undefined && 'handOff' in h ? h.handOff.caHash : undefined }
    }
    const first = run(EMPTY_FACTS, [entry('init', 'roles/ca', { clusterId: C1, caHash: h1 })])
    expect(first.pin).toBe(h1)
    expect(first.facts.role).toEqual({ role: 'agent', clusterId: C1, init: 'init', caHash: h1 })
    // The persist comes before the hand-off that uses the pin.
    expect(first.d.actions.findIndex((a) => 'persist' in a)).toBeLessThan(first.d.actions.findIndex((a) => 'handOff' in a))
    const later = run(first.facts, [entry('init', 'roles/ca', { clusterId: C1, caHash: h2 }, 2)])
    expect(later.pin).toBe(h1)
    expect(later.facts.role?.caHash).toBe(h1)
    // The pin stays when the entry is gone too.
    expect(run(first.facts, []).pin).toBe(h1)
  })

  it('with pinCa a joiner waits for the CA hash before its first hand-off, and a hash for another cluster does not count', () => {
    const entries = [
      ...nodes, ...CERTIFIED.entries,
      entry('init', 'cred/me', { kind: 'agent', to: sealKeyOf('me'), clusterId: C1, box: {} }),
      entry('init', 'roles/status', { role: 'init', phase: 'joined', clusterId: C1, address: '10.0.0.1' })
    ]
    const config = { ...BASE_CONFIG, pinCa: true }
    const d = (extra: StateEntry[]): ReturnType<typeof decide> => decide(snapshot({ config, members, entries: [...entries, ...extra], credential: { owner: 'init', digest: 'd1' } }))
    const waiting = d([entry('init', 'roles/ca', { clusterId: 'another', caHash: 'c'.repeat(64) }), entry('mallory', 'roles/ca', { clusterId: C1, caHash: 'e'.repeat(64) })])
    expect(waiting.actions.some((a) => 'handOff' in a)).toBe(false)
    expect(waiting.phase).toBe('installing')
    expect(waiting.reason).toMatch(/hash of its k3s CA/)
    const pinned = d([entry('init', 'roles/ca', { clusterId: C1, caHash: 'c'.repeat(64) })]).actions.find((a) => 'handOff' in a)
    expect(pinned !== undefined && 'handOff' in pinned ? pinned.handOff.caHash : undefined).toBe('c'.repeat(64))
  })

  it('the hand-off key holds what the credential carries: a new credential is handed off again', () => {
    const entries = [
      ...nodes, ...CERTIFIED.entries,
      entry('init', 'cred/me', { kind: 'agent', to: sealKeyOf('me'), clusterId: C1, box: {} }),
      entry('init', 'roles/status', { role: 'init', phase: 'joined', clusterId: C1, address: '10.0.0.1' })
    ]
    const keyOf = (d: ReturnType<typeof decide>): string | undefined => {
      const h = d.actions.find((a) => 'handOff' in a)
      return h !== undefined && 'handOff' in h ? h.planKey : undefined
    }
    const first = decide(snapshot({ members, entries, credential: { owner: 'init', digest: 'd1' } }))
    const persisted = first.actions.find((a) => 'persist' in a)
    const facts = persisted !== undefined && 'persist' in persisted ? persisted.persist : EMPTY_FACTS
    const k1 = keyOf(first) as string
    expect(k1).toBeDefined()
    const joined: LocalFacts = { ...facts, joined: { clusterId: C1, planKey: k1 } }
    expect(keyOf(decide(snapshot({ members, entries, local: joined, credential: { owner: 'init', digest: 'd1' } })))).toBeUndefined()
    const k2 = keyOf(decide(snapshot({ members, entries, local: joined, credential: { owner: 'init', digest: 'd2' } })))
    expect(k2).toBeDefined()
    expect(k2).not.toBe(k1)
  })
})

describe('a node advertising an unusable seal key', () => {
  it.each(LOW_ORDER_KEYS.map((key) => ({ key })))('cannot wedge the admission of HA servers (low-order key $key)', ({ key }) => {
    // Mallory declares role: master, so it has the first claim on the one HA slot left
    // after a; no box can be sealed to its key, so were its entry taken the init server
    // would retry mallory's credential for ever and never admit the honest server.
    const config = { ...BASE_CONFIG, haEnable: true, haMasterNodes: 2 }
    const me = sealKeysOf('me')
    let local: LocalFacts = { ...EMPTY_FACTS, cluster: { clusterId: C1, init: 'me', record: { ...RECORD, init: 'me' } }, role: { role: 'init', clusterId: C1, init: 'me' }, joined: { clusterId: C1, planKey: 'k' } }
    const random = seededRandom(7)
    // The init server has run cluster-init: it holds the secrets k3s runs with.
    let secrets: ClusterSecrets | undefined = generateClusterSecrets(random)
    const replica = new Map<string, StateEntry>()
    const put = (owner: string, key: string, value: unknown): void => {
      const id = `${owner}\u0000${key}`
      replica.set(id, { ...entry(owner, key, value, (replica.get(id)?.version ?? 0) + 1), writtenAt: 10_000 })
    }
    put('mallory', 'roles/node', { sealKey: key, role: 'master', eligible: true, k3s: true })
    put('a', 'roles/node', { sealKey: sealKeyOf('a'), role: 'auto', eligible: true, k3s: true })
    put('b', 'roles/node', { sealKey: sealKeyOf('b'), role: 'auto', eligible: true, k3s: true })
    const refused: string[] = []
    for (let round = 0; round < 6; round++) {
      const d = decide(snapshot({ local, config, sealKey: me.publicKey, hasSecrets: secrets !== undefined, members: alive('mallory', 'a', 'b'), entries: [...replica.values()] }))
      const r = applyDecisionNow(d, {
        persist: (facts) => { local = facts },
        secrets: () => secrets,
        generateSecrets: () => { secrets = generateClusterSecrets(random) },
        put: (k, v) => { put('me', k, v) },
        seal: (kind, held, publicKey) => sealCredential(kind, held, publicKey, random),
        handOff: () => {}
      })
      refused.push(...r.refused.map((x) => x.key))
      // Servers join as soon as admitted, so only mallory could hold the next one back.
      for (const e of replica.values()) {
        if (e.owner === 'me' && e.key.startsWith('cred/') && (e.value as { kind: string }).kind === 'server') put(e.key.slice(5), 'roles/status', { role: 'server', phase: 'joined', clusterId: C1 })
      }
    }
    const kinds = Object.fromEntries([...replica.values()].filter((e) => e.owner === 'me' && e.key.startsWith('cred/')).map((e) => [e.key.slice(5), (e.value as { kind: string }).kind]))
    expect(kinds).toEqual({ a: 'server', b: 'server' })
    expect(refused).toEqual([])
  })

  it.each([
    ['not base64', 'seal-a'],
    ['31 bytes', Buffer.alloc(31, 9).toString('base64')],
    ['a low-order point', LOW_ORDER_KEYS[2] as string]
  ])('is as if it had no roles/node entry: %s', (_, key) => {
    const view = indexEntries('me', 'site', [entry('x', 'roles/node', { sealKey: key, role: 'master', eligible: true, k3s: true }), entry('y', 'roles/node', { sealKey: sealKeyOf('y'), role: 'auto', eligible: true, k3s: true })])
    expect([...view.nodes.keys()]).toEqual(['y'])
  })
})

describe('decide', () => {
  it('admin kubeconfig gossiped to every token holder: the decision writes only roles/ and cred/ keys, and never a secret', () => {
    const site = new Site(['n1', 'n2', 'n3', 'n4'], { minimumNodes: 3, haEnable: true, haMasterNodes: 1 })
    site.run(60)
    const keys = new Set<string>()
    for (const n of site.nodes) for (const e of n.replica.values()) keys.add(e.key.replace(/^cred\/.*/, 'cred/<peer>'))
    expect([...keys].sort()).toEqual(['cred/<peer>', 'roles/cluster', 'roles/node', 'roles/proposal', 'roles/secrets', 'roles/status', 'roles/vote'])
    const text = JSON.stringify(site.nodes.map((n) => [...n.replica.values()]))
    expect(text.toLowerCase()).not.toMatch(/kubeconfig|client-key|token/)
    const creds = site.nodes[0]?.replica ?? new Map<string, StateEntry>()
    // The agents joined, so their credentials are collected (null); the server's holds its slot.
    const kinds = [...creds.values()].filter((e) => e.key.startsWith('cred/')).map((e) => (e.value as { kind: string } | null)?.kind ?? 'collected').sort()
    expect(kinds).toEqual(['collected', 'collected', 'server'])
  })

  it('below minimum_nodes: waiting, with the number of nodes still awaited', () => {
    const d = decide(snapshot({ config: { ...BASE_CONFIG, minimumNodes: 5 }, members: alive('a', 'b') }))
    expect(d.phase).toBe('waiting')
    expect(d.awaiting).toBe(2)
    expect(decide(snapshot({ config: { ...BASE_CONFIG, minimumNodes: 5 } })).phase).toBe('discovering')
  })

  it('persists before it publishes: the first action of a new promise is persist', () => {
    // The proposer is the preferred node; this node is a worker and never preferred.
    const d = decide(snapshot({
      config: { ...BASE_CONFIG, staticRole: 'worker' },
      members: alive('a'),
      entries: [entry('a', 'roles/node', { sealKey: sealKeyOf('a'), role: 'auto', eligible: true, k3s: true }), entry('a', 'roles/proposal', { ballot: { n: 3, by: 'a' }, candidate: null, committed: false })]
    }))
    const first = d.actions.findIndex((a) => 'persist' in a)
    const vote = d.actions.findIndex((a) => 'put' in a && a.put === 'roles/vote')
    expect(first).toBe(0)
    expect(vote).toBeGreaterThan(first)
    expect(d.term).toBe(3)
  })

  it.each([
    { name: 'a static none node takes no k3s role', role: 'none' as const, autoEnable: true, want: 'none' },
    { name: 'auto.enable false with an empty role means state and VPN only', role: 'auto' as const, autoEnable: false, want: 'none' }
  ])('$name', ({ role, autoEnable, want }) => {
    const d = decide(snapshot({
      config: { ...BASE_CONFIG, staticRole: role, autoEnable },
      entries: [...CERTIFIED.entries]
    }))
    expect(d.role).toBe(want)
    expect(d.phase).toBe('joined')
  })

  it('with a record, a node without a credential waits for it and never stands', () => {
    const d = decide(snapshot({ members: alive('init', 'a', 'b'), entries: [...CERTIFIED.entries] }))
    expect(d.phase).toBe('waiting')
    expect(d.leader).toBe('init')
    expect(d.actions.some((a) => 'put' in a && a.put === 'roles/proposal')).toBe(false)
  })

  it('a credential sealed to an old key is not taken as a role', () => {
    const d = decide(snapshot({
      entries: [...CERTIFIED.entries, entry('init', 'cred/me', { kind: 'agent', to: sealKeyOf('old'), clusterId: C1, box: {} })]
    }))
    expect(d.role).toBeUndefined()
  })

  it('an agent hands off once credential and server address are known, and not again after joining', () => {
    const entries = [
      ...CERTIFIED.entries,
      entry('init', 'cred/me', { kind: 'agent', to: sealKeyOf('me'), clusterId: C1, box: {} }),
      entry('init', 'roles/status', { role: 'init', phase: 'joined', clusterId: C1, address: '10.0.0.1' })
    ]
    const d = decide(snapshot({ entries, credential: { owner: 'init', digest: 'd1' } }))
    const hand = d.actions.find((a) => 'handOff' in a)
    expect(hand !== undefined && 'handOff' in hand ? hand.handOff : undefined).toEqual({ role: 'agent', clusterInit: false, clusterId: C1, initServer: 'init', serverAddress: '10.0.0.1', credential: 'd1' })
    const persisted = d.actions.find((a) => 'persist' in a)
    const facts = (persisted !== undefined && 'persist' in persisted ? persisted.persist : EMPTY_FACTS)
    const planKey = hand !== undefined && 'handOff' in hand ? hand.planKey : ''
    const after: LocalFacts = { ...facts, joined: { clusterId: C1, planKey } }
    const d2 = decide(snapshot({ entries, credential: { owner: 'init', digest: 'd1' }, local: after }))
    expect(d2.phase).toBe('joined')
    expect(d2.actions.some((a) => 'handOff' in a)).toBe(false)
  })

  it('a persisted role survives an empty view and a different record', () => {
    const local: LocalFacts = { ...EMPTY_FACTS, role: { role: 'agent', clusterId: C1, init: 'init' } }
    const other = { ...RECORD, clusterId: 'c2', init: 'x', ballot: { n: 0, by: 'x' } }
    const d = decide(snapshot({ local, entries: [entry('x', 'roles/cluster', other), ...CERTIFIED.entries] }))
    expect(d.role).toBe('agent')
    expect(d.clusterId).toBe(C1)
  })
})

describe('credentials collected once their recipient joined', () => {
  const agentCred = (to = sealKeyOf('k')): unknown => ({ kind: 'agent', to, clusterId: C1, box: {} })
  const joinedAs = (id: string, role = 'agent', clusterId = C1): StateEntry => entry(id, 'roles/status', { role, phase: 'joined', clusterId })

  it('collects an agent credential whose recipient joined, left or was removed, and never a server credential', () => {
    const entries = [
      entry('s', 'cred/a', agentCred()), joinedAs('a'),
      entry('s', 'cred/b', agentCred()), entry('b', 'roles/status', { role: 'agent', phase: 'installing', clusterId: C1 }),
      entry('s', 'cred/c', agentCred()), joinedAs('c', 'agent', 'other-cluster'),
      entry('s', 'cred/gone', agentCred()),
      entry('s', 'cred/srv', { kind: 'server', to: sealKeyOf('k'), clusterId: C1, box: {} }), joinedAs('srv', 'server'),
      entry('s', 'cred/done', null), joinedAs('done'),
      entry('t', 'cred/d', agentCred()), joinedAs('d')
    ]
    expect(collectableCredentials({ self: 's', clusterId: C1, entries, departed: new Set(['gone', 'srv']) })).toEqual(['a', 'gone'])
  })

  it('a joined node is sealed nothing again, not even to a new key; back to installing it gets a new credential', () => {
    const base = { self: 'init', networkId: 'site', record: RECORD, config: { haEnable: false, haMasterNodes: 0 }, selfJoined: true }
    const nodes = new Map([['a', nodeValue('auto', sealKeyOf('new'))], ['b', nodeValue()]])
    const joined = planCredentials({ ...base, nodes, members: alive('a', 'b'), entries: [entry('init', 'cred/a', agentCred(sealKeyOf('old'))), joinedAs('a'), joinedAs('b')] })
    expect(joined).toEqual([])
    const again = planCredentials({ ...base, nodes, members: alive('a', 'b'), entries: [entry('init', 'cred/a', null), entry('b', 'roles/status', { role: 'agent', phase: 'installing', clusterId: C1 })] })
    expect(again.map((g) => [g.recipient, g.kind])).toEqual(byPref(['a', 'b']).map((id) => [id, 'agent']))
  })

  it('a server writes null over the agent credentials it may collect, and keeps its server credentials', () => {
    const local: LocalFacts = { ...EMPTY_FACTS, role: { role: 'init', clusterId: C1, init: 'me' }, joined: { clusterId: C1, planKey: 'p' } }
    const d = decide(snapshot({
      local,
      hasSecrets: true,
      entries: [...CERTIFIED.entries, entry('me', 'cred/a', agentCred()), joinedAs('a'), entry('me', 'cred/b', { kind: 'server', to: sealKeyOf('k'), clusterId: C1, box: {} }), joinedAs('b', 'server')]
    }))
    const puts = d.actions.filter((a) => 'put' in a && a.put.startsWith('cred/'))
    expect(puts).toEqual([{ put: 'cred/a', value: null }])
  })

  it('a joined agent whose credential was collected stays joined and hands off nothing', () => {
    const local: LocalFacts = { ...EMPTY_FACTS, role: { role: 'agent', clusterId: C1, init: 'init' }, joined: { clusterId: C1, planKey: 'p' } }
    const d = decide(snapshot({ local, entries: [...CERTIFIED.entries, entry('init', 'cred/me', null), joinedAs('init', 'init')] }))
    expect(d.phase).toBe('joined')
    expect(d.reason).toBeUndefined()
    expect(d.actions.some((a) => 'handOff' in a)).toBe(false)
  })

  it('a node that lost roles.json after its credential was collected takes its role from its own status and reports installing', () => {
    const entries = [...CERTIFIED.entries, entry('init', 'cred/me', null), joinedAs('me'), joinedAs('init', 'init')]
    const d = decide(snapshot({ entries }))
    expect(d.role).toBe('agent')
    expect(d.phase).toBe('installing')
    expect(d.actions).toContainEqual({ put: 'roles/status', value: { role: 'agent', phase: 'installing', clusterId: C1 } })
    // Someone else's status naming this node is not its word.
    const forged = decide(snapshot({ entries: [...CERTIFIED.entries, entry('mallory', 'roles/status', { role: 'server', phase: 'joined', clusterId: C1 })] }))
    expect(forged.role).toBeUndefined()
  })

  it('a formed site: once every agent joined, the init server holds none of their credentials', () => {
    const site = new Site(['n1', 'n2', 'n3', 'n4'], { minimumNodes: 3 })
    site.run(60)
    const init = site.nodes.find((n) => n.facts.role?.role === 'init')
    expect(init).toBeDefined()
    const live = (n: NonNullable<typeof init>): number => [...n.replica.values()].filter((e) => e.owner === n.id && e.key.startsWith('cred/') && e.value !== null).length
    expect(live(init as NonNullable<typeof init>)).toBe(0)
    expect(site.nodes.every((n) => n.last?.phase === 'joined')).toBe(true)
  })
})

describe('config warnings', () => {
  const cfg = { minimumNodes: 3, staticRole: 'auto' as const, autoEnable: true, haEnable: false, haMasterNodes: 0 }
  it.each([
    { name: 'safe', over: {}, known: 5, want: [] },
    { name: 'minimum at most half of the nodes seen', over: {}, known: 6, want: ['at most half of the 6 nodes seen'] },
    { name: 'minimum 1', over: { minimumNodes: 1 }, known: 1, want: ['forms a cluster of its own'] },
    { name: 'master_nodes without HA', over: { haMasterNodes: 2 }, known: 3, want: ['p2p.auto.ha.enable is false'] },
    { name: 'auto disabled, empty role', over: { autoEnable: false }, known: 3, want: ['state and the VPN only'] }
  ])('$name', ({ over, known, want }) => {
    const out = configWarnings({ ...cfg, ...over }, known)
    expect(out).toHaveLength(want.length)
    want.forEach((w, i) => { expect(out[i]).toContain(w) })
  })
})

describe('json helpers', () => {
  it('compares JSON independent of key order', () => {
    expect(jsonEqual({ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1 })).toBe(true)
    expect(jsonEqual({ a: 1 }, { a: 1, b: 2 })).toBe(false)
    expect(jsonEqual([1], { 0: 1 })).toBe(false)
    expect(canonicalJson({ b: 1, a: [2] })).toBe('{"a":[2],"b":1}')
  })
})
