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

describe('admission gate', () => {
  it('admits both sides when the proof passes on an open connection', async () => {
    const [a, b] = await peerIds(2) as [string, string]
    const key = new Uint8Array(randomBytes(32))
    const seenA: string[] = []; const seenB: string[] = []
    const gateA = gateOf(a, key, seenA); const gateB = gateOf(b, key, seenB)
    const status = { value: 'open' as Connection['status'] }
    const toA = connection(a, status, async () => {})
    const toB = connection(b, status, async (s) => { await gateB.handle(s, toA) })
    await gateA.outbound(toB)
    expect(gateA.admitted.has(b)).toBe(true)
    expect(gateB.admitted.has(a)).toBe(true)
    expect([seenA, seenB]).toEqual([[b], [a]])
  })

  it('a proof that completes after its connection closed admits nobody (a peer that stopped stays gone)', async () => {
    const [a, b] = await peerIds(2) as [string, string]
    const key = new Uint8Array(randomBytes(32))
    const seenA: string[] = []; const seenB: string[] = []
    const gateA = gateOf(a, key, seenA); const gateB = gateOf(b, key, seenB)
    // The connection closes while the proof is in flight: both sides see it closed by the time it passes.
    const status = { value: 'open' as Connection['status'] }
    const toA = connection(a, status, async () => {})
    const toB = connection(b, status, async (s) => { status.value = 'closed'; await gateB.handle(s, toA) })
    await gateA.outbound(toB)
    expect(gateA.admitted.has(b)).toBe(false)
    expect(gateB.admitted.has(a)).toBe(false)
    expect([seenA, seenB]).toEqual([[], []])
  })

  it('a proof that completes on a connection closed meanwhile still admits while another connection to the peer is open', async () => {
    const [a, b] = await peerIds(2) as [string, string]
    const key = new Uint8Array(randomBytes(32))
    const seenA: string[] = []; const seenB: string[] = []
    // Two connections between the pair (both dialled at once): the one that carried the proof closed, the other stays.
    const gateA = gateOf(a, key, seenA, () => 1); const gateB = gateOf(b, key, seenB, () => 1)
    const status = { value: 'open' as Connection['status'] }
    const toA = connection(a, status, async () => {})
    const toB = connection(b, status, async (s) => { status.value = 'closed'; await gateB.handle(s, toA) })
    await gateA.outbound(toB)
    expect(gateA.admitted.has(b)).toBe(true)
    expect(gateB.admitted.has(a)).toBe(true)
  })
})
