import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { PRESETS } from '../../config/index.ts'
import { ManualClock } from '../../util/clock.ts'
import { silentLogger } from '../../util/log.ts'
import { createLoops, type Loops } from '../../p2p/loops.ts'
import { createMembership, type Membership, type Rumour } from '../../p2p/membership.ts'
import { createLiveness, type BeatStream, type Liveness, type LivenessComponents } from '../../p2p/liveness.ts'

/**
 * An in-memory network at the services' boundary, on one manual clock: heartbeat
 * streams and rumour gossip between liveness services, with links that can be cut,
 * nodes that can be isolated, and `heal()` to bring everything back. A message on a cut
 * link is lost, as on a network that drops packets while the connection stays up.
 */

/** The `lab` timing: 100 ms heartbeats, suspect after 300 ms, dead after 600 ms. */
export const LAB = PRESETS.lab

/** Fresh real peer ids (the wire checks that ids parse). */
export async function peerIds (n: number): Promise<string[]> {
  return await Promise.all(Array.from({ length: n }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))
}

/** Lets queued deliveries and the loops' `setImmediate` turns run. */
export async function flush (): Promise<void> {
  for (let i = 0; i < 4; i++) await new Promise<void>((resolve) => { setImmediate(resolve) })
}

/** One node of the fake network. */
export interface FakeMember {
  id: string
  membership: Membership
  liveness: Liveness
  /** Peers it holds admitted (every other node unless told). */
  admitted: Set<string>
  /** Anti-entropy exchanges liveness asked for (disputes). */
  exchanges: string[]
  /** Rumours it spread. */
  spread: Rumour[]
  controller: AbortController
  loops: Loops
}

export class FakeNet {
  readonly clock = new ManualClock(1_000_000)
  readonly members = new Map<string, FakeMember>()
  private readonly cuts = new Set<string>()
  private readonly isolated = new Set<string>()

  /** Whether a message from `a` reaches `b` now. */
  linked (a: string, b: string): boolean {
    return !this.isolated.has(a) && !this.isolated.has(b) && !this.cuts.has(pair(a, b))
  }

  cut (a: string, b: string): void { this.cuts.add(pair(a, b)) }
  isolate (a: string): void { this.isolated.add(a) }
  heal (): void { this.cuts.clear(); this.isolated.clear() }

  /** Adds and starts a liveness service for each id, all admitted to each other. */
  async start (ids: string[], extra: Partial<LivenessComponents> = {}): Promise<FakeMember[]> {
    const added = ids.map((id) => this.add(id, extra))
    for (const m of this.members.values()) for (const o of this.members.keys()) if (o !== m.id) m.admitted.add(o)
    for (const m of added) for (const o of m.admitted) m.liveness.admitted(o, true, {})
    for (const m of added) m.liveness.start(m.controller.signal, m.loops)
    await flush()
    return added
  }

  private add (id: string, extra: Partial<LivenessComponents>): FakeMember {
    const clock = this.clock
    const membership = createMembership({ timing: LAB, self: id, incarnation: clock.now(), staleAfterMs: Infinity })
    const controller = new AbortController()
    const m: FakeMember = {
      id,
      membership,
      admitted: new Set(),
      exchanges: [],
      spread: [],
      controller,
      loops: createLoops(clock, controller.signal, silentLogger),
      liveness: undefined as unknown as Liveness
    }
    m.liveness = createLiveness({
      self: id,
      clock,
      log: silentLogger,
      timing: LAB,
      membership,
      admitted: m.admitted,
      transport: { open: async (peer) => this.stream(id, peer) },
      streamTimeoutMs: 1_000,
      fanout: 1,
      spread: async (r) => {
        m.spread.push(r)
        let reached = 0
        for (const o of this.members.values()) {
          if (o.id === id || !this.linked(id, o.id)) continue
          reached++
          queueMicrotask(() => { o.liveness.applyRumour(r, true) })
        }
        return reached > 0
      },
      exchange: async (peer) => { m.exchanges.push(peer); this.exchange(id, peer) },
      digestHash: () => 0,
      onDigest: () => {},
      onTransition: () => {},
      ...extra
    })
    this.members.set(id, m)
    return m
  }

  private stream (from: string, to: string): BeatStream {
    let open = true
    return {
      members: true,
      get open () { return open },
      busy: false,
      send: async (body) => {
        if (!this.linked(from, to)) return
        const target = this.members.get(to)
        queueMicrotask(() => { if (target !== undefined && !target.controller.signal.aborted) target.liveness.receive(from, body) })
      },
      end: async (body) => {
        if (this.linked(from, to)) this.members.get(to)?.liveness.receive(from, body)
        open = false
      },
      abort: () => { open = false },
      onClose: () => {}
    }
  }

  /**
   * What an anti-entropy exchange does for membership: each side hands the other the row
   * it holds for it when that row is down or disputed (see anti-entropy's adverts), and
   * the other refutes it.
   */
  exchange (a: string, b: string): void {
    if (!this.linked(a, b)) return
    for (const [from, to] of [[a, b], [b, a]] as const) {
      const m = this.members.get(from)?.membership
      const held = m?.get(to)
      const disputed = m?.disputed(to)
      if (m === undefined || held === undefined || (held.liveness === 'alive' && disputed === undefined)) continue
      const state = held.liveness === 'alive' ? 'suspect' : held.liveness
      this.members.get(to)?.liveness.applyRumour({ peer: to, state, incarnation: disputed ?? m.incarnationOf(to) ?? 0 }, false)
    }
  }

  /** An anti-entropy round between every linked pair. */
  exchangeAll (): void {
    const ids = [...this.members.keys()]
    for (const a of ids) for (const b of ids) if (a < b) this.exchange(a, b)
  }

  /** Moves the clock forward in 10 ms steps, letting every loop and delivery run at each. */
  async run (ms: number): Promise<void> {
    for (let t = 0; t < ms; t += 10) {
      await this.clock.advanceAsync(Math.min(10, ms - t))
      await flush()
    }
  }

  /** How `viewer` holds `peer`. */
  liveness (viewer: string, peer: string): string | undefined {
    return this.members.get(viewer)?.membership.get(peer)?.liveness
  }

  /** Every member's view and what it spread, for assertion messages. */
  describe (): string {
    const short = (id: string): string => id.slice(-4)
    return JSON.stringify([...this.members.values()].map((m) => ({
      id: short(m.id),
      watching: m.membership.watching().map(short),
      view: m.membership.list().map((r) => `${short(r.peerId)}:${r.liveness}@${m.membership.incarnationOf(r.peerId) ?? 0}`),
      spread: m.spread.map((r) => `${short(r.peer)}:${r.state}@${r.incarnation}`)
    })))
  }

  async stop (): Promise<void> {
    for (const m of this.members.values()) { m.controller.abort(); m.liveness.stop() }
    await Promise.all([...this.members.values()].map(async (m) => { await m.loops.settled() }))
  }
}

function pair (a: string, b: string): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`
}
