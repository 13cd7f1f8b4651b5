import { describe, expect, it } from 'vitest'
import { AmbiguousNodeError, formatNodes, resolveNode, UnknownNodeError, type KnownNode } from '../../agent/nodes.ts'

const ID_OLD = '12D3KooWOldOldOldOldOldOldOldOldOldOldOldOldOldOldAAAA'
const ID_NEW = '12D3KooWNewNewNewNewNewNewNewNewNewNewNewNewNewNewBBBB'
const ID_B = '12D3KooWBeeBeeBeeBeeBeeBeeBeeBeeBeeBeeBeeBeeBeeBeeCCCC'
const nodes: KnownNode[] = [
  { peerId: ID_NEW, self: true, host: 'box-a', address: '10.88.0.7', liveness: 'self', lastSeen: 1000 },
  { peerId: ID_OLD, host: 'box-a', address: '10.88.0.5', liveness: 'dead', lastSeen: 10 },
  { peerId: ID_B, host: 'box-b', address: '10.88.0.6', liveness: 'alive', lastSeen: 990, role: 'agent' }
]

describe('resolveNode', () => {
  it.each([
    ['a whole peer id', ID_OLD, ID_OLD],
    ['an overlay address', '10.88.0.6', ID_B],
    ['a unique host name', 'box-b', ID_B],
    ['a peer id suffix of six characters or more', 'OldAAAA', ID_OLD],
    ['a peer id prefix', '12D3KooWBee', ID_B]
  ])('finds %s', (_what, query, want) => {
    expect(resolveNode(query, nodes).peerId).toBe(want)
  })

  it('a host name shared by a reinstalled box is ambiguous and names both identities', () => {
    const err = (() => { try { resolveNode('box-a', nodes) } catch (e) { return e } })() as AmbiguousNodeError
    expect(err.name).toBe('AmbiguousNodeError')
    expect(err.exitCode).toBe(2)
    expect(err.matches.sort()).toEqual([ID_NEW, ID_OLD].sort())
    expect(err.message).toContain('give the peer id')
  })

  it.each(['box-z', '10.88.0.99', 'AAA', '', '12D3KooW'])('%j is unknown', (query) => {
    const run = (): unknown => resolveNode(query, nodes)
    if (query === '12D3KooW') expect(run).toThrowError(AmbiguousNodeError)
    else expect(run).toThrowError(UnknownNodeError)
  })
})

describe('formatNodes', () => {
  it('one row per identity with host, overlay, role, state and last seen', () => {
    const text = formatNodes([...nodes, { peerId: 'gone', liveness: 'dead', lastSeen: 0, removed: { basis: 'init-server', by: [ID_NEW], at: 5 } }, { peerId: 'ghost', liveness: 'dead', lastSeen: 1, forgotten: true }], 1000 + 3 * 86_400_000)
    const lines = text.trimEnd().split('\n')
    expect(lines[0]).toMatch(/^PEER\s+HOST\s+OVERLAY\s+ROLE\s+STATE\s+LAST SEEN$/)
    expect(lines[1]).toMatch(new RegExp(`^${ID_NEW} \\(self\\)\\s+box-a\\s+10\\.88\\.0\\.7\\s+-\\s+self\\s+-$`))
    expect(lines[2]).toMatch(/box-a\s+10\.88\.0\.5\s+-\s+dead\s+3d ago$/)
    expect(lines[3]).toMatch(/agent\s+alive/)
    expect(lines[4]).toMatch(/removed \(init-server\)\s+never$/)
    expect(lines[5]).toMatch(/forgotten/)
  })
})

describe('status lists removed and forgotten nodes', () => {
  it('formatStatus shows them after the peers', async () => {
    const { formatStatus } = await import('../../agent/status.ts')
    const now = 10 * 86_400_000
    const text = formatStatus({
      peerId: ID_NEW, fingerprint: 'fp', networkId: '', startedAt: 0, now, phase: 'joined', warnings: [], addresses: [], peers: [],
      state: { entries: 0, bytes: 0 }, rejections: {}, admissionFailures: 0, timeline: [],
      removed: [{ peerId: ID_OLD, basis: 'init-server', by: [ID_B], at: now - 60_000 }],
      forgotten: [{ peerId: ID_B, lastSeen: now - 8 * 86_400_000 }]
    })
    expect(text).toMatch(/\nremoved \(1\)\n {2}12D3KooW…ldAAAA\s+init-server\s+60s ago\s+by 12D3KooW…eeCCCC\n/)
    expect(text).toMatch(/\nforgotten \(1\): dead longer than p2p.forget_after\n {2}12D3KooW…eeCCCC\s+last seen/)
  })
})
