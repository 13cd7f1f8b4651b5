import type { Libp2p } from 'libp2p'
import type { Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { DialNetwork } from './dialler.ts'
import type { GossipNetwork } from './gossip.ts'
import type { BeatStream, HeartbeatTransport } from './liveness.ts'
import type { RendezvousDht, RendezvousEvent } from './rendezvous.ts'
import { HEARTBEAT_V2_PROTOCOL_SUFFIX } from './heartbeat.ts'
import type { StackServices } from './stack.ts'
import { sendFrames } from './stream-io.ts'

/**
 * The services' ports over a real libp2p node: each service names the few network
 * operations it needs, and these adapters are the only place they meet libp2p.
 */

/** Connections to `peer`; none for a string that is not a peer id (a made-up id in a rumour must not throw here). */
function connectionsTo (node: Libp2p<StackServices>, peer: string): ReturnType<Libp2p['getConnections']> {
  try {
    return node.getConnections(peerIdFromString(peer))
  } catch {
    return []
  }
}

/** The dialler's network. */
export function libp2pDialNetwork (node: Libp2p<StackServices>): DialNetwork {
  return {
    connections: (peer) => connectionsTo(node, peer).length,
    openConnections: (peer) => connectionsTo(node, peer).filter((c) => c.status === 'open').length,
    dial: async (peer, addresses, signal) => {
      const id = peerIdFromString(peer)
      const mas = addresses.flatMap((a) => { try { return [multiaddr(a)] } catch { return [] } })
      if (mas.length > 0) await node.peerStore.merge(id, { multiaddrs: mas })
      await node.dial(id, { signal })
      return mas.length
    },
    dialAddress: async (addr, signal) => { await node.dial(multiaddr(addr), { signal }) },
    outbound: () => node.getConnections()
      .filter((c) => c.status === 'open' && c.direction === 'outbound')
      .map((c) => ({ peer: c.remotePeer.toString(), openedAt: c.timeline.open, close: () => { c.close().catch(() => { c.abort(new Error('pruned')) }) } }))
  }
}

/** A new stream of `protocol` (the first of them the peer speaks) to `peer` on an open connection, or undefined when there is none. */
export async function openStream (node: Libp2p<StackServices>, peer: string, protocol: string | string[], signal: AbortSignal): Promise<Stream | undefined> {
  const conn = connectionsTo(node, peer).find((c) => c.status === 'open')
  if (conn === undefined) return undefined
  return await conn.newStream(protocol, { signal })
}

/** Heartbeat streams over libp2p streams. */
export function libp2pHeartbeats (node: Libp2p<StackServices>, protocol: () => string | string[]): HeartbeatTransport {
  return {
    open: async (peer, signal) => {
      const stream = await openStream(node, peer, protocol(), signal)
      return stream === undefined ? undefined : beatStream(stream)
    }
  }
}

function beatStream (stream: Stream): BeatStream {
  return {
    members: !stream.protocol.endsWith(HEARTBEAT_V2_PROTOCOL_SUFFIX),
    get open () { return stream.status === 'open' },
    get busy () { return stream.writableNeedsDrain },
    send: async (body, signal) => { await sendFrames(stream, [body], signal) },
    end: async (body, signal) => {
      await sendFrames(stream, [body], signal).then(async () => { await stream.close({ signal }) }).catch(() => { stream.abort(new Error('heartbeat stream closed')) })
    },
    abort: (reason) => { stream.abort(reason) },
    onClose: (callback) => { stream.addEventListener('close', callback, { once: true }) }
  }
}

/** Gossip's publish over gossipsub. */
export function libp2pGossip (node: Libp2p<StackServices>): GossipNetwork {
  return {
    publish: async (topic, data) => {
      const { recipients } = await node.services.pubsub.publish(topic, data)
      return recipients.map((p) => p.toString())
    }
  }
}

/** Rendezvous over kad-dht, or undefined when the DHT is off. */
export function libp2pRendezvousDht (node: Libp2p<StackServices>): RendezvousDht | undefined {
  const dht = node.services.dht
  if (dht === undefined) return undefined
  return {
    provide: (cid, signal) => dht.provide(cid, { signal }),
    findProviders: async function * (cid, signal): AsyncGenerator<RendezvousEvent> {
      for await (const ev of dht.findProviders(cid, { signal })) {
        if (ev.name === 'PROVIDER') yield { name: 'PROVIDER', providers: ev.providers.map((p) => ({ id: p.id.toString(), addresses: p.multiaddrs.map((m) => m.toString()) })) }
        else yield { name: ev.name }
      }
    }
  }
}
