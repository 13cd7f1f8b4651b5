import { mkdir } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import type { Libp2p } from 'libp2p'
import { TopicValidatorResult, type GossipsubMessage } from '@libp2p/gossipsub'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import type { Connection, PeerDiscovery, PeerId, PeerInfo, Stream } from '@libp2p/interface'
import { CODE_P2P, multiaddr } from '@multiformats/multiaddr'
import { deriveKeys, type DerivedKeys } from '../token/index.ts'
import { systemClock } from '../util/clock.ts'
import { cryptoRandom } from '../util/random.ts'
import { silentLogger } from '../util/log.ts'
import { errorMessage, InputError } from '../util/errors.ts'
import { createStateCollector, createStateStore, ownerPresence, resealOwnEntries, type LocalStateStore, type StateCollector, type StateStore } from './state/index.ts'
import type { ClusterState, ClusterStateEvents, JsonValue, Member, StateEntry } from './types.ts'
import { createLibp2pStack, isLoopback, type StackServices } from './stack.ts'
import { NodeNotStartedError } from './errors.ts'
import { DEFAULT_MAX_FRAME_BYTES } from './framing.ts'
import { loadOrCreateIdentity } from './identity.ts'
import { createMembership, type Membership } from './membership.ts'
import { loadPeerBook, type PeerBook } from './peer-book.ts'
import { deadline } from './stream-io.ts'
import { DEFAULT_MESH_LINKS } from './mesh.ts'
import { startLanDiscovery, type LanDiscovery } from './lan.ts'
import { createLoops, type Loops } from './loops.ts'
import { DEFAULT_ADMISSION_TIMEOUT_MS } from './admission-gate.ts'
import { DEFAULT_SYNC_TIMEOUT_MS } from './anti-entropy.ts'
import { DialError, parseAddress, peerIdOf, type P2PNode, type P2PNodeInit, type P2PStatus } from './node-api.ts'
import { wireServices, type Services } from './wiring.ts'
import { nodeStatus } from './node-status.ts'
import { departureOf, type Departure } from './departures.ts'
import { DEFAULT_FORGET_AFTER_MS } from '../config/defaults.ts'
import { generationProtocols, previousGeneration } from './generations.ts'

/**
 * The p2p node: one libp2p stack and six services, each in its own module with its own
 * state and the few components it is given (see each module's doc):
 *
 * | concern                                | module           |
 * |----------------------------------------|------------------|
 * | dialling and the bounded mesh          | dialler.ts       |
 * | token proof on every connection        | admission-gate.ts|
 * | heartbeats, suspicion, disputes        | liveness.ts      |
 * | state exchanges and peer exchange      | anti-entropy.ts  |
 * | state deltas and membership rumours    | gossip.ts        |
 * | DHT rendezvous                         | rendezvous.ts    |
 *
 * wiring.ts connects them to libp2p (through libp2p-ports.ts) and to each other; this
 * file owns the node's lifecycle and status.
 */

export { DEFAULT_ADMISSION_TIMEOUT_MS } from './admission-gate.ts'
export { DEFAULT_SYNC_TIMEOUT_MS } from './anti-entropy.ts'
export { DEFAULT_MAX_PARALLEL_DIALS, MUTUAL_DIAL_YIELD_MS } from './dialler.ts'
export { QUIET_AFTER_DEAD_PERIODS } from './liveness.ts'
export { rendezvousCid } from './rendezvous.ts'
export type { GossipHookEvent } from './gossip.ts'
export { DialError, parseAddress, type P2PNode, type P2PNodeHooks, type P2PNodeInit, type P2PStatus, type PeerStatus } from './node-api.ts'

/**
 * The entry every node writes under its own id when it starts: its signed presence.
 * A member counts (in `state.members()`) once we have heard it first-hand or it has
 * signed state, such as this entry (see docs/decisions.md, P2P-24).
 */
export const MEMBER_KEY = 'p2p/member'

/** Most times a node writes its presence before gossip reaches a peer (see `announcePresence`). */
const PRESENCE_TRIES = 20

/** Bound on one dial attempt, ms. @default 5000 */
export const DEFAULT_DIAL_TIMEOUT_MS = 5_000

/**
 * Ring successors each node heartbeats, so each node has this many watchers. Each
 * heartbeat costs a data frame, a yamux window update and a TCP ACK, so this is the main
 * term of idle traffic: one watcher costs half of what two do. With one watcher, a node
 * that dies together with its watcher is caught one detection later: when the watcher is
 * declared dead the ring closes and the next node starts expecting its heartbeats.
 * @default 1
 */
export const DEFAULT_HEARTBEAT_FANOUT = 1

/** Everything one run of the node holds, from `start()` to `stop()`. */
interface Running {
  controller: AbortController
  /** Aborted before the leave notice goes out: no new connection is dialled or admitted after it. */
  leaving: AbortController
  node: Libp2p<StackServices>
  store: LocalStateStore
  book: PeerBook
  loops: Loops
  lan?: LanDiscovery
  collector: StateCollector
  /** Runs a collection soon; listens to member joins and leaves while the node runs. */
  pokeCollector: () => void
  onGossip: (evt: CustomEvent<GossipsubMessage>) => void
}

/**
 * Creates a p2p node. Nothing touches the network or the disk until `start()`.
 */
export async function createP2PNode (init: P2PNodeInit): Promise<P2PNode> {
  const p2p = init.p2p
  const timing = p2p.timing
  const clock = init.clock ?? systemClock
  const random = init.random ?? cryptoRandom
  const log = (init.logger ?? silentLogger).child('p2p')
  const stateDir = init.stateDir ?? p2p.stateDir
  const keys: DerivedKeys = { ...deriveKeys(init.token, p2p.networkId), ...init.keyOverrides }
  const admissionTimeoutMs = init.admissionTimeoutMs ?? DEFAULT_ADMISSION_TIMEOUT_MS
  const dialTimeoutMs = init.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS
  const syncTimeoutMs = init.syncTimeoutMs ?? DEFAULT_SYNC_TIMEOUT_MS
  const maxFrameBytes = init.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES
  const heartbeatFanout = init.heartbeatFanout ?? DEFAULT_HEARTBEAT_FANOUT
  if (!Number.isInteger(heartbeatFanout) || heartbeatFanout < 1) throw new InputError(`createP2PNode: heartbeatFanout must be a positive integer, got ${heartbeatFanout}`)
  const linkCount = init.meshLinks ?? DEFAULT_MESH_LINKS
  if (linkCount !== Infinity && (!Number.isInteger(linkCount) || linkCount < 1)) throw new InputError(`createP2PNode: meshLinks must be a positive integer or Infinity, got ${linkCount}`)
  const protocols = generationProtocols(keys)
  const topics = { state: keys.gossipTopic, members: `${keys.syncProtocol}/members/1.0.0` }

  // Validate addresses up front: a typo in the config is an input error, not a silent no-op.
  const listen = p2p.listen.map((a, i) => parseAddress(a, `p2p.listen[${i}]`, false).toString())
  const bootstrap = p2p.bootstrapPeers.map((a, i) => parseAddress(a, `p2p.bootstrap_peers[${i}]`, true))
    .map((ma) => ({ peer: peerIdOf(ma) as string, addr: ma.toString() }))

  const events = new EventTarget()
  let membership: Membership = createMembership({ timing, self: '', incarnation: 0 })
  const protocolErrors = { 'malformed-frame': 0, 'gossip-not-admitted': 0 }
  let self = ''
  let running: Running | undefined
  let services: Services | undefined
  let starting: Promise<void> | undefined
  let stopping: Promise<void> | undefined
  /** How discovery modules labelled peers before the dialler existed. */
  const earlyLabels = new Map<string, string>()

  /** Owners of signed entries in our replica (cached until an entry of a new owner arrives). */
  let owners: Set<string> | undefined
  /**
   * Whether a membership row counts as a member: we heard it first-hand, or it has signed
   * state. A row that only came in a rumour or a peer exchange is a claim any token holder
   * can make about any id, and every member counted raises the election's quorum.
   */
  const counts = (m: Member): boolean => {
    if (membership.firstHand(m.peerId)) return true
    if (running === undefined) return false
    owners ??= new Set(running.store.list().map((e) => e.owner))
    return owners.has(m.peerId)
  }

  const now = (): number => clock.now()
  const { keys: prevKeys, honoured, protocols: prevProtocols, topics: prevTopics } = previousGeneration(init.previousToken, p2p.networkId, topics, now)
  const forgetAfterMs = p2p.forgetAfterMs ?? DEFAULT_FORGET_AFTER_MS
  /** Identities removed from the site (`revoke`). */
  let revokedIds: ReadonlySet<string> = new Set()
  /** Counted rows that have not departed (see departures.ts). */
  const current = (): Member[] => {
    const t = now()
    return membership.list().filter((m) => counts(m) && departureOf(m.peerId, m, revokedIds, t, forgetAfterMs) === undefined)
  }
  const need = (op: string): { run: Running, svc: Services } => {
    if (running === undefined || services === undefined) throw new NodeNotStartedError(op)
    return { run: running, svc: services }
  }

  /** Labels every peer a discovery module reports, so status can say how a peer was found. */
  const labelled = <C>(label: string, factory: (c: C) => PeerDiscovery): (c: C) => PeerDiscovery => (components: C) => {
    const svc = factory(components)
    svc.addEventListener('peer', (evt: CustomEvent<PeerInfo>) => {
      const id = evt.detail.id.toString()
      if (services !== undefined) services.dialler.found(id, label)
      else if (!earlyLabels.has(id)) earlyLabels.set(id, label)
    })
    return svc
  }

  /**
   * Writes our signed presence (`MEMBER_KEY`): with it, nodes that only hear of us
   * second-hand count us as a member. Entries that arrive by a state exchange are not
   * gossiped on, so the entry must once go out by gossip: it is written again (a new
   * version) each heartbeat interval while we have peers but gossipsub reached none of
   * them (it learns their subscriptions a moment after the connection), a bounded number
   * of times. While we are alone it waits.
   */
  const announcePresence = async (svc: Services, store: StateStore, signal: AbortSignal): Promise<void> => {
    const since = now()
    let tries = 0
    while (!signal.aborted && tries < PRESENCE_TRIES) {
      if (tries === 0 || svc.gate.admitted.size > 0) {
        tries++
        const { wire } = await store.put(MEMBER_KEY, { since, host: hostname() })
        const reached = await new Promise<number>((resolve) => { svc.gossip.publish(wire, (peers) => { resolve(peers.size) }) })
        if (reached > 0) return
      }
      await clock.sleep(timing.heartbeatIntervalMs, signal)
    }
  }

  const doStart = async (): Promise<void> => {
    const controller = new AbortController()
    // Labels reported while this run starts go to its dialler, not the last run's.
    services = undefined
    await mkdir(stateDir, { recursive: true, mode: 0o700 })
    const privateKey = await loadOrCreateIdentity(stateDir)
    const book = await loadPeerBook(stateDir, log)
    const me = peerIdFromPrivateKey(privateKey).toString()
    const store = await createStateStore({
      privateKey,
      self: me,
      stateKey: keys.stateKey,
      ...(prevKeys === undefined ? {} : { openKeys: () => honoured() ? [prevKeys.stateKey] : [] }),
      dir: join(stateDir, 'state'),
      ...(init.stateLimits === undefined ? {} : { limits: init.stateLimits }),
      ...(p2p.forgetAfterMs === undefined ? {} : { forgetAfterMs: p2p.forgetAfterMs }),
      // No owner check: an entry that decrypts under the token's state key and carries its
      // owner's signature comes from a token holder, and with a partial mesh an owner's
      // entries often arrive (relayed) before any news of the owner. Quotas still bound it.
      clock,
      logger: log
    })
    const report = store.loadReport()
    if (report.corrupt) log.warn('state file was corrupt; starting empty and rebuilding from peers', { file: report.file, movedTo: report.movedTo, problem: report.problem })

    const discovery = init.libp2pOverrides?.peerDiscovery ?? []
    let node: Libp2p<StackServices>
    try {
      node = await createLibp2pStack({
        privateKey,
        listen,
        keys,
        ...(prevKeys === undefined ? {} : { pnetKeys: () => honoured() ? [keys.pnetKey, prevKeys.pnetKey] : [keys.pnetKey] }),
        dht: !p2p.disableDht,
        maxFrameBytes,
        peerDiscovery: discovery.map((f, i) => labelled(init.libp2pOverrides?.peerDiscovery === undefined ? 'mdns' : `discovery-${i}`, f)),
        overrides: init.libp2pOverrides ?? {}
      })
    } catch (err) {
      await store.close()
      throw err
    }

    self = me
    // No staleness rule: most members are never heard first-hand here, and a member's end
    // comes from its watcher's rumour, repaired by the membership rows of every peer exchange.
    membership = createMembership({ timing, self: me, incarnation: now(), staleAfterMs: Infinity })
    const loops = createLoops(clock, controller.signal, log)
    const svc = wireServices({
      clock, random, log, timing, keys, protocols, topics, bootstrap,
      ...(prevKeys === undefined || prevProtocols === undefined ? {} : { previous: { protocols: prevProtocols, admissionKey: prevKeys.admissionKey, honoured } }), linkCount, admissionTimeoutMs, dialTimeoutMs, syncTimeoutMs, maxFrameBytes, heartbeatFanout,
      peerExchange: init.peerExchange !== false,
      ...(init.hooks === undefined ? {} : { hooks: init.hooks }),
      membership, events, protocolErrors, earlyLabels
    }, me, node, store, book, loops)
    const onGossip = (evt: CustomEvent<GossipsubMessage>): void => {
      const { msg, propagationSource } = evt.detail
      const topic = prevTopics.get(msg.topic)
      if (topic !== undefined && !honoured()) return
      svc.gossip.receive(topic ?? msg.topic, msg.data, propagationSource.toString())
    }
    // Garbage collection of owners nobody stands for: never admitted within the grace, or
    // gone longer than p2p.forget_after (see p2p/state/gc.ts). Membership changes run it soon.
    const collector = createStateCollector({
      store,
      presence: ownerPresence({ admitted: (id) => svc.gate.admitted.has(id), liveness: (id) => membership.get(id)?.liveness }),
      ...(init.collectIntervalMs === undefined ? {} : { intervalMs: init.collectIntervalMs }),
      clock,
      logger: log
    })
    const pokeCollector = (): void => { collector.poke() }
    const leaving = new AbortController()
    /** Admission and dialling stop at the leave notice: a connection made after it would be heard as the node back from the dead. */
    const admitting = AbortSignal.any([controller.signal, leaving.signal])
    const run: Running = { controller, leaving, node, store, book, loops, collector, pokeCollector, onGossip }
    running = run
    services = svc
    owners = undefined
    svc.gate.start(admitting)
    if (revokedIds.size > 0) { svc.gate.revoke(revokedIds); store.revoke(revokedIds) }

    node.addEventListener('peer:disconnect', (evt) => {
      const peer = evt.detail.toString()
      svc.gate.disconnected(peer)
      svc.liveness.disconnected(peer)
      svc.antiEntropy.disconnected(peer)
      svc.dialler.schedule()
    })
    node.addEventListener('peer:discovery', (evt) => {
      const id = evt.detail.id.toString()
      svc.dialler.found(id, 'dht')
      svc.dialler.learn(id, evt.detail.multiaddrs.map((m) => m.toString()), svc.dialler.discoveredBy(id) ?? 'dht')
    })
    node.addEventListener('peer:identify', (evt) => {
      const peer = evt.detail.peerId.toString()
      const addrs = evt.detail.listenAddrs.filter((a) => !isLoopback(a) || listen.every((l) => isLoopback(multiaddr(l)))).map((a) => a.toString())
      if (addrs.length > 0 && (svc.gate.admitted.has(peer) || book.get(peer) !== undefined)) book.upsert(peer, { addresses: addrs })
    })
    store.addEventListener('change', (evt) => {
      svc.antiEntropy.changed()
      if (owners !== undefined && !owners.has(evt.detail.entry.owner)) owners = undefined
      events.dispatchEvent(new CustomEvent('change', { detail: evt.detail }))
    })

    // A hung process (the test hook `freeze`) neither takes nor passes on a message: one it passed on is news of it.
    // Neither does a node that sent its leave notice: a message it passed on after it would bring it back to life.
    const validator = (peer: PeerId): TopicValidatorResult => init.hooks?.freeze?.() === true || leaving.signal.aborted
      ? TopicValidatorResult.Ignore
      : svc.gate.admitted.has(peer.toString()) ? TopicValidatorResult.Accept : TopicValidatorResult.Reject
    try {
      const heartbeat = async (stream: Stream, conn: Connection): Promise<void> => {
        const peer = conn.remotePeer.toString()
        if (controller.signal.aborted || !(await svc.gate.admittedOrSoon(peer, controller.signal))) { stream.abort(new Error('not admitted')); return }
        await svc.liveness.handle(stream, peer, () => { protocolErrors['malformed-frame']++ })
      }
      // During a rotation's grace the previous generation's protocols are served too (the
      // gate checks its proof with that generation's key, and refuses it once the grace ends).
      for (const ids of honoured() && prevProtocols !== undefined ? [protocols, prevProtocols] : [protocols]) {
        await node.handle(ids.admit, svc.gate.handle, { maxInboundStreams: 4, maxOutboundStreams: 4 })
        await node.handle(ids.sync, async (stream, conn) => { await svc.antiEntropy.handle(stream, conn.remotePeer.toString()) }, { maxInboundStreams: 4, maxOutboundStreams: 4 })
        await node.handle(ids.push, async (stream, conn) => { await svc.antiEntropy.handlePush(stream, conn.remotePeer.toString()) }, { maxInboundStreams: 4, maxOutboundStreams: 4 })
        await node.handle(ids.heartbeat, heartbeat, { maxInboundStreams: 2, maxOutboundStreams: 2 })
      }
      await node.start()
      node.services.pubsub.addEventListener('gossipsub:message', onGossip)
      for (const topic of [topics.state, topics.members, ...(honoured() ? prevTopics.keys() : [])]) {
        node.services.pubsub.topicValidators.set(topic, validator)
        node.services.pubsub.subscribe(topic)
      }
    } catch (err) {
      controller.abort()
      await Promise.resolve(node.stop()).catch(() => {})
      await store.close().catch(() => {})
      running = undefined
      throw err
    }

    if (p2p.mdns && init.libp2pOverrides?.peerDiscovery === undefined) {
      run.lan = await startLanDiscovery({
        // A member back within a rotation's grace with only the previous token looks for that generation's tag.
        serviceTags: [keys.mdnsServiceName, ...(honoured() && prevKeys !== undefined ? [prevKeys.mdnsServiceName] : [])],
        events,
        peerId: me,
        // The announced addresses (loopback only when that is all there is, as in tests on one host).
        addresses: () => node.getMultiaddrs().map((a) => a.decapsulateCode(CODE_P2P).toString()),
        intervalMs: timing.mdnsIntervalMs,
        onPeer: (peer, addresses) => { svc.dialler.learn(peer, addresses, 'mdns') },
        // Keep announcing while someone is missing: a member held dead that has not departed
        // may come back (a healed partition); below `minimum_nodes` up, more often: the site
        // cannot form without the nodes it has not found yet (the minority of a partition from boot).
        missing: () => {
          const t = now()
          return membership.list().some((m) => m.liveness === 'dead' && counts(m) && departureOf(m.peerId, m, revokedIds, t, forgetAfterMs) === undefined)
        },
        up: () => membership.list().filter((m) => m.liveness !== 'dead').length + 1,
        minimumNodes: p2p.minimumNodes,
        clock,
        random,
        logger: log
      })
    }
    svc.liveness.start(controller.signal, loops)
    svc.antiEntropy.start(controller.signal, loops)
    // Rendezvous rounds look for peers beyond the LAN, and a DHT only reaches there through
    // a bootstrap peer. Without one, the routing table holds LAN peers that mDNS and peer
    // exchange already give us, and each round dialled about 20 of them, which slowed the
    // formation of a large site.
    if (!p2p.disableDht && bootstrap.length > 0) svc.rendezvous.start(admitting, loops)
    else if (!p2p.disableDht) log.debug('no DHT rendezvous rounds: no bootstrap peer, so mDNS and peer exchange find every peer the DHT could')
    svc.dialler.start(admitting, loops)
    events.addEventListener('member:join', pokeCollector)
    events.addEventListener('member:leave', pokeCollector)
    collector.start()
    announcePresence(svc, store, controller.signal).catch((err: unknown) => {
      if (!controller.signal.aborted) log.warn('announcing our presence failed', { error: errorMessage(err) })
    })
    log.info('p2p node started', { peerId: self, addresses: node.getMultiaddrs().map(String), fingerprint: keys.fingerprint })
  }

  const doStop = async (): Promise<void> => {
    if (starting !== undefined) await starting.catch(() => {})
    const run = running
    const svc = services
    if (run === undefined || svc === undefined) return
    // Say goodbye: peers mark us dead at once instead of after a silent interval.
    run.leaving.abort()
    await svc.liveness.leave()
    run.controller.abort()
    running = undefined
    await run.lan?.stop()
    svc.liveness.stop()
    events.removeEventListener('member:join', run.pokeCollector)
    events.removeEventListener('member:leave', run.pokeCollector)
    await run.collector.stop()
    await run.loops.settled()
    run.node.services.pubsub.removeEventListener('gossipsub:message', run.onGossip)
    await Promise.resolve(run.node.stop()).catch((err: unknown) => { log.warn('libp2p stop failed', { error: errorMessage(err) }) })
    svc.gate.clear()
    await run.book.save().catch((err: unknown) => { log.warn('saving known peers failed', { error: errorMessage(err) }) })
    await run.store.close()
    log.info('p2p node stopped', { peerId: self })
  }

  const state: ClusterState = {
    get self () { return self },
    get: (owner: string, key: string): StateEntry | undefined => running?.store.get(owner, key),
    list: (prefix?: string): StateEntry[] => running?.store.list(prefix) ?? [],
    put: async (key: string, value: JsonValue): Promise<StateEntry> => {
      const { run, svc } = need('put')
      const { entry, wire } = await run.store.put(key, value)
      svc.gossip.publish(wire)
      return entry
    },
    members: current,
    discovering: (): string[] => services?.dialler.pending() ?? [],
    departed: (): ReadonlyMap<string, Departure> => {
      const out = new Map<string, Departure>()
      for (const id of revokedIds) out.set(id, 'removed')
      const t = now()
      for (const m of membership.list()) {
        const d = departureOf(m.peerId, m, revokedIds, t, forgetAfterMs)
        if (d !== undefined) out.set(m.peerId, d)
      }
      return out
    },
    addEventListener: <K extends keyof ClusterStateEvents>(type: K, listener: (evt: ClusterStateEvents[K]) => void): void => {
      events.addEventListener(type, listener as EventListener)
    },
    removeEventListener: <K extends keyof ClusterStateEvents>(type: K, listener: (evt: ClusterStateEvents[K]) => void): void => {
      events.removeEventListener(type, listener as EventListener)
    }
  }

  const status = (): P2PStatus => nodeStatus({
    self, keys, timing, members: current(), membership: membership.list(), revoked: revokedIds, protocolErrors, now: now(), forgetAfterMs,
    ...(running === undefined ? {} : { run: running }),
    ...(services === undefined ? {} : { svc: services })
  })

  return {
    get peerId () { return self },
    state,
    start: async () => {
      if (running !== undefined) return
      if (stopping !== undefined) await stopping
      starting ??= doStart().finally(() => { starting = undefined })
      await starting
    },
    stop: async () => {
      stopping ??= doStop().finally(() => { stopping = undefined })
      await stopping
    },
    addresses: () => running?.node.getMultiaddrs().map((m) => m.toString()) ?? [],
    status,
    revoked: () => revokedIds,
    reseal: async (skip) => await resealOwnEntries(need('reseal').run.store, keys.stateKey, skip, state.put),
    revoke: (peers: ReadonlySet<string>) => {
      const next = new Set([...peers].filter((p) => p !== self && p !== ''))
      const added = [...next].filter((p) => !revokedIds.has(p))
      if (added.length === 0 && next.size === revokedIds.size) return
      revokedIds = next
      if (added.length > 0) log.info('nodes removed from the site: refused admission, entries dropped', { peers: added })
      const run = running
      const svc = services
      if (run === undefined || svc === undefined) return
      const was = svc.gate.revoke(next)
      run.store.revoke(next)
      for (const peer of new Set([...was, ...added])) {
        let id: PeerId
        try { id = peerIdFromString(peer) } catch { continue }
        run.node.hangUp(id).catch((err: unknown) => { log.debug('closing connections of a removed node failed', { peer, error: errorMessage(err) }) })
      }
      run.pokeCollector()
      // Readers (roles, vpn) recount members on a membership event.
      for (const peer of added) {
        const row = membership.get(peer)
        if (row !== undefined) events.dispatchEvent(new CustomEvent('member:leave', { detail: row }))
      }
    },
    dial: async (addr: string, options: { signal?: AbortSignal } = {}) => {
      const { run, svc } = need('dial')
      const ma = parseAddress(addr, 'dial', false)
      const peer = peerIdOf(ma)
      if (peer !== undefined) svc.dialler.found(peer, 'bootstrap')
      const signal = run.controller.signal
      const d = deadline(clock, dialTimeoutMs, `dial ${addr}`, options.signal === undefined ? signal : AbortSignal.any([signal, options.signal]))
      try {
        await run.node.dial(ma, { signal: d.signal })
      } catch (err) {
        throw new DialError(addr, { cause: err })
      } finally {
        d.cancel()
      }
    }
  }
}
