import { describe, expect, it } from 'vitest'
import { explain, type ReasonInput } from '../../agent/reason.ts'

const NOW = 1_000_000
const A = '12D3KooWAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1111'
const B = '12D3KooWBbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2222'
const C = '12D3KooWCccccccccccccccccccccccccccccccccccccc3333'
const INIT = '12D3KooWIiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii9999'

function input (over: Partial<ReasonInput>): ReasonInput {
  return {
    now: NOW,
    startedAt: NOW - 60_000,
    phase: 'waiting',
    minimumNodes: 3,
    peers: [],
    livenessSince: new Map(),
    viewChangedAt: NOW - 20_000,
    milestones: new Map(),
    discovery: { mdns: true, dht: true, bootstrapPeers: 0 },
    ...over
  }
}

const alive = (id: string): ReasonInput['peers'][number] => ({ id, liveness: 'alive', lastSeen: NOW - 500, connected: true })
const dead = (id: string, lastSeen: number): ReasonInput['peers'][number] => ({ id, liveness: 'dead', lastSeen, connected: false })

describe('explain', () => {
  it('says nothing once joined', () => {
    expect(explain(input({ phase: 'joined', role: 'agent' }))).toBeUndefined()
  })

  it('discovering: how it looks and what to check, since the start', () => {
    const r = explain(input({ phase: 'discovering', awaiting: 2, discovery: { mdns: true, dht: false, bootstrapPeers: 2 } }))
    expect(r?.code).toBe('discovering')
    expect(r?.text).toContain('mDNS, 2 bootstrap peers')
    expect(r?.text).toContain('(for 60 s)')
    expect(r?.hint).toContain('same network token')
    const alone = explain(input({ phase: 'discovering', peers: [dead(A, NOW - 30_000)] }))
    expect(alone?.text).toContain('none alive: 1 known node dead or unreachable (12D3KooW…aa1111) (for 20 s)')
  })

  it('waiting for more nodes: how many, the minimum, since the view last changed, what to do', () => {
    const r = explain(input({ awaiting: 1, peers: [alive(A)] }))
    expect(r?.code).toBe('more-nodes')
    expect(r?.text).toMatch(/^waiting for 1 more node: minimum_nodes is 3, 2 nodes alive \(this one included\) \(for 20 s\): boot more boxes/)
    expect(r?.since).toBe(NOW - 20_000)
  })

  it('partitioned from the quorum: known nodes it cannot reach, named, since they went', () => {
    const r = explain(input({ awaiting: 1, peers: [alive(A), dead(B, NOW - 50_000), dead(C, NOW - 45_000)], livenessSince: new Map([[B, NOW - 41_000], [C, NOW - 40_000]]) }))
    expect(r?.code).toBe('partitioned')
    expect(r?.text).toContain('partitioned from the quorum: reaches 2 of the 4 nodes it knows')
    expect(r?.text).toContain('12D3KooW…bb2222')
    expect(r?.text).toContain('(for 40 s)')
  })

  it('electing with a quorum in reach; partitioned when the reachable part is below it', () => {
    const ok = explain(input({ phase: 'electing', peers: [alive(A), alive(B)], leader: A, rolesReason: 'quorum 2 of 3 known nodes' }))
    expect(ok?.code).toBe('electing')
    expect(ok?.text).toContain('needs votes from 2 of 3 known nodes, 3 reachable, candidate 12D3KooW…aa1111')
    const cut = explain(input({ phase: 'electing', minimumNodes: 2, peers: [alive(A), dead(B, NOW - 9000), dead(C, NOW - 9000)] }))
    expect(cut?.code).toBe('partitioned')
    expect(cut?.text).toContain('the election needs votes from 3')
  })

  it('waiting on a dead init server: who, dead for how long (as this node saw it), what to do', () => {
    const r = explain(input({ phase: 'waiting', leader: INIT, clusterId: 'c1', peers: [alive(A), dead(INIT, NOW - 90_000)], livenessSince: new Map([[INIT, NOW - 41_000]]) }))
    expect(r?.code).toBe('init-server-down')
    expect(r?.peer).toBe(INIT)
    expect(r?.text).toMatch(/^waiting for a credential from 12D3KooW…ii9999 \(init server\), dead for 41 s: restart the init server/)
  })

  it('an init server this node never saw is named as such', () => {
    const r = explain(input({ phase: 'waiting', leader: INIT, clusterId: 'c1', peers: [alive(A)] }))
    expect(r?.code).toBe('init-server-down')
    expect(r?.text).toContain('not seen by this node in 60 s')
  })

  it('waiting on a live init server for the credential', () => {
    const r = explain(input({ phase: 'waiting', leader: INIT, clusterId: 'c1', peers: [alive(INIT)], milestones: new Map([['elected', NOW - 5000]]) }))
    expect(r?.code).toBe('credential')
    expect(r?.since).toBe(NOW - 5000)
    expect(r?.text).toContain('(init server, alive)')
    // Alive only by others' word, with no sign of life here for longer than the detector's dead-after: said so.
    const hearsay = explain(input({ phase: 'waiting', leader: INIT, clusterId: 'c1', deadAfterMs: 3000, peers: [{ id: INIT, liveness: 'alive', lastSeen: NOW - 44_000, connected: false }] }))
    expect(hearsay?.text).toContain("(init server, alive by its peers' word, no sign of life here for 44 s)")
  })

  it('installer failures: its own message and the next try', () => {
    const r = explain(input({ phase: 'installing', role: 'agent', leader: INIT, peers: [alive(INIT)], installer: { count: 3, message: 'HTTP 401 token not accepted', at: NOW - 7000, retryAt: NOW + 23_000 } }))
    expect(r?.code).toBe('installer-failed')
    expect(r?.text).toBe('the installer failed 3 times, last 7 s ago: HTTP 401 token not accepted; retried in 23 s')
  })

  it('installing: waits named after the roles controller, with the init server\'s liveness', () => {
    expect(explain(input({ phase: 'installing', role: 'agent', rolesReason: 'waiting for the overlay address' }))?.code).toBe('overlay')
    expect(explain(input({ phase: 'installing', role: 'agent', leader: INIT, peers: [alive(INIT)], rolesReason: 'waiting for the init server address' }))?.code).toBe('init-address')
    expect(explain(input({ phase: 'installing', role: 'agent', leader: INIT, peers: [alive(INIT)], rolesReason: 'waiting for the init server to publish the hash of its k3s CA (roles/ca), which the join token pins' }))?.code).toBe('init-ca')
    const down = explain(input({ phase: 'installing', role: 'agent', leader: INIT, peers: [dead(INIT, NOW - 5000)], rolesReason: 'waiting for a credential sealed to this node' }))
    expect(down?.code).toBe('init-server-down')
    expect(down?.hint).toContain('kairos-p2p cluster reset')
    expect(explain(input({ phase: 'installing', role: 'init', leader: INIT }))?.code).toBe('installing')
  })
})

describe('explain: who issues credentials', () => {
  it('with no server that can issue up: names the only one, since it went, and both ways back', () => {
    const r = explain(input({ phase: 'waiting', leader: INIT, peers: [dead(INIT, NOW - 90_000), alive(A)], livenessSince: new Map([[INIT, NOW - 80_000]]), issuing: { able: [INIT] } }))
    expect(r?.code).toBe('init-server-down')
    expect(r?.text).toContain('the only server that can issue credentials, 12D3KooW…ii9999 (init server), is gone (dead for 80 s)')
    expect(r?.peer).toBe(INIT)
    expect(r?.hint).toContain('boot the init server again')
    expect(r?.hint).toContain('new p2p.network_id')
    expect(r?.hint).toContain('kairos-p2p cluster reset')
    const all = explain(input({ phase: 'installing', role: 'agent', leader: INIT, rolesReason: 'waiting for a credential sealed to this node by a server', peers: [dead(INIT, NOW - 9000), dead(B, NOW - 5000)], issuing: { able: [INIT, B] } }))
    expect(all?.code).toBe('init-server-down')
    expect(all?.text).toContain('none of the 2 servers that can issue credentials is up')
  })

  it('with another server issuing in the init server\'s place: waits on that server, not on the dead init server', () => {
    const r = explain(input({ phase: 'waiting', leader: INIT, peers: [dead(INIT, NOW - 90_000), alive(B)], issuing: { issuer: B, able: [INIT, B] } }))
    expect(r?.code).toBe('credential')
    expect(r?.peer).toBe(B)
    expect(r?.text).toContain('from 12D3KooW…bb2222 (a server; the init server 12D3KooW…ii9999 is down')
    // The init server up: the usual wait on it.
    expect(explain(input({ phase: 'waiting', leader: INIT, peers: [alive(INIT)], issuing: { issuer: INIT, able: [INIT] } }))?.peer).toBe(INIT)
  })

  it('an init server whose secrets are lost says so and how to restore them', () => {
    const r = explain(input({ phase: 'installing', role: 'init', rolesReason: 'waiting for the cluster secrets: cluster-secrets.json is lost and its sealed copy (roles/secrets) does not open' }))
    expect(r?.code).toBe('secrets')
    expect(r?.hint).toContain('restore cluster-secrets.json')
  })
})
