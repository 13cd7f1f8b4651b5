import type { Connection, Stream } from '@libp2p/interface'
import type { Clock } from '../util/clock.ts'
import { errorMessage } from '../util/errors.ts'
import type { Logger } from '../util/log.ts'
import type { RandomSource } from '../util/random.ts'
import { admitAsInitiator, admitAsResponder } from './admission.ts'
import { AdmissionError, type AdmissionFailure } from './errors.ts'
import { deadline, DeadlineError, withStream } from './stream-io.ts'

/** How long a peer has to complete the token proof after a connection opens, ms (a starved box at boot needs seconds). @default 10000 */
export const DEFAULT_ADMISSION_TIMEOUT_MS = 10_000

/** What the admission gate is given. */
export interface AdmissionGateComponents {
  self: string
  clock: Clock
  random: RandomSource
  log: Logger
  /** The token's admission key. */
  key: Uint8Array
  /** The admission protocol id. */
  protocol: string
  /**
   * A token rotation's previous generation: its admission protocol id and key, honoured
   * while `honoured()` (the grace). A peer proves either generation, on that generation's
   * protocol; the dialling side offers the current protocol first. @default none
   */
  previous?: { protocol: string, key: Uint8Array, honoured: () => boolean }
  timeoutMs: number
  /** A peer passed the proof on `conn` (`first`: it was not admitted on another connection). */
  onAdmitted: (peer: string, conn: Connection, initiator: boolean, first: boolean) => void
  /** A peer failed the proof; its connection is being closed. */
  onFailed: (peer: string, reason: AdmissionFailure) => void
  /** Open connections to `peer` (a proof that passed on a connection closed meanwhile counts while another is open). @default none */
  openConnections?: (peer: string) => number
  /** Test hook: while it returns true no proof is run or answered, like a hung process. */
  frozen?: () => boolean
}

/**
 * The admission gate: every connection, whichever side opened it, must carry the
 * token proof (admission.ts) within `timeoutMs`, or it is closed. The dialling side
 * runs the proof; the answering side waits for it. Nothing but the proof is served to
 * a peer until it passes: other protocols ask `admittedOrSoon` first.
 */
export interface AdmissionGate {
  start: (signal: AbortSignal) => void
  /** Peers that passed the proof on a connection that is still open. */
  readonly admitted: ReadonlySet<string>
  /** A connection we opened: run the proof as the initiator. */
  outbound: (conn: Connection) => Promise<void>
  /** A connection the peer opened: close it unless the peer proves itself in time. */
  inbound: (conn: Connection) => void
  /** The proof protocol's handler (answering side). */
  handle: (stream: Stream, conn: Connection) => Promise<void>
  /**
   * Whether `peer` is admitted, waiting first while our own proof to it is in flight: the
   * answering side admits us before we have read its answer, and may open a stream (a
   * state exchange, heartbeats) that reaches us in that gap.
   */
  admittedOrSoon: (peer: string, signal: AbortSignal) => Promise<boolean>
  /** The peer's last connection closed. */
  disconnected: (peer: string) => void
  /** Forgets every admission (the node stopped). */
  clear: () => void
  /**
   * Sets the peers removed from the site: each is refused admission from now on
   * (`revoked`), whatever proof it gives, and is no longer admitted. Replaces the
   * previous set. Returns the peers that were admitted until now (their connections
   * are for the caller to close).
   */
  revoke: (peers: ReadonlySet<string>) => string[]
  failures: () => Record<AdmissionFailure, number>
  /** Proofs that passed since start, one per connection admitted (a peer's second connection is not proved again). */
  admissions: () => number
}

/** Creates the gate; it admits nobody before `start`. */
export function createAdmissionGate (c: AdmissionGateComponents): AdmissionGate {
  const { self, clock, random, log, key, protocol, timeoutMs, previous } = c
  /** The key of the generation whose protocol a stream negotiated, or undefined when that generation is not honoured. */
  const keyOf = (negotiated: string): Uint8Array | undefined => {
    if (previous !== undefined && negotiated === previous.protocol) return previous.honoured() ? previous.key : undefined
    return key
  }
  let signal: AbortSignal | undefined
  const admitted = new Set<string>()
  /** Peers with an admission exchange in flight. */
  const admitting = new Set<string>()
  /** Callbacks waiting for an admission in flight to end. */
  const waiters = new Map<string, Array<() => void>>()
  const failures: Record<AdmissionFailure, number> = { 'bad-proof': 0, timeout: 0, protocol: 0, revoked: 0 }
  let passed = 0
  let revoked: ReadonlySet<string> = new Set()
  const refuse = (conn: Connection, peer: string): void => {
    fail(conn, 'revoked', new AdmissionError('revoked', `admission: peer ${peer} was removed from the site`))
  }
  const live = (): boolean => signal !== undefined && !signal.aborted && c.frozen?.() !== true

  const settle = (peer: string): void => {
    const waiting = waiters.get(peer)
    if (waiting === undefined) return
    waiters.delete(peer)
    for (const wake of waiting) wake()
  }

  const fail = (conn: Connection, reason: AdmissionFailure, err: unknown): void => {
    failures[reason]++
    const peer = conn.remotePeer.toString()
    c.onFailed(peer, reason)
    log.warn('peer failed admission, disconnecting', { peer, reason, error: errorMessage(err) })
    conn.abort(err instanceof Error ? err : new Error(String(err)))
  }

  const accept = (peer: string, conn: Connection, initiator: boolean): void => {
    if (!live()) return
    if (revoked.has(peer)) { refuse(conn, peer); return }
    // A proof that passed on a connection already closed admits the peer only while
    // another connection to it is open: after its last one closed, `peer:disconnect` has
    // gone by, nothing would take the peer out again, and a stopped peer would stay
    // present (its entries never collected).
    if (conn.status !== 'open' && (c.openConnections?.(peer) ?? 0) === 0) return
    const first = !admitted.has(peer)
    passed++
    admitted.add(peer)
    c.onAdmitted(peer, conn, initiator, first)
    settle(peer)
  }

  const reasonOf = (d: AbortSignal, err: unknown): AdmissionFailure =>
    d.reason instanceof DeadlineError ? 'timeout' : err instanceof AdmissionError ? err.reason : 'protocol'

  return {
    start (s) { signal = s },
    admitted,

    async outbound (conn) {
      const peer = conn.remotePeer.toString()
      if (signal === undefined || !live() || admitted.has(peer) || admitting.has(peer)) return
      if (revoked.has(peer)) { refuse(conn, peer); return }
      const s = signal
      admitting.add(peer)
      const d = deadline(clock, timeoutMs, `admission of ${peer}`, s)
      try {
        const offered = previous?.honoured() === true ? [protocol, previous.protocol] : protocol
        const stream = await conn.newStream(offered, { signal: d.signal })
        const k = keyOf(stream.protocol ?? protocol) ?? key
        await withStream(stream, d.signal, async () => { await admitAsInitiator(stream, { key: k, self, remote: peer, random, signal: d.signal }) })
        accept(peer, conn, true)
      } catch (err) {
        if (s.aborted) return
        fail(conn, reasonOf(d.signal, err), err)
      } finally {
        d.cancel()
        admitting.delete(peer)
        settle(peer)
      }
    },

    inbound (conn) {
      if (signal === undefined || !live()) return
      const peer = conn.remotePeer.toString()
      if (revoked.has(peer)) { refuse(conn, peer); return }
      // The dialling side runs the proof; if it has not succeeded in time, the connection goes.
      clock.sleep(timeoutMs, signal).then(() => {
        if (!admitted.has(peer) && conn.status === 'open') fail(conn, 'timeout', new AdmissionError('timeout', `admission: peer ${peer} gave no token proof within ${timeoutMs} ms`))
      }, () => {})
    },

    async handle (stream, conn) {
      if (signal === undefined || !live()) { stream.abort(new Error('stopping')); return }
      const s = signal
      const peer = conn.remotePeer.toString()
      if (revoked.has(peer)) { stream.abort(new Error('revoked')); refuse(conn, peer); return }
      const k = keyOf(stream.protocol ?? protocol)
      if (k === undefined) {
        stream.abort(new Error('grace ended'))
        fail(conn, 'bad-proof', new AdmissionError('bad-proof', `admission: peer ${peer} proves the previous network token, whose grace has ended`))
        return
      }
      const d = deadline(clock, timeoutMs, `admission of ${peer}`, s)
      try {
        await withStream(stream, d.signal, async () => {
          await admitAsResponder(stream, { key: k, self, remote: peer, random, signal: d.signal, onAccepted: () => { accept(peer, conn, false) } })
        })
      } catch (err) {
        if (s.aborted || admitted.has(peer)) return
        fail(conn, reasonOf(d.signal, err), err)
      } finally {
        d.cancel()
      }
    },

    async admittedOrSoon (peer, s) {
      if (admitted.has(peer) || !admitting.has(peer) || s.aborted) return admitted.has(peer)
      await new Promise<void>((resolve) => {
        const done = (): void => { s.removeEventListener('abort', done); resolve() }
        const list = waiters.get(peer) ?? []
        list.push(done)
        waiters.set(peer, list)
        s.addEventListener('abort', done, { once: true })
      })
      return admitted.has(peer)
    },

    disconnected (peer) { admitted.delete(peer) },
    clear () { admitted.clear() },
    revoke (peers) {
      revoked = new Set([...peers].filter((p) => p !== self))
      const was = [...admitted].filter((p) => revoked.has(p))
      for (const p of was) admitted.delete(p)
      return was
    },
    failures: () => ({ ...failures }),
    admissions: () => passed
  }
}
