import type { Connection, PeerId } from '@libp2p/interface'

/** Connection counters for status since start: opened, closed, and opened while another to the same peer was open. */
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

/** Counts the node's connections (a second one to the same peer as a double) and hands each to `opened` (the admission gate). */
export function trackConnections (source: ConnectionSource, opened: (conn: Connection) => void): ConnectionTracker {
  const stats: ConnectionStats = { opened: 0, closed: 0, doubles: 0 }
  source.addEventListener('connection:open', (evt) => {
    const conn = evt.detail
    stats.opened++
    if (source.getConnections(conn.remotePeer).some((c) => c !== conn && c.id !== conn.id && c.status === 'open')) stats.doubles++
    opened(conn)
  })
  source.addEventListener('connection:close', () => { stats.closed++ })
  return { stats: () => ({ ...stats }) }
}
