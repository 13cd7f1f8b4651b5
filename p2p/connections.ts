import type { Connection, PeerId } from '@libp2p/interface'
import type { Logger } from '../util/log.ts'

/**
 * One connection per pair of nodes.
 *
 * Two nodes that find each other at once both dial, and each dial completes: the pair
 * holds two connections, and each costs its handshakes, identify both ways, the DHT's
 * ping, a token proof and gossipsub's streams. Waiting for the other side to dial first
 * (dialler.ts) avoids most of them, but not on a starved box, where a dial outlasts any
 * wait short enough not to slow formation. So a second connection is closed as soon as
 * it opens, by a rule both ends apply alike without a message: of two connections
 * between a pair, the one the lower peer id dialled stays. Both ends see who dialled a
 * connection (its direction), so they pick the same one, and it is never the one closed.
 * Two connections dialled by the same side are ordered only on that side (when each
 * opened there): the dialler closes the newer, the other end leaves it to the dialler.
 */

/** A connection as the rule sees it: who dialled it. */
export interface PairConnection {
  /** `outbound`: we dialled it. */
  direction: 'inbound' | 'outbound'
}

/** Whether the lower peer id of the pair dialled `c` (`self` is our id, `peer` the other end's). */
export function dialledByLower (self: string, peer: string, c: PairConnection): boolean {
  return (c.direction === 'outbound') === (self < peer)
}

/**
 * Whether `conn`, a connection to `peer` that just opened, is a second connection of the
 * pair to close at once, given the other connections to `peer` already open (`others`).
 * It is when one of them was dialled by the lower id and `conn` was not, or when we
 * dialled both `conn` and an open one. A connection that opened earlier is never closed
 * here: it may be admitted and carry streams (gossipsub keeps one outbound stream per peer
 * and does not open another when it closes), so a pair whose lower-id connection opened
 * second keeps both, as before.
 */
export function closeOnOpen (self: string, peer: string, conn: PairConnection, others: readonly PairConnection[]): boolean {
  if (others.length === 0) return false
  const byLower = dialledByLower(self, peer, conn)
  if (!byLower && others.some((o) => dialledByLower(self, peer, o))) return true
  return conn.direction === 'outbound' && others.some((o) => o.direction === 'outbound')
}

/** Connection counters for status: opened and closed since start, and second connections of a pair closed on opening (`closeOnOpen`). */
export interface ConnectionStats { opened: number, closed: number, doubles: number }

/** What `trackConnections` needs from libp2p: its connection events and the connections to a peer. */
export interface ConnectionSource {
  addEventListener: (type: 'connection:open' | 'connection:close', listener: (evt: CustomEvent<Connection>) => void) => void
  getConnections: (peer: PeerId) => Connection[]
}

/** The node's connections as `trackConnections` counts them. */
export interface ConnectionTracker {
  stats: () => ConnectionStats
}

/**
 * Counts the node's connections and closes a second connection of a pair as it opens
 * (`closeOnOpen`), before identify, the token proof or any stream is spent on it; every
 * other connection goes on to `opened` (the admission gate).
 */
export function trackConnections (source: ConnectionSource, self: string, log: Logger, opened: (conn: Connection) => void): ConnectionTracker {
  const stats: ConnectionStats = { opened: 0, closed: 0, doubles: 0 }
  source.addEventListener('connection:open', (evt) => {
    const conn = evt.detail
    stats.opened++
    const peer = conn.remotePeer.toString()
    // libp2p's connection manager may list the new connection already, or not yet.
    const others = source.getConnections(conn.remotePeer).filter((c) => c !== conn && c.id !== conn.id && c.status === 'open')
    if (conn.status === 'open' && closeOnOpen(self, peer, conn, others)) {
      stats.doubles++
      log.debug('closing a second connection of the pair', { peer, direction: conn.direction })
      conn.abort(new Error('a second connection to the same peer'))
      return
    }
    opened(conn)
  })
  source.addEventListener('connection:close', () => { stats.closed++ })
  return { stats: () => ({ ...stats }) }
}
