import type { Libp2p } from 'libp2p'
import type { Timing } from '../config/types.ts'
import type { DerivedKeys } from '../token/index.ts'
import type { Clock } from '../util/clock.ts'
import type { Logger } from '../util/log.ts'
import type { RandomSource } from '../util/random.ts'
import { createAdmissionGate, type AdmissionGate } from './admission-gate.ts'
import { createAntiEntropy, type AntiEntropy } from './anti-entropy.ts'
import { trackConnections, type ConnectionTracker } from './connections.ts'
import type { GenerationProtocols } from './generations.ts'
import { createDialler, type BootstrapPeer, type DialNetwork, type Dialler } from './dialler.ts'
import { createGossip, type Gossip } from './gossip.ts'
import { libp2pDialNetwork, libp2pGossip, libp2pHeartbeats, libp2pRendezvousDht, openStream } from './libp2p-ports.ts'
import { createLiveness, type Liveness } from './liveness.ts'
import type { Loops } from './loops.ts'
import type { Membership, MembershipTransition } from './membership.ts'
import type { P2PNodeHooks } from './node-api.ts'
import type { PeerBook } from './peer-book.ts'
import { createRendezvous, type Rendezvous } from './rendezvous.ts'
import type { StackServices } from './stack.ts'
import type { StateStore } from './state/index.ts'

/**
 * How the node's services are wired to libp2p (through libp2p-ports.ts) and to each
 * other: which service's output feeds which one's input. node.ts builds the context
 * once and calls `wireServices` at every start.
 */

/** Protocol errors `status().rejections` counts besides the store's reasons. */
export interface ProtocolErrors { 'malformed-frame': number, 'gossip-not-admitted': number }

/** What the wiring needs from the node, fixed at `createP2PNode`. */
export interface WiringContext {
  clock: Clock
  random: RandomSource
  log: Logger
  timing: Timing
  keys: DerivedKeys
  protocols: GenerationProtocols
  /**
   * A token rotation's previous generation, honoured while `honoured()`: its protocol ids
   * (offered after the current ones) and admission key. @default none
   */
  previous?: { protocols: GenerationProtocols, admissionKey: Uint8Array, honoured: () => boolean }
  topics: { state: string, members: string }
  bootstrap: BootstrapPeer[]
  linkCount: number
  admissionTimeoutMs: number
  dialTimeoutMs: number
  syncTimeoutMs: number
  maxFrameBytes: number
  heartbeatFanout: number
  peerExchange: boolean
  hooks?: P2PNodeHooks
  /** The run's membership table. */
  membership: Membership
  /** Where `member:join` and `member:leave` are dispatched. */
  events: EventTarget
  protocolErrors: ProtocolErrors
  /** Labels discovery modules gave peers before the dialler existed (taken and cleared). */
  earlyLabels: Map<string, string>
}

/** The services of the current (or last) run. */
export interface Services {
  gate: AdmissionGate
  dialler: Dialler
  liveness: Liveness
  antiEntropy: AntiEntropy
  gossip: Gossip
  rendezvous: Rendezvous
  connections: ConnectionTracker
  loops: Loops
}

/** Builds the services of one run around a started store and a created libp2p node, and wires them to each other. */
export function wireServices (ctx: WiringContext, me: string, node: Libp2p<StackServices>, store: StateStore, book: PeerBook, loops: Loops): Services {
  const { clock, random, log, timing, keys, protocols, topics, bootstrap, linkCount, membership, events, protocolErrors, earlyLabels } = ctx
  /** Protocol `name` of the current generation, then of the previous one while it is honoured. */
  const offer = (name: 'sync' | 'push' | 'heartbeat'): string | string[] => ctx.previous?.honoured() === true ? [protocols[name], ctx.previous.protocols[name]].flat() : protocols[name]
  const now = (): number => clock.now()
  let liveness: Liveness | undefined
  let antiEntropy: AntiEntropy | undefined
  let dialler: Dialler | undefined
  const gate = createAdmissionGate({
    self: me,
    clock,
    random,
    log,
    key: keys.admissionKey,
    protocol: protocols.admit,
    ...(ctx.previous === undefined ? {} : { previous: { protocol: ctx.previous.protocols.admit, key: ctx.previous.admissionKey, honoured: ctx.previous.honoured } }),
    timeoutMs: ctx.admissionTimeoutMs,
    openConnections: libp2pDialNetwork(node).openConnections,
    onAdmitted: (peer, conn, initiator, first) => {
      const d = dialler as Dialler
      d.admitted(peer)
      const known = book.get(peer)
      const addrs = conn.direction === 'outbound' ? [conn.remoteAddr.toString()] : (known?.addresses ?? [])
      book.upsert(peer, { addresses: addrs, discoveredBy: d.discoveredBy(peer) ?? known?.discoveredBy ?? 'inbound', admittedAt: now() })
      d.found(peer, book.get(peer)?.discoveredBy ?? 'inbound')
      liveness?.admitted(peer, first, { ...(addrs.length > 0 ? { addresses: addrs } : {}), discoveredBy: d.via(peer, 'inbound') })
      if (!first) return
      log.debug('peer admitted', { peer, initiator })
      // One exchange per new peer, opened by the lower id whichever side dialled: when both
      // dialled at once, each admits the other first as the answering side of the other's
      // connection, and a rule by direction left the pair with no exchange at all.
      if (me < peer) void antiEntropy?.run(peer, { open: async (signal) => await conn.newStream(protocols.sync, { signal }) })
    },
    onFailed: (peer, reason) => { dialler?.failed(peer, reason) },
    ...(ctx.hooks?.freeze === undefined ? {} : { frozen: ctx.hooks.freeze })
  })
  // The gate's set: every service reads who is admitted from it.
  const admitted = gate.admitted
  // Every connection goes to the gate: the dialler runs the proof, the other end waits for it.
  const connections = trackConnections(node, (conn) => {
    if (conn.direction === 'outbound') void gate.outbound(conn)
    else gate.inbound(conn)
  })
  dialler = createDialler({
    self: me, clock, log, timing, network: frozenDials(libp2pDialNetwork(node), ctx.hooks?.freeze), book, membership, admitted, bootstrap, linkCount, dialTimeoutMs: ctx.dialTimeoutMs
  })
  for (const [id, label] of earlyLabels) dialler.found(id, label)
  earlyLabels.clear()
  const gossip = createGossip({
    self: me,
    clock,
    log,
    network: libp2pGossip(node),
    topics,
    store,
    admitted,
    heard: (peer) => { liveness?.heard(peer) },
    applyRumour: (r, relay) => { liveness?.applyRumour(r, relay) },
    reached: (peers, wire) => { antiEntropy?.catchUp(peers, wire) },
    onProtocolError: (kind) => { protocolErrors[kind]++ },
    ...(ctx.hooks === undefined ? {} : { hooks: ctx.hooks })
  })
  const d = dialler
  antiEntropy = createAntiEntropy({
    self: me,
    clock,
    random,
    log,
    timing,
    store,
    membership,
    admitted,
    admittedOrSoon: gate.admittedOrSoon,
    openStream: async (peer, protocol, signal) => await openStream(node, peer, offer(protocol), signal),
    addressesOf: (peer) => book.get(peer)?.addresses ?? [],
    via: d.via,
    learnPeer: d.learn,
    learnMember: (peer, sighting) => { liveness?.learn(peer, sighting) },
    applyRumour: (r, relay) => { liveness?.applyRumour(r, relay) },
    peerExchange: ctx.peerExchange,
    maxFrameBytes: ctx.maxFrameBytes,
    timeoutMs: ctx.syncTimeoutMs,
    onMalformed: () => { protocolErrors['malformed-frame']++ },
    ...(ctx.hooks?.tamperAdverts === undefined ? {} : { tamperAdverts: ctx.hooks.tamperAdverts }),
    ...(ctx.hooks?.freeze === undefined ? {} : { frozen: ctx.hooks.freeze })
  })
  const ae = antiEntropy
  liveness = createLiveness({
    self: me,
    clock,
    log,
    timing,
    membership,
    admitted,
    transport: libp2pHeartbeats(node, () => offer('heartbeat')),
    streamTimeoutMs: ctx.dialTimeoutMs,
    fanout: ctx.heartbeatFanout,
    spread: async (r) => await gossip.spread(r),
    exchange: async (peer) => { await ae.run(peer) },
    digestHash: ae.digestHash,
    onDigest: ae.heartbeatDigest,
    onTransition: (t: MembershipTransition) => {
      if (t.type === 'join' || t.type === 'leave') d.schedule()
      if (t.type === 'join') events.dispatchEvent(new CustomEvent('member:join', { detail: t.member }))
      else if (t.type === 'leave') events.dispatchEvent(new CustomEvent('member:leave', { detail: t.member }))
    },
    ...(ctx.hooks?.freeze === undefined ? {} : { frozen: ctx.hooks.freeze })
  })
  const lv = liveness
  const rendezvous = createRendezvous({
    self: me,
    clock,
    log,
    timing,
    dht: libp2pRendezvousDht(node),
    rendezvousKey: keys.rendezvousKey,
    connectionCount: () => node.getConnections().length,
    admitted,
    knows: (peer) => book.get(peer) !== undefined || admitted.has(peer),
    learnPeer: d.learn,
    lastJoinAt: lv.lastJoinAt
  })
  return { gate, dialler: d, liveness: lv, antiEntropy: ae, gossip, rendezvous, connections, loops }
}

/** The dialler's network, dialling nobody while the test hook `freeze` holds (a hung process dials no one). */
function frozenDials (network: DialNetwork, frozen: (() => boolean) | undefined): DialNetwork {
  if (frozen === undefined) return network
  const refuse = (): never => { throw new Error('frozen') }
  return {
    ...network,
    dial: async (peer, addresses, signal) => frozen() ? refuse() : await network.dial(peer, addresses, signal),
    dialAddress: async (addr, signal) => { if (frozen()) refuse(); await network.dialAddress(addr, signal) }
  }
}
