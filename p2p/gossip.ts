import type { Clock } from '../util/clock.ts'
import { errorMessage } from '../util/errors.ts'
import type { Logger } from '../util/log.ts'
import { decodeRumour, encodeRumour, type Rumour } from './membership.ts'
import type { StateStore } from './state/index.ts'
import { noteApplied } from './anti-entropy.ts'

/** Which way a gossip delta travels, for the test hook. */
export interface GossipHookEvent {
  direction: 'in' | 'out'
  /** The neighbour it came from (`in`) ; undefined for `out`. */
  peer?: string
  /** The wire entry. */
  data: Uint8Array
}

/** Test hooks of the gossip path. Never set in production. */
export interface GossipHooks {
  /** Return true to drop an outgoing or incoming gossip delta (anti-entropy must repair it). */
  dropGossip?: (event: GossipHookEvent) => boolean
  /** Replaces the bytes of an outgoing gossip delta (tests: forged, replayed or tampered entries). */
  tamperGossip?: (event: GossipHookEvent) => Uint8Array
  /** Return true to drop a membership rumour that came by gossip (a starved box that missed it). */
  dropRumour?: (rumour: Rumour) => boolean
}

/** The publish side of the pubsub (gossipsub in production). */
export interface GossipNetwork {
  /** Publishes `data` on `topic`; resolves to the peers it was sent to. */
  publish: (topic: string, data: Uint8Array) => Promise<string[]>
}

/** What gossip is given. */
export interface GossipComponents {
  self: string
  clock: Clock
  log: Logger
  network: GossipNetwork
  /** The state delta topic and the membership rumour topic. */
  topics: { state: string, members: string }
  store: StateStore
  /** Peers admitted on a connection that is still open (only their messages count). */
  admitted: ReadonlySet<string>
  /** First-hand evidence of a peer: a gossip message it passed on. */
  heard: (peer: string) => void
  /** Merges a rumour from the membership topic (and relays a raised suspicion). */
  applyRumour: (r: Rumour, relayRaised: boolean) => void
  /** A local entry's gossip reached only these peers (see anti-entropy's catch-up). */
  reached: (peers: ReadonlySet<string>, wire: Uint8Array) => void
  /** A protocol error of a kind `status().rejections` counts. */
  onProtocolError: (kind: 'malformed-frame' | 'gossip-not-admitted') => void
  hooks?: GossipHooks
}

/** Gossip: state deltas and membership rumours on two gossipsub topics. */
export interface Gossip {
  /** A message that arrived on `topic`, passed on by `from`. */
  receive: (topic: string, data: Uint8Array, from: string) => void
  /** Spreads a rumour; resolves to whether any peer got it. Throws when the publish fails. */
  spread: (r: Rumour) => Promise<boolean>
  /** Gossips a local entry's wire bytes; `onReached` learns which peers gossipsub sent it to. */
  publish: (wire: Uint8Array, onReached?: (peers: ReadonlySet<string>) => void) => void
}

const NOBODY: ReadonlySet<string> = new Set()

/** Creates the gossip service. */
export function createGossip (c: GossipComponents): Gossip {
  const { self, clock, log, network, topics, store, admitted, hooks } = c

  const onRumour = (data: Uint8Array, from: string): void => {
    const r = decodeRumour(data)
    if (r === undefined) { c.onProtocolError('malformed-frame'); log.warn('malformed membership rumour', { peer: from }); return }
    if (hooks?.dropRumour?.(r) === true) return
    c.applyRumour(r, true)
  }

  return {
    receive (topic, data, from) {
      if (topic !== topics.members && topic !== topics.state) return
      if (!admitted.has(from)) { c.onProtocolError('gossip-not-admitted'); return }
      if (topic === topics.members) { onRumour(data, from); return }
      if (hooks?.dropGossip?.({ direction: 'in', peer: from, data }) === true) return
      c.heard(from)
      store.apply([data], from).then((r) => { noteApplied(log, from, r) }, (err: unknown) => { log.error('applying gossip failed', { peer: from, error: errorMessage(err) }) })
    },

    async spread (r) {
      const recipients = await network.publish(topics.members, encodeRumour(r, self, clock.now()))
      log.debug('rumour spread', { peer: r.peer, state: r.state, incarnation: r.incarnation, recipients: recipients.length })
      return recipients.length > 0
    },

    publish (wire, onReached) {
      const reached = (peers: ReadonlySet<string>): void => { c.reached(peers, wire); onReached?.(peers) }
      // A test's dropped delta reached nobody, as far as this node can tell.
      if (hooks?.dropGossip?.({ direction: 'out', data: wire }) === true) { reached(NOBODY); return }
      const data = hooks?.tamperGossip?.({ direction: 'out', data: wire }) ?? wire
      network.publish(topics.state, data).then((recipients) => {
        reached(new Set(recipients))
      }, (err: unknown) => {
        log.debug('gossip publish failed', { error: errorMessage(err) })
        reached(NOBODY)
      })
    }
  }
}
