import { afterEach, describe, expect, it } from 'vitest'
import { Cluster, alivePeers, newToken } from './harness.ts'
import { waitFor } from '../helpers/wait.ts'

describe('two token generations on one site (a rotation\'s grace)', () => {
  let cluster: Cluster
  afterEach(async () => { await cluster.close() })

  it('a node on the new token with the previous one honoured admits nodes of either generation and shares state with both', async () => {
    cluster = new Cluster()
    const [oldToken, newTok] = [newToken(), newToken()]
    const rotated = await cluster.node(newTok, {}, { previousToken: { token: oldToken, until: Date.now() + 600_000 } })
    const boot = [rotated.addresses()[0] as string]
    // A node that was down during the rotation: it holds the previous token only.
    const lagging = await cluster.node(oldToken, { bootstrapPeers: boot })
    // A box booted with the new token.
    const fresh = await cluster.node(newTok, { bootstrapPeers: boot })
    await waitFor('the rotated node admits both', () => alivePeers(rotated).length === 2 || undefined)
    // Old-sealed state reaches the rotated node; new-sealed state reaches the new box.
    await lagging.state.put('test/old', 1)
    await rotated.state.put('test/new', 2)
    await waitFor('the rotated node holds the lagging node\'s entry', () => rotated.state.get(lagging.peerId, 'test/old'))
    await waitFor('the new box holds the rotated node\'s entry', () => fresh.state.get(rotated.peerId, 'test/new'))
    // The lagging node cannot read what the new key seals.
    expect(lagging.state.get(rotated.peerId, 'test/new')).toBeUndefined()
  }, 60_000)

  it('the rotated node dials a node of the previous generation (pnet falls back) and admits it', async () => {
    cluster = new Cluster()
    const [oldToken, newTok] = [newToken(), newToken()]
    const lagging = await cluster.node(oldToken)
    const rotated = await cluster.node(newTok, { bootstrapPeers: [lagging.addresses()[0] as string] }, { previousToken: { token: oldToken, until: Date.now() + 600_000 } })
    await waitFor('the lagging node is admitted', () => alivePeers(rotated).includes(lagging.peerId) || undefined)
  }, 60_000)

  it('after the grace the previous token admits nothing', async () => {
    cluster = new Cluster()
    const [oldToken, newTok] = [newToken(), newToken()]
    const rotated = await cluster.node(newTok, {}, { previousToken: { token: oldToken, until: Date.now() - 1 } })
    const lagging = await cluster.node(oldToken, { bootstrapPeers: [rotated.addresses()[0] as string] })
    await expect(lagging.dial(rotated.addresses()[0] as string)).rejects.toMatchObject({ name: 'DialError' })
    expect(alivePeers(rotated)).toEqual([])
    expect(alivePeers(lagging)).toEqual([])
  }, 60_000)
})
