import { CID } from 'multiformats/cid'
import { create as createDigest } from 'multiformats/hashes/digest'
import type { Timing } from '../config/types.ts'
import type { DerivedKeys } from '../token/index.ts'
import type { Clock } from '../util/clock.ts'
import { errorMessage } from '../util/errors.ts'
import type { Logger } from '../util/log.ts'
import type { Loops } from './loops.ts'
import { deadline } from './stream-io.ts'

/**
 * Once a node has admitted peers, peer exchange finds the rest of the site and a DHT
 * round is only a safety net: lookups back off while nothing new turns up, up to half an
 * epoch between rounds.
 */
const rendezvousMaxBackoff = (epochMs: number, intervalMs: number): number => Math.max(1, Math.floor(epochMs / 2 / intervalMs))
/** A lookup stops after this many provider answers that brought nothing new (records for one key sit on the same closest nodes). */
const RENDEZVOUS_QUIET_ANSWERS = 2

/** The rendezvous record key as a CID (raw codec, sha2-256 multihash around the derived 32 bytes). */
export function rendezvousCid (key: Uint8Array): CID {
  return CID.createV1(0x55, createDigest(0x12, key))
}

/** A provider a lookup found. */
export interface Provider {
  id: string
  addresses: string[]
}

/** A query event, as the rendezvous round counts them (kad-dht's events in production). */
export type RendezvousEvent = { name: 'PROVIDER', providers: Provider[] } | { name: string }

/** The DHT operations a rendezvous round uses. */
export interface RendezvousDht {
  provide: (cid: CID, signal: AbortSignal) => AsyncIterable<{ name: string }>
  findProviders: (cid: CID, signal: AbortSignal) => AsyncIterable<RendezvousEvent>
}

/** What rendezvous is given. */
export interface RendezvousComponents {
  self: string
  clock: Clock
  log: Logger
  timing: Pick<Timing, 'rendezvousIntervalMs' | 'rendezvousEpochMs'>
  /** The DHT, or undefined when it is off. */
  dht: RendezvousDht | undefined
  rendezvousKey: DerivedKeys['rendezvousKey']
  /** Open connections (a lookup with none cannot reach anyone). */
  connectionCount: () => number
  /** Peers admitted on a connection that is still open. */
  admitted: ReadonlySet<string>
  /** Whether we know `peer` already (known-peer list or admitted). */
  knows: (peer: string) => boolean
  /** A provider found: remembered and maybe dialled. */
  learnPeer: (peer: string, addresses: string[], label: string) => void
  /** When the last member joined our view (the site is still forming while joins keep coming). */
  lastJoinAt: () => number
}

/** Rendezvous counters for status. */
export interface RendezvousStats { rounds: number, providersFound: number }

/** DHT rendezvous: provide and look up the token's time-bucketed key to find peers beyond the LAN. */
export interface Rendezvous {
  start: (signal: AbortSignal, loops: Loops) => void
  /** One round; resolves to the number of peers found that we did not know. */
  round: () => Promise<number>
  stats: () => RendezvousStats
}

/** Creates the rendezvous service. */
export function createRendezvous (c: RendezvousComponents): Rendezvous {
  const { self, clock, log, timing } = c
  const now = (): number => clock.now()
  let signal: AbortSignal | undefined
  const stats: RendezvousStats = { rounds: 0, providersFound: 0 }
  let lastProvide: { epoch: number, at: number } | undefined

  /**
   * One round: provide the current epoch's key (when the epoch changed or halfway through
   * it), then look up the current and previous epoch's keys and report what we find.
   */
  const round = async (): Promise<number> => {
    const dht = c.dht
    if (signal === undefined || dht === undefined || c.connectionCount() === 0) return 0
    const t = now()
    const rk = c.rendezvousKey(t, timing.rendezvousEpochMs)
    const d = deadline(clock, Math.max(timing.rendezvousIntervalMs, 5_000), 'rendezvous', signal)
    let fresh = 0
    const queryEvents: Record<string, number> = {}
    stats.rounds++
    try {
      // Re-provide on each epoch change and halfway through an epoch (a record holder may have restarted).
      if (lastProvide === undefined || lastProvide.epoch !== rk.epoch || t - lastProvide.at >= timing.rendezvousEpochMs / 2) {
        try {
          for await (const ev of dht.provide(rendezvousCid(rk.current), d.signal)) { queryEvents[`provide:${ev.name}`] = (queryEvents[`provide:${ev.name}`] ?? 0) + 1 }
          lastProvide = { epoch: rk.epoch, at: t }
        } catch (err) {
          log.debug('rendezvous provide failed', { error: errorMessage(err) })
        }
      }
      // The previous epoch's key matters only until every node has re-provided under the new one.
      const sinceEpoch = t - rk.epoch * timing.rendezvousEpochMs
      const lookups = sinceEpoch < timing.rendezvousEpochMs / 2 ? [rk.current, rk.previous] : [rk.current]
      for (const key of lookups) {
        try {
          let quiet = 0
          for await (const ev of dht.findProviders(rendezvousCid(key), d.signal)) {
            queryEvents[ev.name] = (queryEvents[ev.name] ?? 0) + 1
            if (!('providers' in ev)) continue
            let added = 0
            for (const p of ev.providers) {
              if (p.id === self) continue
              stats.providersFound++
              if (!c.knows(p.id)) { fresh++; added++ }
              c.learnPeer(p.id, p.addresses, 'dht')
            }
            // Every holder of the key's records answers with the same list: stop once answers repeat what we know.
            if (added === 0 && ++quiet >= RENDEZVOUS_QUIET_ANSWERS) break
          }
        } catch (err) {
          log.debug('rendezvous lookup failed', { error: errorMessage(err) })
        }
      }
    } finally {
      d.cancel()
    }
    log.debug('rendezvous round', { fresh, ms: now() - t, events: queryEvents })
    return fresh
  }

  return {
    /** Ticker: the configured interval while the view changes or we are alone, backing off while nothing new turns up. */
    start (s, loops) {
      signal = s
      let factor = 1
      loops.spawn('rendezvous', { everyMs: timing.rendezvousIntervalMs, firstDelayMs: timing.rendezvousIntervalMs }, async () => {
        // While members keep joining, the LAN (or a bootstrap peer) is finding the site: a DHT round now
        // would only dial the 20 closest peers of a key in the middle of the boot. It runs once joins pause.
        if (c.admitted.size > 0 && now() - c.lastJoinAt() < timing.rendezvousIntervalMs) return timing.rendezvousIntervalMs * factor
        try {
          const fresh = await round()
          factor = fresh > 0 || c.admitted.size === 0 ? 1 : Math.min(factor * 2, rendezvousMaxBackoff(timing.rendezvousEpochMs, timing.rendezvousIntervalMs))
        } catch (err) {
          if (!s.aborted) log.warn('rendezvous failed', { error: errorMessage(err) })
        }
        return timing.rendezvousIntervalMs * factor
      })
    },
    round,
    stats: () => ({ ...stats })
  }
}
