import type { Timing } from '../config/types.ts'
import { createMembership, type Membership, type MembershipTransition, type Rumour } from '../p2p/membership.ts'
import { nextBeatInterval, ringOrder, ringSuccessors } from '../p2p/heartbeat.ts'
import { DEFAULT_HEARTBEAT_FANOUT, QUIET_AFTER_DEAD_PERIODS } from '../p2p/node.ts'
import { DEFAULT_FLUSH_DELAY_MS } from '../p2p/state/store.ts'
import type { JsonValue, Liveness } from '../p2p/types.ts'
import type { MemberView } from '../roles/types.ts'
import type { Clock } from '../util/clock.ts'
import type { RandomSource } from '../util/random.ts'
import { fingerprintRows } from '../util/fingerprint.ts'
import type { HeldEntry, SimReplica } from './replica.ts'

/**
 * The simulated network under the simulation's nodes: connections, gossip,
 * anti-entropy, the state file's flush, and the production membership table
 * (p2p/membership.ts) driven as p2p/node.ts drives it — heartbeats to ring
 * successors (p2p/heartbeat.ts), suspicion and death rumours, refutations, peer
 * exchange and disputes.
 *
 * Modelled, not run: the transport. Every two reachable nodes hold one admitted
 * connection (no dialling, no partial mesh), opened when discovery finds the peer; a
 * connection survives a partition (no keepalive closes it) and closes when a node
 * crashes, noticed at once by a peer that can reach it and at the heal by one that
 * cannot. Gossip (entries and rumours) is lost, delayed and reordered at random;
 * heartbeats arrive while a connection carries traffic.
 */

/** Longest wait between two exchanges that settle a disputed member, ms (as the node's). */
const DISPUTE_MAX_WAIT_MS = 60_000

/** What the network keeps of a node. Fields below `membership` are lost on a crash. */
export interface NetNode {
  id: string
  index: number
  up: boolean
  /** Bumped on every boot and crash: events of an earlier life are dropped. */
  epoch: number
  replica: SimReplica
  /** A flush of the replica to the state file is scheduled. */
  flushPending: boolean
  membership?: Membership
  /** Bumped whenever a row of the membership table is added or changes liveness. */
  memberVersion: number
  /** The table's rows at `memberVersion` (what the roles layer reads), and their key. */
  view?: { version: number, members: MemberView[], key: string }
  /** The liveness of every row of the table, kept in step with it. */
  known: Map<string, Liveness>
  /** Bumped when a row is added or moves into or out of `dead`. */
  ringVersion: number
  /** The heartbeat ring of this node's view (itself and every member not dead) at `ringVersion`. */
  ring?: { version: number, at: Map<string, number>, size: number }
  /** Open connections: peer index → the peer's epoch when it opened. */
  links: Map<number, number>
  /** Bumped when `links` changes. */
  linkVersion: number
  /** Peers this node heartbeats, and the versions they were computed at. */
  beatTargets: Set<number>
  beatKey: string
  beatMs: number
  nextBeat: number
  lastChangeAt: number
  pendingRefute?: Rumour
  lastRefute?: { incarnation: number, at: number }
  /** Peers whose dispute is being settled by exchanges. */
  disputes: Set<number>
  /** Fingerprint of the membership rows last sent to each peer: an unchanged list is not sent again. */
  sentPeers: Map<number, string>
}

/** The network fields of a node that has never booted. */
export function netNode (id: string, index: number, replica: SimReplica): NetNode {
  return {
    id, index, up: false, epoch: 0, replica, flushPending: false, memberVersion: 0, known: new Map(), ringVersion: 0,
    links: new Map(), linkVersion: 0, beatTargets: new Set(), beatKey: '', beatMs: 0, nextBeat: 0, lastChangeAt: 0,
    disputes: new Set(), sentPeers: new Map()
  }
}

/** Events the network schedules for itself. */
export type NetEvent =
  | { type: 'deliver', to: number, from: number, entry: HeldEntry }
  | { type: 'rumour', to: number, from: number, rumour: Rumour }
  | { type: 'anti-entropy', node: number, epoch: number }
  | { type: 'liveness', node: number, epoch: number }
  | { type: 'discover', node: number, epoch: number }
  | { type: 'flush', node: number, epoch: number }
  | { type: 'dispute', node: number, peer: number, epoch: number, waitMs: number }

/** What the network is given. */
export interface SimNetworkInit<N extends NetNode> {
  nodes: readonly N[]
  queue: { push: (at: number, ev: NetEvent) => void }
  clock: Clock
  /** The fault stream: losses, delays, peer choice. */
  rng: RandomSource
  /** The stream entry hashes are drawn from. */
  crypto: RandomSource
  timing: Timing
  /** Share of gossip messages lost. */
  loss: number
  /** Longest gossip delay, ms. */
  maxDelay: number
  /** The partition group of each node (all equal when healed). */
  group: () => readonly number[]
  /** Something the roles layer wakes on happened at `node`: a new entry, a member joined or left. */
  wake: (node: N) => void
}

/** The running network. */
export interface SimNetwork<N extends NetNode> {
  reachable: (a: N, b: N) => boolean
  /** Writes `node`'s own entry (or one of an identity it minted, `owner`) and gossips it. */
  put: (node: N, key: string, value: JsonValue, owner?: string) => void
  /** Gossips an entry `node` held before, as it was then: a replay. */
  replay: (node: N, h: HeldEntry) => void
  /** The members as the roles layer reads them, and a key that changes exactly when an id or a liveness does. */
  members: (node: N) => { members: MemberView[], key: string }
  /** A node starts: a new membership table (its incarnation the start time), loops, and discovery. */
  start: (node: N) => void
  /** A node crashes (call while it is still up): connections close, unflushed changes are lost. */
  stop: (node: N) => void
  /** The partition healed: dead connections are noticed, reachable pairs connect. */
  heal: () => void
  handle: (ev: NetEvent) => void
  /** Members declared dead so far, over every node's table. */
  deaths: () => number
}

/** Creates the network over `init.nodes`. */
export function createSimNetwork<N extends NetNode> (init: SimNetworkInit<N>): SimNetwork<N> {
  const { nodes, queue, clock, rng, crypto, timing, loss, maxDelay } = init
  // Liveness traffic (rumours, refutations) is delayed up to a heartbeat interval: a
  // one-way delay beyond the suspicion timeout is a network the timing preset is not
  // made for (every watcher would suspect every peer), not a fault to survive.
  const rumourDelay = Math.min(maxDelay, timing.heartbeatIntervalMs)
  let deaths = 0
  const byId = new Map(nodes.map((x) => [x.id, x]))
  const reachable = (a: N, b: N): boolean => {
    const group = init.group()
    return a.up && b.up && group[a.index] === group[b.index]
  }
  /** `b` is reachable over an open connection of `a`. */
  const linked = (a: N, b: N): boolean => a.links.has(b.index) && reachable(a, b)
  const wakeSoon = init.wake
  const changed = (node: N): void => {
    if (node.flushPending) return
    node.flushPending = true
    queue.push(clock.now() + DEFAULT_FLUSH_DELAY_MS, { type: 'flush', node: node.index, epoch: node.epoch })
  }
  const merge = (node: N, h: HeldEntry): boolean => {
    if (!node.replica.merge(h)) return false
    changed(node)
    return true
  }
  const gossip = (from: N, h: HeldEntry): void => {
    for (const i of from.links.keys()) {
      const to = nodes[i] as N
      if (!reachable(from, to) || rng.float() < loss) continue
      queue.push(clock.now() + 1 + rng.int(maxDelay), { type: 'deliver', to: i, from: from.index, entry: h })
    }
  }
  const put = (node: N, key: string, value: JsonValue, owner?: string): void => {
    const h = node.replica.put(key, value, clock.now(), crypto, owner)
    changed(node)
    gossip(node, h)
  }

  // ---- membership: the production table, driven as p2p/node.ts drives it ----
  const table = (node: N): Membership => node.membership as Membership
  /**
   * The members as the roles layer reads them (`state.members()`), rebuilt only after
   * the table may have changed; `key` changes exactly when an id or a liveness does.
   * (`lastSeen` is carried but not read by the decision.)
   */
  const view = (node: N): NonNullable<N['view']> => {
    if (node.view?.version === node.memberVersion) return node.view
    const members: MemberView[] = table(node).list().map((m) => ({ peerId: m.peerId, liveness: m.liveness, lastSeen: m.lastSeen }))
    let key = ''
    for (const m of members) key += `${m.peerId}${m.liveness[0] ?? ''}`
    node.view = { version: node.memberVersion, members, key }
    return node.view
  }
  const setKnown = (node: N, peer: string, l: Liveness): void => {
    const prev = node.known.get(peer)
    if (prev === l) return
    node.known.set(peer, l)
    node.memberVersion++
    if (prev === undefined || (prev === 'dead') !== (l === 'dead')) node.ringVersion++
  }
  const transitions = (node: N, ts: MembershipTransition[]): void => {
    if (ts.length === 0) return
    node.lastChangeAt = clock.now()
    for (const t of ts) setKnown(node, t.member.peerId, t.member.liveness)
    for (const t of ts) if (t.type === 'leave') deaths++
    for (const t of ts) {
      // The roles controller wakes on member:join and member:leave; its ticker sees the rest.
      if (t.type === 'join' || t.type === 'leave') wakeSoon(node)
      // The ring closed over a dead member: whoever it watched may now be ours to watch.
      if (t.type === 'leave') for (const peer of node.known.keys()) if (peer !== t.member.peerId) expectFrom(node, peer)
      if ((t.type === 'join' || t.type === 'recover') && table(node).disputed(t.member.peerId) !== undefined) {
        tellDisputed(node, byId.get(t.member.peerId) as N, timing.suspectAfterMs)
      }
    }
  }
  const ring = (node: N): NonNullable<N['ring']> => {
    if (node.ring?.version === node.ringVersion) return node.ring
    const ids = [node.id]
    for (const [peer, l] of node.known) if (l !== 'dead') ids.push(peer)
    const order = ringOrder(ids)
    node.ring = { version: node.ringVersion, at: new Map(order.map((id, i) => [id, i])), size: order.length }
    return node.ring
  }
  /**
   * p2p/node.ts's `expectFrom`: if, in our view, we are among `peer`'s ring successors
   * (`ringSuccessors(peer, [self, ...members not dead])`), watch for its heartbeats.
   * The ring is the same for every alive peer, so it is computed once per view.
   */
  const expectFrom = (node: N, peer: string): void => {
    if (node.known.get(peer) !== 'alive') return
    const r = ring(node)
    const from = r.at.get(peer) as number
    const distance = ((r.at.get(node.id) as number) - from + r.size) % r.size
    if (distance >= 1 && distance <= DEFAULT_HEARTBEAT_FANOUT) table(node).expect(peer, clock.now())
  }
  const tellDisputed = (node: N, peer: N, waitMs: number): void => {
    if (node.disputes.has(peer.index)) return
    node.disputes.add(peer.index)
    queue.push(clock.now() + waitMs, { type: 'dispute', node: node.index, peer: peer.index, epoch: node.epoch, waitMs })
  }
  /** Gossips a rumour to every connected peer; returns how many it was sent to. */
  const spread = (node: N, r: Rumour): number => {
    let recipients = 0
    for (const i of node.links.keys()) {
      const to = nodes[i] as N
      if (!reachable(node, to)) continue
      recipients++
      if (rng.float() < loss) continue
      queue.push(clock.now() + 1 + rng.int(rumourDelay), { type: 'rumour', to: i, from: node.index, rumour: r })
    }
    return recipients
  }
  const sendRefute = (node: N): void => {
    const r = node.pendingRefute
    if (r !== undefined && spread(node, r) > 0) node.pendingRefute = undefined
  }
  const applyRumour = (node: N, r: Rumour, relayRaised: boolean): void => {
    const peer = byId.get(r.peer)
    const { transitions: ts, refute, relay } = table(node).rumour(r, clock.now(), { raise: relayRaised && peer !== undefined && node.links.has(peer.index) })
    // A suspicion or death may add a row or move dead to suspect with no transition to tell.
    if (r.state !== 'alive' && ts.length === 0 && r.peer !== node.id) {
      const l = table(node).get(r.peer)?.liveness
      if (l !== undefined) setKnown(node, r.peer, l)
    }
    transitions(node, ts)
    if (relay !== undefined) spread(node, relay)
    if (refute === undefined) return
    const t = clock.now()
    if (node.lastRefute !== undefined && node.lastRefute.incarnation === refute.incarnation && t - node.lastRefute.at < timing.suspectAfterMs) return
    node.lastRefute = { incarnation: refute.incarnation, at: t }
    node.pendingRefute = refute
    sendRefute(node)
  }
  const sendHeartbeats = (node: N): void => {
    const m = table(node)
    const key = `${node.linkVersion}/${node.memberVersion}`
    if (key !== node.beatKey) {
      node.beatKey = key
      const eligible: string[] = []
      const known = node.known
      for (const i of node.links.keys()) {
        const id = (nodes[i] as N).id
        if (known.get(id) !== 'dead') eligible.push(id)
      }
      const targets = new Set(ringSuccessors(node.id, eligible, DEFAULT_HEARTBEAT_FANOUT).map((id) => (byId.get(id) as N).index))
      for (const i of node.beatTargets) {
        if (targets.has(i)) continue
        // The last frame: "you are no longer my successor".
        const to = nodes[i] as N
        if (linked(to, node)) { table(to).unwatch(node.id); transitions(to, table(to).heard(node.id, clock.now(), m.incarnation())) }
      }
      node.beatTargets = targets
    }
    for (const i of node.beatTargets) {
      const to = nodes[i] as N
      if (linked(to, node)) transitions(to, table(to).watch(node.id, clock.now(), m.incarnation()))
    }
  }
  const liveness = (node: N): void => {
    const m = table(node)
    const t = clock.now()
    if (t >= node.nextBeat) {
      sendHeartbeats(node)
      for (const i of node.links.keys()) m.touch((nodes[i] as N).id, t)
      const quiet = t - node.lastChangeAt >= QUIET_AFTER_DEAD_PERIODS * timing.deadAfterMs
      node.beatMs = nextBeatInterval(node.beatMs, timing.heartbeatIntervalMs, quiet)
      node.nextBeat = t + node.beatMs
    }
    const { transitions: ts, publish } = m.tick(t)
    transitions(node, ts)
    for (const r of publish) spread(node, r)
    if (node.pendingRefute !== undefined && t >= node.nextBeat - node.beatMs) sendRefute(node)
    const due = Math.min(node.nextBeat, m.nextDeadline(t) ?? node.nextBeat)
    queue.push(Math.max(t + 1, due), { type: 'liveness', node: node.index, epoch: node.epoch })
  }
  /** The membership rows `from` sends `to` in an exchange (its own row when held down or disputed). */
  const adverts = (from: N, to: N): Rumour[] => {
    const m = table(from)
    const list: Rumour[] = []
    for (const [peer, state] of from.known) if (peer !== to.id) list.push({ peer, state, incarnation: m.incarnationOf(peer) ?? 0 })
    const held = m.get(to.id)
    const disputed = m.disputed(to.id)
    if (held !== undefined && (held.liveness !== 'alive' || disputed !== undefined)) {
      list.push({ peer: to.id, state: held.liveness === 'alive' ? 'suspect' : held.liveness, incarnation: disputed ?? m.incarnationOf(to.id) ?? 0 })
    }
    const fingerprint = fingerprintRows(list.map((r) => `${r.peer}/${r.state}@${r.incarnation}`))
    if (from.sentPeers.get(to.index) === fingerprint) return []
    from.sentPeers.set(to.index, fingerprint)
    return list
  }
  const onPeers = (node: N, list: readonly Rumour[]): void => {
    const t = clock.now()
    for (const r of list) {
      if (r.peer !== node.id && r.state === 'alive') transitions(node, table(node).learn(r.peer, t, { discoveredBy: 'peer-exchange' }))
      applyRumour(node, r, false)
    }
  }
  /** One anti-entropy exchange: replicas when they differ, and membership tables. */
  const exchange = (a: N, b: N): void => {
    if (a.replica.fp !== b.replica.fp || a.replica.size !== b.replica.size) {
      let toA = false; let toB = false
      for (const h of [...b.replica.held()]) toA = merge(a, h) || toA
      for (const h of [...a.replica.held()]) toB = merge(b, h) || toB
      if (toA) wakeSoon(a)
      if (toB) wakeSoon(b)
    }
    const fromA = adverts(a, b)
    const fromB = adverts(b, a)
    onPeers(b, fromA)
    onPeers(a, fromB)
  }
  /** An admitted connection between `a` and `b`: both hear each other, and the pair exchanges. */
  const connect = (a: N, b: N): void => {
    for (const [x, y] of [[a, b], [b, a]] as const) {
      if (x.links.has(y.index) && x.links.get(y.index) !== y.epoch) disconnect(x, y)
      x.links.set(y.index, y.epoch)
      x.linkVersion++
      transitions(x, table(x).heard(y.id, clock.now()))
      expectFrom(x, y.id)
    }
    exchange(a, b)
  }
  /** `node`'s connection to `peer` closed. */
  const disconnect = (node: N, peer: N): void => {
    if (!node.links.delete(peer.index)) return
    node.linkVersion++
    node.sentPeers.delete(peer.index)
    node.beatTargets.delete(peer.index)
    const m = table(node)
    // A watched peer whose connection closed is suspect at once, not after a silent interval.
    if (m.get(peer.id)?.liveness === 'alive' && m.watching().includes(peer.id)) {
      const r: Rumour = { peer: peer.id, state: 'suspect', incarnation: m.incarnationOf(peer.id) ?? 0 }
      m.unwatch(peer.id)
      transitions(node, m.rumour(r, clock.now()).transitions)
      spread(node, r)
    }
  }
  /** Connections whose other end crashed are closed; reachable pairs without one connect. */
  const reconnect = (node: N): void => {
    for (const [i, epoch] of [...node.links]) {
      const peer = nodes[i] as N
      if (reachable(node, peer) && peer.epoch !== epoch) disconnect(node, peer)
    }
    for (const peer of nodes) if (peer !== node && reachable(node, peer) && !node.links.has(peer.index)) connect(node, peer)
  }

  return {
    reachable,
    put,
    replay: gossip,
    members: (node) => view(node),
    start: (node) => {
      const t = clock.now()
      node.membership = createMembership({ timing, self: node.id, incarnation: t })
      node.known.clear()
      node.memberVersion++
      node.ringVersion++
      node.beatMs = timing.heartbeatIntervalMs
      node.nextBeat = t
      node.lastChangeAt = t
      const e = node.epoch
      queue.push(t + rng.int(timing.antiEntropyIntervalMs), { type: 'anti-entropy', node: node.index, epoch: e })
      queue.push(t, { type: 'liveness', node: node.index, epoch: e })
      // Its roles layer runs on what its state file held before discovery and admission
      // connect it (an mDNS round at most).
      queue.push(t + 1 + rng.int(timing.mdnsIntervalMs), { type: 'discover', node: node.index, epoch: e })
    },
    stop: (node) => {
      // Peers that can reach it see its connections close; the others at the heal.
      for (const i of node.links.keys()) {
        const peer = nodes[i] as N
        if (reachable(node, peer)) disconnect(peer, node)
      }
      node.replica.lose()
      node.flushPending = false
      delete node.membership
      node.links.clear()
      node.beatTargets.clear()
      node.beatKey = ''
      node.disputes.clear()
      node.sentPeers.clear()
      delete node.pendingRefute
      delete node.lastRefute
    },
    heal: () => { for (const x of nodes) if (x.up) reconnect(x) },
    handle: (ev) => {
      switch (ev.type) {
        case 'deliver': {
          const to = nodes[ev.to] as N
          const from = nodes[ev.from] as N
          if (!linked(to, from)) break
          // Gossip from a peer is first-hand evidence that it is alive.
          transitions(to, table(to).heard(from.id, clock.now()))
          if (merge(to, ev.entry)) wakeSoon(to)
          break
        }
        case 'rumour': {
          const to = nodes[ev.to] as N
          const from = nodes[ev.from] as N
          if (linked(to, from)) applyRumour(to, ev.rumour, true)
          break
        }
        case 'discover': {
          const node = nodes[ev.node] as N
          if (node.epoch === ev.epoch && node.up) reconnect(node)
          break
        }
        case 'liveness': {
          const node = nodes[ev.node] as N
          if (node.epoch === ev.epoch && node.up) liveness(node)
          break
        }
        case 'flush': {
          const node = nodes[ev.node] as N
          if (node.epoch !== ev.epoch || !node.up) break
          node.flushPending = false
          node.replica.flushed()
          break
        }
        case 'dispute': {
          const node = nodes[ev.node] as N
          const peer = nodes[ev.peer] as N
          if (node.epoch !== ev.epoch || !node.up) break
          node.disputes.delete(peer.index)
          if (table(node).disputed(peer.id) === undefined || !linked(node, peer)) break
          exchange(node, peer)
          if (table(node).disputed(peer.id) !== undefined) tellDisputed(node, peer, Math.min(2 * ev.waitMs, DISPUTE_MAX_WAIT_MS))
          break
        }
        case 'anti-entropy': {
          const node = nodes[ev.node] as N
          if (node.epoch !== ev.epoch || !node.up) break
          const peers = [...node.links.keys()].map((i) => nodes[i] as N).filter((x) => reachable(node, x))
          const peer = peers.length === 0 ? undefined : peers[rng.int(peers.length)]
          if (peer !== undefined && rng.float() >= loss) exchange(node, peer)
          queue.push(clock.now() + timing.antiEntropyIntervalMs, ev)
          break
        }
      }
    },
    deaths: () => deaths
  }
}
