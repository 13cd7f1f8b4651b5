import { afterEach, describe, expect, it } from 'vitest'
import { Cluster, alivePeers, newToken, waitFor } from './harness.ts'

describe('p2p node', () => {
  let cluster: Cluster
  afterEach(async () => { await cluster.close() })

  it('two nodes admit each other and replicate a put', async () => {
    cluster = new Cluster()
    const token = newToken()
    const a = await cluster.node(token)
    const b = await cluster.node(token, { bootstrapPeers: [a.addresses()[0] as string] })
    await waitFor('mutual membership', () => alivePeers(a).includes(b.peerId) && alivePeers(b).includes(a.peerId))
    await a.state.put('hello', { n: 1 })
    await waitFor('b has the entry', () => b.state.get(a.peerId, 'hello') !== undefined)
    expect(b.state.get(a.peerId, 'hello')?.value).toEqual({ n: 1 })
    expect(a.status().admissionFailures).toBe(0)
  })
})
