import { createLibp2p, type Libp2p, type Libp2pOptions } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { identify, type Identify } from '@libp2p/identify'
import { ping, type Ping } from '@libp2p/ping'
import { kadDHT, passthroughMapper, type KadDHT } from '@libp2p/kad-dht'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { KEEP_ALIVE, type PeerId, type PeerUpdate, type PrivateKey } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { DerivedKeys } from '../token/index.ts'
import { loadPreSharedKey } from './pnet-cipher.ts'
import { rotatingPreSharedKey } from './pnet-protector.ts'

/**
 * The libp2p node every agent runs, in one place: the agent (`node.ts`) adds its own
 * protocols on top, and the stack-floor benchmark runs it bare, so what the floor
 * measures is exactly what an agent carries.
 */

/** Inbound connections allowed to be mid-handshake at once (libp2p's default of 10 is too low for a site booting together). @default 64 */
export const DEFAULT_MAX_PENDING_INBOUND = 64
/** Inbound connections accepted per second from one host (libp2p's default is 5). @default 100 */
export const DEFAULT_INBOUND_PER_HOST_PER_SECOND = 100

/**
 * Gossipsub's mesh degrees, lower than its defaults (D 6, Dlo 4, Dhi 12, Dlazy 6),
 * which are made for an open network where a mesh peer may be hostile or gone. Here
 * every peer passed admission, and what a message costs is the number of copies: a
 * node forwards each message once to every mesh peer but the one it came from, and
 * peers graft each other, so a node's mesh grows past D up to Dhi, and each message
 * arrived about as many times as that (3.6 copies at D 4, Dhi 8; docs/decisions.md,
 * P2P-19, P2P-32). Dhi 5 prunes a mesh back to 3 once it passes 5; Dlo 2 still keeps
 * two paths; gossip (IHAVE/IWANT to Dlazy others) and anti-entropy repair what a lost
 * copy misses. A node's own messages still go to every connected subscriber (flood
 * publish, gossipsub's default): a forming site publishes before its mesh exists, and
 * without it elections in the lab were slower. IDONTWANT (gossipsub v1.2) stays at its
 * default of messages from 512 bytes: it is one more frame to each mesh peer, about
 * what the copy it saves costs for an entry of a few hundred bytes.
 */
export const GOSSIP_MESH = { D: 3, Dlo: 2, Dhi: 5, Dscore: 1, Dout: 1, Dlazy: 3 } as const

/** Parts of the libp2p configuration tests may replace (for example in-memory transports or no discovery). */
export type Libp2pOverrides = Partial<Pick<Libp2pOptions, 'transports' | 'peerDiscovery' | 'connectionGater' | 'connectionManager'>>

export type StackServices = { identify: Identify, ping: Ping, pubsub: GossipSub, dht?: KadDHT }

export interface StackInit {
  privateKey: PrivateKey
  /** Listen multiaddrs. */
  listen: string[]
  keys: Pick<DerivedKeys, 'pnetKey' | 'dhtProtocol'>
  /**
   * The pnet keys to accept, newest first, read at every connection (a token rotation's
   * grace: see pnet-protector.ts). @default only `keys.pnetKey`, through @libp2p/pnet
   */
  pnetKeys?: () => readonly Uint8Array[]
  /** Run the private DHT (off with `p2p.disable_dht`). */
  dht: boolean
  /** Largest frame of our own protocols, bytes: a state delta rides in one gossip message. */
  maxFrameBytes: number
  /** Discovery modules, already labelled by the caller. @default none */
  peerDiscovery?: Libp2pOptions['peerDiscovery']
  overrides?: Omit<Libp2pOverrides, 'peerDiscovery'>
}

/** True for a 127.x or ::1 multiaddr. */
export function isLoopback (ma: Multiaddr): boolean {
  const ip = ma.getComponents().find((c) => c.name === 'ip4' || c.name === 'ip6')?.value
  return ip !== undefined && (ip.startsWith('127.') || ip === '::1')
}

/**
 * A libp2p node, not started: TCP, pnet with the token's key, Noise, yamux, identify,
 * ping, gossipsub with `GOSSIP_MESH`, and the private DHT when `dht` is set.
 */
export async function createLibp2pStack (init: StackInit): Promise<Libp2p<StackServices>> {
  const services: Record<string, unknown> = {
    identify: identify(),
    ping: ping(),
    pubsub: gossipsub({
      ...GOSSIP_MESH,
      allowPublishToZeroTopicPeers: true,
      emitSelf: false,
      globalSignaturePolicy: 'StrictNoSign',
      doPX: false,
      maxInboundDataLength: init.maxFrameBytes + 64 * 1024
    })
  }
  if (init.dht) {
    services.dht = kadDHT({ protocol: init.keys.dhtProtocol, clientMode: false, peerInfoMapper: passthroughMapper, logPrefix: 'kairos:dht' })
  }
  const preSharedKey = await loadPreSharedKey()
  const pnetKeys = init.pnetKeys
  const overrides = init.overrides ?? {}
  const node = await createLibp2p({
    privateKey: init.privateKey,
    start: false,
    addresses: {
      listen: init.listen,
      // Listening on 0.0.0.0 also yields 127.0.0.1: never announce loopback unless that is all we have.
      announceFilter: (addrs) => addrs.some((a) => !isLoopback(a)) ? addrs.filter((a) => !isLoopback(a)) : addrs
    },
    transports: overrides.transports ?? [tcp()],
    connectionEncrypters: [noise()],
    // yamux's keep-alive pings every connection each 30 s and only logs a lost ping: our heartbeats
    // already watch the links that matter (P2P-33), so it was idle traffic for nothing.
    streamMuxers: [yamux({ enableKeepAlive: false })],
    connectionProtector: pnetKeys === undefined ? preSharedKey({ psk: init.keys.pnetKey }) : rotatingPreSharedKey({ keys: pnetKeys }),
    // libp2p resets more than 5 inbound connections per second from one host: a site booting together (or
    // a gateway NATing a segment) is exactly that, so the bound is raised; pnet and admission still gate them.
    connectionManager: { maxIncomingPendingConnections: DEFAULT_MAX_PENDING_INBOUND, inboundConnectionThreshold: DEFAULT_INBOUND_PER_HOST_PER_SECOND, ...overrides.connectionManager },
    // Our own heartbeats watch every admitted connection; the monitor's pings only add traffic and churn.
    connectionMonitor: { enabled: false },
    ...(overrides.connectionGater === undefined ? {} : { connectionGater: overrides.connectionGater }),
    peerDiscovery: init.peerDiscovery ?? [],
    services: services as never
  }) as Libp2p<StackServices>
  dropKeepAliveTags(node)
  return node
}

/** What `dropKeepAliveTags` needs of libp2p: its peer-update events and the peer store. */
export interface TaggedPeers {
  addEventListener: (type: 'peer:update', listener: (evt: CustomEvent<PeerUpdate>) => void) => void
  peerStore: { merge: (peer: PeerId, data: { tags: Record<string, undefined> }) => Promise<unknown> }
}

/**
 * Takes libp2p's keep-alive tags off every peer as soon as they are set (P2P-41): the
 * dialler alone decides which connections a node keeps (mesh.ts). The DHT tags its 20
 * closest peers keep-alive, and libp2p redials a tagged peer whenever its last
 * connection closes: on a site of more than 2k + 1 nodes the dialler closed a
 * connection outside its links, libp2p dialled it again, and the pair paid a new
 * handshake, proof, state exchange and gossipsub streams, about ten times a minute
 * per agent on an idle 30-node site. The DHT's queries still dial whom they need.
 */
export function dropKeepAliveTags (node: TaggedPeers): void {
  node.addEventListener('peer:update', (evt) => {
    const { peer } = evt.detail
    const tags: Record<string, undefined> = {}
    for (const name of peer.tags.keys()) if (name.startsWith(KEEP_ALIVE)) tags[name] = undefined
    if (Object.keys(tags).length > 0) node.peerStore.merge(peer.id, { tags }).catch(() => { /* not written (the node is stopping): the tag stays until the next update */ })
  })
}
