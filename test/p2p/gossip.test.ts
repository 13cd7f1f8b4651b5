import { describe, expect, it } from 'vitest'
import { ManualClock } from '../../util/clock.ts'
import { silentLogger } from '../../util/log.ts'
import { createGossip } from '../../p2p/gossip.ts'
import { encodeRumour, MAX_INCARNATION, type Rumour } from '../../p2p/membership.ts'
import type { StateStore } from '../../p2p/state/index.ts'
import { peerIds } from './fake-net.ts'

const topics = { state: 'state', members: 'members' }

describe('gossip', () => {
  const setup = async (): Promise<{ gossip: ReturnType<typeof createGossip>, rumours: Rumour[], errors: string[], reached: Array<ReadonlySet<string>>, sent: Array<[string, Uint8Array]>, admitted: Set<string>, ids: string[], applied: Uint8Array[] }> => {
    const ids = await peerIds(3)
    const rumours: Rumour[] = []
    const errors: string[] = []
    const reached: Array<ReadonlySet<string>> = []
    const sent: Array<[string, Uint8Array]> = []
    const applied: Uint8Array[] = []
    const admitted = new Set([ids[1] as string])
    const store = { apply: async (entries: Uint8Array[]) => { applied.push(...entries); return { applied: entries.length, rejected: {} } } } as unknown as StateStore
    const gossip = createGossip({
      self: ids[0] as string,
      clock: new ManualClock(5),
      log: silentLogger,
      network: { publish: async (topic, data) => { sent.push([topic, data]); return [...admitted] } },
      topics,
      store,
      admitted,
      heard: () => {},
      applyRumour: (r) => { rumours.push(r) },
      reached: (peers) => { reached.push(peers) },
      onProtocolError: (kind) => { errors.push(kind) }
    })
    return { gossip, rumours, errors, reached, sent, admitted, ids, applied }
  }

  it('takes rumours and deltas only from admitted peers, and counts the rest', async () => {
    const g = await setup()
    const [, friend, stranger] = g.ids as [string, string, string]
    const r: Rumour = { peer: stranger, state: 'suspect', incarnation: 7 }
    g.gossip.receive(topics.members, encodeRumour(r), stranger)
    g.gossip.receive(topics.state, new Uint8Array(3), stranger)
    expect(g.errors).toEqual(['gossip-not-admitted', 'gossip-not-admitted'])
    g.gossip.receive(topics.members, encodeRumour(r), friend)
    expect(g.rumours).toEqual([r])
    g.gossip.receive(topics.state, Uint8Array.of(1, 2), friend)
    await Promise.resolve()
    expect(g.applied).toEqual([Uint8Array.of(1, 2)])
    g.gossip.receive('another-topic', Uint8Array.of(1), stranger)
    expect(g.errors.length).toBe(2)
  })

  it('a rumour with an incarnation beyond the bound is malformed: counted, never applied', async () => {
    const g = await setup()
    const [self, friend] = g.ids as [string, string]
    g.gossip.receive(topics.members, encodeRumour({ peer: self, state: 'dead', incarnation: Number.MAX_SAFE_INTEGER }), friend)
    g.gossip.receive(topics.members, encodeRumour({ peer: self, state: 'dead', incarnation: MAX_INCARNATION }), friend)
    g.gossip.receive(topics.members, new TextEncoder().encode('["not-a-peer","dead",1]'), friend)
    expect(g.errors).toEqual(['malformed-frame', 'malformed-frame', 'malformed-frame'])
    expect(g.rumours).toEqual([])
  })

  it('a published delta reports who it reached, so anti-entropy can catch up the others', async () => {
    const g = await setup()
    g.gossip.publish(Uint8Array.of(9))
    await new Promise<void>((resolve) => { setImmediate(resolve) })
    expect(g.sent.map(([t]) => t)).toEqual([topics.state])
    expect(g.reached.map((s) => [...s])).toEqual([[g.ids[1]]])
    expect(await g.gossip.spread({ peer: g.ids[2] as string, state: 'dead', incarnation: 3 })).toBe(true)
  })
})
