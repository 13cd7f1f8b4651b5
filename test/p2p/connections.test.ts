import { describe, expect, it } from 'vitest'
import type { Connection, PeerId } from '@libp2p/interface'
import { closeOnOpen, dialledByLower, trackConnections, type PairConnection } from '../../p2p/connections.ts'
import { silentLogger } from '../../util/log.ts'

const LOW = '12D3KooWAAAA'
const HIGH = '12D3KooWZZZZ'
const out: PairConnection = { direction: 'outbound' }
const inb: PairConnection = { direction: 'inbound' }

describe('one connection per pair', () => {
  it('both ends agree on who dialled a connection', () => {
    // LOW dialled it: outbound at LOW, inbound at HIGH.
    expect(dialledByLower(LOW, HIGH, out)).toBe(true)
    expect(dialledByLower(HIGH, LOW, inb)).toBe(true)
    // HIGH dialled it.
    expect(dialledByLower(LOW, HIGH, inb)).toBe(false)
    expect(dialledByLower(HIGH, LOW, out)).toBe(false)
  })

  it.each([
    // [who we are, the new connection, the ones already open, close the new one?]
    ['the first connection of a pair stays', LOW, out, [], false],
    ['the first connection of a pair stays (higher id)', HIGH, out, [], false],
    ['at the higher id: its own dial opens after the lower id\'s', HIGH, out, [inb], true],
    ['at the lower id: the higher id\'s dial opens after its own', LOW, inb, [out], true],
    ['at the lower id: its own dial opens after the higher id\'s (kept; the older is not closed)', LOW, out, [inb], false],
    ['at the higher id: the lower id\'s dial opens after its own (kept)', HIGH, inb, [out], false],
    ['we dialled both: the newer goes', LOW, out, [out], true],
    ['we dialled both, higher id: the newer goes', HIGH, out, [out], true],
    ['the peer dialled both: its to close, not ours', LOW, inb, [inb], false],
    ['the lower peer dialled both: its to close, not ours', HIGH, inb, [inb], false]
  ] as Array<[string, string, PairConnection, PairConnection[], boolean]>)('%s', (_name, self, conn, others, close) => {
    const peer = self === LOW ? HIGH : LOW
    expect(closeOnOpen(self, peer, conn, others)).toBe(close)
  })

  it('never closes the lower id\'s connection of a pair, at either end, in any order of opening', () => {
    // Two connections: A dialled by LOW, B dialled by HIGH. Each end sees them open in either order.
    const atLow = { A: out, B: inb }
    const atHigh = { A: inb, B: out }
    for (const [self, peer, view] of [[LOW, HIGH, atLow], [HIGH, LOW, atHigh]] as const) {
      for (const [first, second] of [['A', 'B'], ['B', 'A']] as const) {
        const closed = closeOnOpen(self, peer, view[second], [view[first]]) ? second : undefined
        expect(closed).not.toBe('A')
      }
    }
  })
})

/** A connection source that replays opens like libp2p: the connection manager lists a connection once its open event went by. */
class FakeSource {
  readonly listeners = new Map<string, Array<(evt: CustomEvent<Connection>) => void>>()
  readonly byPeer = new Map<string, Connection[]>()
  addEventListener = (type: string, l: (evt: CustomEvent<Connection>) => void): void => { this.listeners.set(type, [...(this.listeners.get(type) ?? []), l]) }
  getConnections = (peer: PeerId): Connection[] => this.byPeer.get(peer.toString()) ?? []
  open (peer: string, direction: 'inbound' | 'outbound', id: string): Connection & { aborted: boolean } {
    const state = { id, direction, status: 'open', aborted: false, remotePeer: { toString: () => peer } }
    const conn = Object.assign(state, { abort: () => { state.aborted = true; state.status = 'closed' } }) as unknown as Connection & { aborted: boolean }
    for (const l of this.listeners.get('connection:open') ?? []) l(new CustomEvent('connection:open', { detail: conn }))
    if (conn.status === 'open') this.byPeer.set(peer, [...(this.byPeer.get(peer) ?? []), conn])
    if (conn.aborted) for (const l of this.listeners.get('connection:close') ?? []) l(new CustomEvent('connection:close', { detail: conn }))
    return conn
  }
}

describe('trackConnections', () => {
  it('closes the higher id\'s second connection before the gate sees it, and counts', () => {
    const source = new FakeSource()
    const gated: string[] = []
    const tracker = trackConnections(source, HIGH, silentLogger, (c) => { gated.push(c.id) })
    const keep = source.open(LOW, 'inbound', 'c1')
    const double = source.open(LOW, 'outbound', 'c2')
    expect(keep.aborted).toBe(false)
    expect(double.aborted).toBe(true)
    expect(gated).toEqual(['c1'])
    expect(tracker.stats()).toEqual({ opened: 2, closed: 1, doubles: 1 })
  })

  it('keeps a connection to another peer, and the lower id\'s dial that opens second', () => {
    const source = new FakeSource()
    const gated: string[] = []
    const tracker = trackConnections(source, LOW, silentLogger, (c) => { gated.push(c.id) })
    source.open(HIGH, 'inbound', 'c1')
    source.open('12D3KooWMMMM', 'outbound', 'c2')
    source.open(HIGH, 'outbound', 'c3')
    expect(gated).toEqual(['c1', 'c2', 'c3'])
    expect(tracker.stats()).toEqual({ opened: 3, closed: 0, doubles: 0 })
  })
})
