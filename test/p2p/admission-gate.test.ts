// The admission gate between two peers over an in-memory stream pair: `admitted` holds
// only peers whose proof passed on a connection that is still open.
import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { streamPair } from '@libp2p/utils'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Connection, Stream } from '@libp2p/interface'
import { createAdmissionGate, type AdmissionGate } from '../../p2p/admission-gate.ts'
import { systemClock } from '../../util/clock.ts'
import { cryptoRandom } from '../../util/random.ts'
import { silentLogger } from '../../util/log.ts'
import { peerIds } from './fake-net.ts'

const PROTOCOL = '/test/admit/1'

function gateOf (self: string, key: Uint8Array, admittedEvents: string[], openConnections = (): number => 0): AdmissionGate {
  const gate = createAdmissionGate({
    self, clock: systemClock, random: cryptoRandom, log: silentLogger, key, protocol: PROTOCOL, timeoutMs: 5_000, openConnections,
    onAdmitted: (peer) => { admittedEvents.push(peer) },
    onFailed: () => {}
  })
  gate.start(new AbortController().signal)
  return gate
}

/** A connection stub from `self` to `remote`; its streams reach `answer` on the other side. */
function connection (remote: string, status: { value: Connection['status'] }, answer: (stream: Stream) => Promise<void>): Connection {
  return {
    remotePeer: peerIdFromString(remote),
    direction: 'outbound',
    get status () { return status.value },
    newStream: async () => {
      const [outbound, inbound] = await streamPair()
      void answer(inbound as Stream)
      return outbound as Stream
    },
    abort: () => { status.value = 'closed' }
  } as unknown as Connection
}

/**
 * Two gates, `a` dialling `b`, over one connection; `closeFirst` closes it while the proof
 * is in flight, and `openConnections` is what each side counts besides.
 */
async function prove (options: { closeFirst: boolean, openConnections?: () => number }): Promise<{ a: string, b: string, aAdmitsB: boolean, bAdmitsA: boolean, seenA: string[], seenB: string[] }> {
  const [a, b] = await peerIds(2) as [string, string]
  const key = new Uint8Array(randomBytes(32))
  const seenA: string[] = []; const seenB: string[] = []
  const gateA = gateOf(a, key, seenA, options.openConnections); const gateB = gateOf(b, key, seenB, options.openConnections)
  const status = { value: 'open' as Connection['status'] }
  const toA = connection(a, status, async () => {})
  const toB = connection(b, status, async (s) => { if (options.closeFirst) status.value = 'closed'; await gateB.handle(s, toA) })
  await gateA.outbound(toB)
  return { a, b, aAdmitsB: gateA.admitted.has(b), bAdmitsA: gateB.admitted.has(a), seenA, seenB }
}

describe('admission gate', () => {
  it('admits both sides when the proof passes on an open connection', async () => {
    const r = await prove({ closeFirst: false })
    expect(r).toMatchObject({ aAdmitsB: true, bAdmitsA: true })
    expect([r.seenA, r.seenB]).toEqual([[r.b], [r.a]])
  })

  it('a proof that completes after its connection closed admits nobody (a peer that stopped stays gone)', async () => {
    expect(await prove({ closeFirst: true })).toMatchObject({ aAdmitsB: false, bAdmitsA: false, seenA: [], seenB: [] })
  })

  it('a proof that completes on a connection closed meanwhile still admits while another connection to the peer is open', async () => {
    // Two connections between the pair (both dialled at once): the one that carried the proof closed, the other stays.
    expect(await prove({ closeFirst: true, openConnections: () => 1 })).toMatchObject({ aAdmitsB: true, bAdmitsA: true })
  })
})
