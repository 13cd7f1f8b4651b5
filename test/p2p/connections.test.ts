import { describe, expect, it } from 'vitest'
import type { Connection, PeerId } from '@libp2p/interface'
import { trackConnections, type ConnectionSource } from '../../p2p/connections.ts'

/** A libp2p stand-in: connection events fired by hand, and the connections it lists per peer. */
function source (): ConnectionSource & { open: (c: Connection) => void, close: (c: Connection) => void } {
  const listeners = new Map<string, Array<(evt: CustomEvent<Connection>) => void>>()
  const live = new Set<Connection>()
  const fire = (type: string, c: Connection): void => { for (const l of listeners.get(type) ?? []) l(new CustomEvent(type, { detail: c })) }
  return {
    addEventListener: (type, l) => { listeners.set(type, [...(listeners.get(type) ?? []), l]) },
    getConnections: (peer: PeerId) => [...live].filter((c) => c.remotePeer.equals(peer)),
    open: (c) => { live.add(c); fire('connection:open', c) },
    close: (c) => { live.delete(c); fire('connection:close', c) }
  }
}

const peer = (id: string): PeerId => ({ toString: () => id, equals: (o: PeerId) => o.toString() === id }) as unknown as PeerId
const conn = (id: string, to: string): Connection => ({ id, remotePeer: peer(to), status: 'open' }) as unknown as Connection

describe('trackConnections', () => {
  it('hands every connection to the gate, and counts one opened while another to the same peer is open as a double', () => {
    const s = source()
    const handed: string[] = []
    const t = trackConnections(s, (c) => { handed.push(c.id) })
    const a1 = conn('a1', 'A')
    s.open(a1)
    s.open(conn('b1', 'B'))
    s.open(conn('a2', 'A'))
    s.close(a1)
    s.open(conn('a3', 'A'))
    expect(handed).toEqual(['a1', 'b1', 'a2', 'a3'])
    expect(t.stats()).toEqual({ opened: 4, closed: 1, doubles: 2 })
  })
})
