import { describe, expect, it } from 'vitest'
import type { JsonValue, StateEntry } from '../../p2p/types.ts'
import { chooseIssuer, clusterServers, parseSecretsCopy } from '../../roles/issuers.ts'
import { preferenceKey } from '../../roles/election.ts'
import { SECRETS_LOST_REASON, decide } from '../../roles/plan.ts'
import { planCredentials } from '../../roles/credential-plan.ts'
import { credentialFor, issuersOf } from '../../roles/apply.ts'
import { memorySealKeys, openCredential, sealCredential } from '../../roles/credentials.ts'
import { EMPTY_FACTS, type MemberView } from '../../roles/types.ts'
import { seededRandom } from '../../util/random.ts'
import { Site, certifiedRecord } from './site.ts'

const cred = (owner: string, recipient: string, kind: 'server' | 'agent', clusterId = 'c1', version = 1): StateEntry =>
  ({ owner, key: `cred/${recipient}`, version, writtenAt: 0, value: { kind, to: `key-${recipient}`, clusterId, box: {} } })
const status = (owner: string, phase: 'installing' | 'joined', clusterId = 'c1'): StateEntry =>
  ({ owner, key: 'roles/status', version: 1, writtenAt: 0, value: { role: 'server', phase, clusterId } })
const copy = (owner: string, clusterId = 'c1'): StateEntry =>
  ({ owner, key: 'roles/secrets', version: 1, writtenAt: 0, value: { to: `key-${owner}`, clusterId, box: {} } })
const alive = (...ids: string[]): MemberView[] => ids.map((peerId) => ({ peerId, liveness: 'alive', lastSeen: 0 }))
const dead = (...ids: string[]): MemberView[] => ids.map((peerId) => ({ peerId, liveness: 'dead', lastSeen: 0 }))

describe('clusterServers', () => {
  it('is the init server and whoever a server sealed the server credential to, of this cluster only', () => {
    const entries = [
      cred('init', 's1', 'server'),
      cred('s1', 's2', 'server'), // made by a server that the init server made
      cred('init', 'a1', 'agent'),
      cred('mallory', 'mallory2', 'server'), // a member that is no server names no server
      cred('mallory', 'mallory', 'server'),
      cred('init', 'old', 'server', 'c0') // another cluster's
    ]
    expect([...clusterServers('c1', 'init', entries)].sort()).toEqual(['init', 's1', 's2'])
    expect([...clusterServers('c1', 'init', [])]).toEqual(['init'])
  })
})

describe('chooseIssuer', () => {
  const servers = new Set(['init', 's1', 's2', 's3'])
  const entries = [status('s1', 'joined'), copy('s1'), status('s2', 'joined'), copy('s2'), status('s3', 'installing'), copy('s3')]
  const [first, second] = ['s1', 's2'].sort((a, b) => preferenceKey(a, 'net') < preferenceKey(b, 'net') ? -1 : 1) as [string, string]
  const choose = (self: string, members: MemberView[], es = entries): ReturnType<typeof chooseIssuer> =>
    chooseIssuer({ self, networkId: 'net', clusterId: 'c1', init: 'init', servers, members, entries: es })

  it('is the init server while it is up, whoever asks', () => {
    expect(choose('a1', alive('init', 's1', 's2')).issuer).toBe('init')
    expect(choose('init', alive('s1')).issuer).toBe('init')
    expect(choose('s1', [{ peerId: 'init', liveness: 'suspect', lastSeen: 0 }]).issuer).toBe('init')
  })

  it('is the first live server in preference order that joined and holds the secrets once the init server is down: the same for every node', () => {
    expect(choose('a1', [...dead('init'), ...alive('s1', 's2', 's3')])).toEqual({ issuer: first, able: ['init', first, second] })
    expect(choose('s1', [...dead('init'), ...alive('s2', 's3')]).issuer).toBe(first)
    expect(choose('s2', [...dead('init'), ...alive('s1', 's3')]).issuer).toBe(first)
    expect(choose('a1', [...dead('init', first), ...alive(second)]).issuer).toBe(second)
    // A server that has not joined, or published no sealed copy, does not issue.
    expect(choose('a1', [...dead('init', 's1', 's2'), ...alive('s3')]).issuer).toBeUndefined()
    expect(choose('a1', [...dead('init'), ...alive('s1', 's2')], [status('s1', 'joined'), status('s2', 'joined')])).toEqual({ issuer: undefined, able: ['init'] })
    // Entries of a node that is no server count for nothing.
    expect(chooseIssuer({ self: 'a1', networkId: 'net', clusterId: 'c1', init: 'init', servers, members: [...dead('init'), ...alive('m')], entries: [status('m', 'joined'), copy('m')] }).issuer).toBeUndefined()
  })

  it('reads only well-formed sealed copies', () => {
    expect(parseSecretsCopy({ to: 'k', clusterId: 'c1', box: {} })).toEqual({ to: 'k', clusterId: 'c1', box: {} })
    for (const bad of [null, [], 'x', { to: 1, clusterId: 'c1', box: {} }, { to: 'k', clusterId: 'c1' }]) expect(parseSecretsCopy(bad)).toBeUndefined()
  })
})

describe('credential issuing by any server (Site)', () => {
  const haSite = (): Site => {
    const site = new Site(['n1', 'n2', 'n3', 'n4', 'n5'], { minimumNodes: 3, haEnable: true, haMasterNodes: 2 })
    site.down.add('n5')
    site.run(200)
    return site
  }
  const initOf = (site: Site): string => site.nodes.find((n) => n.facts.role?.role === 'init')?.id ?? ''

  it('an HA site whose init server is gone still admits a new node, through another server, with the same tokens', () => {
    const site = haSite()
    const init = initOf(site)
    const roles = site.nodes.filter((n) => n.id !== 'n5').map((n) => n.facts.role?.role).sort()
    expect(roles).toEqual(['agent', 'init', 'server', 'server'])
    // Every server keeps the secrets, and a sealed copy of them for itself.
    for (const n of site.nodes.filter((x) => x.facts.role?.role === 'server')) {
      expect(site.secretsOf(n)).toEqual(site.node(init).secrets)
      expect(parseSecretsCopy(n.replica.get(`${n.id}\u0000roles/secrets`)?.value)?.to).toBe(n.keys.publicKey)
    }
    site.down.add(init)
    site.down.delete('n5')
    site.run(100)
    const n5 = site.node('n5')
    expect(n5.facts.role?.role).toBe('agent')
    expect(n5.last?.phase).toBe('joined')
    const sealer = n5.opened?.owner ?? ''
    expect(sealer).not.toBe(init)
    expect(site.node(sealer).facts.role?.role).toBe('server')
    expect(n5.opened?.token).toBe(site.node(init).secrets?.agentToken)
    // Joined, its credential is collected: the sealer wrote the deletion marker over it.
    expect(site.node(sealer).replica.get(`${sealer}\u0000cred/n5`)?.value).toBeNull()
    // Exactly one server sealed it: the chosen one.
    expect(site.nodes.filter((n) => n.replica.has(`${n.id}\u0000cred/n5`)).map((n) => n.id)).toEqual([sealer])

    // The init server comes back: it seals nothing twice.
    site.down.delete(init)
    site.run(50)
    expect(site.node(init).replica.has(`${init}\u0000cred/n5`)).toBe(false)
    expect(site.inits()).toEqual([init])
  })

  it('without HA, a new node waits and names the init server as the only one that can issue', () => {
    const site = new Site(['n1', 'n2', 'n3', 'n4'], { minimumNodes: 3 })
    site.down.add('n4')
    site.run(200)
    const init = initOf(site)
    site.down.add(init)
    site.down.delete('n4')
    site.run(50)
    const d = site.node('n4').last
    expect(d?.phase).toBe('waiting')
    expect(d?.issuing).toEqual({ able: [init] })
    expect(d?.reason).toContain('the only server that can issue credentials')
    site.down.delete(init)
    site.run(50)
    expect(site.node('n4').last?.phase).toBe('joined')
  })

  it('a credential from a member that is no server is never taken, however it is worded', () => {
    const keys = memorySealKeys(seededRandom(9))
    const random = seededRandom(10)
    const evil = { serverToken: 'e'.repeat(64), agentToken: 'f'.repeat(64) }
    const { record, entries } = certifiedRecord('init', ['init', 'v1', 'v2'])
    const box = sealCredential('server', evil, keys.publicKey, random) as unknown as JsonValue
    const forged: StateEntry[] = [
      { owner: 'mallory', key: 'cred/me', version: 1, writtenAt: 0, value: { kind: 'server', to: keys.publicKey, clusterId: record.clusterId, box } },
      // Mallory names itself a server: only a server's grant makes one.
      { owner: 'mallory', key: 'cred/mallory', version: 1, writtenAt: 0, value: { kind: 'server', to: 'x', clusterId: record.clusterId, box } },
      { owner: 'mallory', key: 'roles/status', version: 1, writtenAt: 0, value: { role: 'server', phase: 'joined', clusterId: record.clusterId } },
      { owner: 'mallory', key: 'roles/secrets', version: 1, writtenAt: 0, value: { to: 'x', clusterId: record.clusterId, box } }
    ]
    const all = [...entries, ...forged]
    const facts = { ...EMPTY_FACTS, cluster: { clusterId: record.clusterId, init: 'init' } }
    expect(credentialFor({ self: 'me', sealKey: keys.publicKey, entries: all, issuers: issuersOf(facts, all), held: undefined, open: (b) => openCredential(keys, b) })).toBeUndefined()
    const d = decide({
      self: 'me', now: 1, networkId: 'site', config: { staticRole: 'auto', autoEnable: true, minimumNodes: 3, haEnable: true, haMasterNodes: 2, settleMs: 0, termTimeoutMs: 1000 },
      members: [...dead('init'), ...alive('mallory', 'v1', 'v2')], entries: all, local: facts, viewSince: 0, sealKey: keys.publicKey, hasSecrets: false
    })
    expect(d.phase).toBe('waiting')
    expect(d.role).toBeUndefined()
    expect(d.issuing).toEqual({ able: ['init'] })
  })
})

describe('a server issuing in the init server\'s place', () => {
  const nodes = new Map([
    ['init', { sealKey: 'key-init', role: 'auto' as const, eligible: true, k3s: true }],
    ['s1', { sealKey: 'key-s1', role: 'auto' as const, eligible: true, k3s: true }],
    ['x', { sealKey: 'key-x', role: 'auto' as const, eligible: true, k3s: true }],
    ['y', { sealKey: 'key-y-new', role: 'master' as const, eligible: true, k3s: true }]
  ])
  const plan = (grantServers: boolean): ReturnType<typeof planCredentials> => planCredentials({
    self: 's1', networkId: 'net', record: { clusterId: 'c1' }, config: { haEnable: true, haMasterNodes: 3 }, now: 1, nodes,
    members: alive('x', 'y'), entries: [cred('init', 's1', 'server'), cred('init', 'y', 'server'), status('s1', 'joined'), status('y', 'joined')],
    selfJoined: true, servers: new Set(['init', 's1', 'y']), grantServers
  })

  it('seals agent credentials only, even with free server slots, and re-seals no server credential: two sides of a partition never fill a slot twice', () => {
    expect(plan(false)).toEqual([{ recipient: 'x', kind: 'agent', publicKey: 'key-x' }])
    // The init server, with the same view, admits x as the next server and re-seals y's.
    expect(plan(true)).toEqual([{ recipient: 'y', kind: 'server', publicKey: 'key-y-new' }, { recipient: 'x', kind: 'server', publicKey: 'key-x' }])
  })

  it('a server credential holds its slot although another server later sealed the same node an agent credential to a new key', () => {
    // y got the server token from the init server, then re-keyed; s1, issuing while it
    // held the init server down, sealed y an agent credential to the new key. The init
    // server still counts y as a server: no third server with two slots, and y's server
    // credential is sealed again to its new key.
    const entries = [
      cred('init', 's1', 'server'), cred('init', 'y', 'server'), status('s1', 'joined'), status('y', 'joined'),
      { owner: 's1', key: 'cred/y', version: 1, writtenAt: 0, value: { kind: 'agent', to: 'key-y-new', clusterId: 'c1', box: {} } }
    ]
    const grants = planCredentials({
      self: 'init', networkId: 'net', record: { clusterId: 'c1' }, config: { haEnable: true, haMasterNodes: 2 }, now: 1, nodes,
      members: alive('s1', 'x', 'y'), entries, selfJoined: true, servers: new Set(['init', 's1', 'y'])
    })
    expect(grants).toEqual([{ recipient: 'y', kind: 'server', publicKey: 'key-y-new' }, { recipient: 'x', kind: 'agent', publicKey: 'key-x' }])
  })

  it('a joiner with a role opens only the credential of its kind', () => {
    const keys = memorySealKeys(seededRandom(11))
    const random = seededRandom(12)
    const secrets = { serverToken: 'a'.repeat(64), agentToken: 'b'.repeat(64) }
    const entry = (owner: string, kind: 'server' | 'agent'): StateEntry =>
      ({ owner, key: 'cred/me', version: 1, writtenAt: 0, value: { kind, to: keys.publicKey, clusterId: 'c1', box: sealCredential(kind, secrets, keys.publicKey, random) as unknown as JsonValue } })
    const entries = [entry('init', 'server'), entry('s1', 'agent'), cred('init', 's1', 'server')]
    const open = (b: JsonValue): ReturnType<typeof openCredential> => openCredential(keys, b)
    const asAgent = issuersOf({ cluster: { clusterId: 'c1', init: 'init' }, role: { role: 'agent', clusterId: 'c1', init: 'init' } }, entries)
    expect(credentialFor({ self: 'me', sealKey: keys.publicKey, entries, issuers: asAgent, held: undefined, open })).toMatchObject({ role: 'agent', owner: 's1' })
    const fresh = issuersOf({ cluster: { clusterId: 'c1', init: 'init' }, role: null }, entries)
    expect(credentialFor({ self: 'me', sealKey: keys.publicKey, entries, issuers: fresh, held: undefined, open })).toMatchObject({ role: 'server', owner: 'init' })
  })
})

describe('the cluster secrets are made once', () => {
  const { record, entries } = certifiedRecord('init', ['init', 'v1', 'v2'])
  const base = {
    self: 'init', now: 1, networkId: 'site', config: { staticRole: 'auto' as const, autoEnable: true, minimumNodes: 3, haEnable: false, haMasterNodes: 0, settleMs: 0, termTimeoutMs: 1000 },
    members: alive('v1', 'v2'), viewSince: 0, sealKey: 'key-init', hasSecrets: false
  }
  const local = { ...EMPTY_FACTS, cluster: { clusterId: record.clusterId, init: 'init', record }, role: { role: 'init' as const, clusterId: record.clusterId, init: 'init' } }
  const generates = (d: ReturnType<typeof decide>): boolean => d.actions.some((a) => 'generateSecrets' in a)

  it('by a fresh init server, which then seals a copy to its own key', () => {
    const d = decide({ ...base, entries, local })
    expect(generates(d)).toBe(true)
    expect(d.actions.findIndex((a) => 'generateSecrets' in a)).toBeLessThan(d.actions.findIndex((a) => 'sealSecrets' in a))
  })

  it('never again once anything shows they were made: the node waits for them instead', () => {
    const shows: Array<[string, Parameters<typeof decide>[0]]> = [
      ['its sealed copy', { ...base, entries: [...entries, copy('init', record.clusterId)], local }],
      ['a credential it sealed', { ...base, entries: [...entries, cred('init', 'v1', 'agent', record.clusterId)], local }],
      ['a finished hand-off', { ...base, entries, local: { ...local, joined: { clusterId: record.clusterId, planKey: 'k' } } }]
    ]
    for (const [what, s] of shows) {
      const d = decide(s)
      expect(generates(d), what).toBe(false)
      expect(d.actions.some((a) => 'sealCredential' in a || 'sealSecrets' in a || 'handOff' in a), what).toBe(false)
      expect(d.reason, what).toBe(SECRETS_LOST_REASON)
    }
  })
})
