import { afterEach, describe, expect, it } from 'vitest'
import { Cluster, alivePeers, newToken } from './harness.ts'
import { waitFor } from '../helpers/wait.ts'
import { MEMBER_KEY } from '../../p2p/node.ts'

describe('revoking a node', () => {
  let cluster: Cluster
  afterEach(async () => { await cluster.close() })

  it('a revoked identity is disconnected, refused admission, out of the members and its entries gone', async () => {
    cluster = new Cluster()
    const token = newToken()
    const a = await cluster.node(token)
    const boot = [a.addresses()[0] as string]
    const b = await cluster.node(token, { bootstrapPeers: boot })
    const c = await cluster.node(token, { bootstrapPeers: boot })
    await waitFor('a sees b and c alive', () => (alivePeers(a).length === 2) || undefined)
    await waitFor('a holds b\'s presence', () => a.state.get(b.peerId, MEMBER_KEY))

    a.revoke(new Set([b.peerId, a.peerId]))
    expect([...a.revoked()]).toEqual([b.peerId])
    // Out of the members at once: quorum and the size warning count state.members().
    expect(a.state.members().map((m) => m.peerId)).toEqual([c.peerId])
    expect(a.state.departed?.().get(b.peerId)).toBe('removed')
    expect(a.status().peers.map((p) => p.id)).not.toContain(b.peerId)
    expect(a.status().departed).toContainEqual(expect.objectContaining({ id: b.peerId, reason: 'removed' }))
    expect(a.state.list().filter((e) => e.owner === b.peerId)).toEqual([])
    // b keeps dialling a (its bootstrap peer): each time a refuses it.
    await waitFor('a refused b at least once', () => (a.status().admissionFailuresByReason.revoked > 0) || undefined)
    await waitFor('no connection left between a and b', () => (a.status().peers.every((p) => p.id !== b.peerId)) && !b.status().peers.some((p) => p.id === a.peerId && p.admitted) ? true : undefined)
    // b's entries written afterwards never reach a's replica, even relayed by c.
    await b.state.put('after/removal', 1)
    await waitFor('c has b\'s new entry', () => c.state.get(b.peerId, 'after/removal'))
    await waitFor('c offered b\'s entries to a, which refused them', () => ((a.status().rejections.revoked ?? 0) > 0) || undefined)
    expect(a.state.get(b.peerId, 'after/removal')).toBeUndefined()
    // c stays a member of a.
    expect(alivePeers(a)).toEqual([c.peerId])
  }, 60_000)
})
