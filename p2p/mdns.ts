import multicastDns from 'multicast-dns'
import { peerIdFromString } from '@libp2p/peer-id'
import { systemClock, type Clock } from '../util/clock.ts'
import { errorMessage } from '../util/errors.ts'
import { silentLogger, type Logger } from '../util/log.ts'
import { cryptoRandom, type RandomSource } from '../util/random.ts'
import { encodeMdnsRecords, quote, readMdnsPacket, validateMdnsRecords, type MdnsPeerVerdict, type MdnsRecord } from './mdns-records.ts'

import { belowMinimumGap, fastPhaseOffsets, jittered, quietGapCap } from './mdns-gaps.ts'

export {
  MDNS_BELOW_MINIMUM_PER_INTERVAL, MDNS_BELOW_MINIMUM_SHORTEST, MDNS_FAST_FIRST_GAP_MS, MDNS_JITTER, MDNS_QUIET_INTERVALS_PER_NODE,
  MDNS_STEADY_LONGEST_MS, MDNS_STEADY_MAX_INTERVALS, belowMinimumGap, fastPhaseOffsets, jittered, quietGapCap
} from './mdns-gaps.ts'
export {
  MDNS_MAX_ADDRESSES, MDNS_MAX_TXT_BYTES, MDNS_RECORD_TTL, encodeMdnsRecords, readMdnsPacket, validateMdnsRecords,
  type MdnsPacketView, type MdnsPeerVerdict, type MdnsRecord
} from './mdns-records.ts'

/**
 * LAN discovery over mDNS, with DNS-SD records shaped like libp2p's mDNS spec
 * (so @libp2p/mdns nodes can still read them) but a cheaper conversation.
 *
 * Why not @libp2p/mdns: it queries every interval and every node answers every
 * query by multicast, so each node hears N−1 answers to each of N queries:
 * O(N²) packets per interval per node, each one a peer-store write.
 *
 * Here a node talks in two phases:
 *  - fast (at start and after `nudge()`): a PTR query at 0, 250 ms, 500 ms,
 *    1 s, 2 s, 4 s … while below `intervalMs`. The query carries our own
 *    records, so every receiver learns us from the query itself; receivers
 *    answer by unicast to the querier only, so the querier learns everyone
 *    and nobody else hears the answers.
 *  - steady: unsolicited announcements (a response packet with our records).
 *    They are not queries, so nobody answers. The first follows the last query
 *    by `intervalMs`; while nothing changes the gap doubles after each one, up
 *    to `MDNS_STEADY_MAX_INTERVALS` intervals (half the records' TTL at the
 *    default interval) or, on a larger site, two intervals per node up
 *    (`quietGapCap`). A peer we had not heard, a peer's new addresses or our
 *    own new addresses bring the next announcement within an interval again.
 *    The gap stays at one interval while a member is missing, and is shorter
 *    while fewer than minimum_nodes are up (`missing`, `minimumNodes`).
 * A quiet site therefore costs each node at most about one packet per two
 * intervals, whatever its size, instead of N−1 per interval (docs/decisions.md,
 * P2P-15, P2P-35), and a box that joins is still announced to within an
 * interval by everyone, even if it missed their unicast answers.
 *
 * Unicast answers go to the querier's source address and port. The querier
 * sends from the shared mDNS port, so if another process on its host (an
 * Avahi daemon) bound that port later, the kernel may hand the answer to that
 * process instead. Nothing breaks: the querier still hears every peer's next
 * announcement: its query carried its records, so everyone heard a new peer
 * and announces within an interval.
 */

/** The standard mDNS port. @default 5353 */
export const DEFAULT_MDNS_PORT = 5353
/** The standard IPv4 mDNS group. @default '224.0.0.251' */
export const DEFAULT_MDNS_IP = '224.0.0.251'
/** A querier is answered at most once per this many ms (it may re-send a burst). */
export const MDNS_ANSWER_HOLDOFF_MS = 200
/** Most peers and queriers remembered for dedupe and rate limits; the oldest are forgotten first. */
const MAX_REMEMBERED = 1024

/** Where a packet came from, or where a unicast answer goes. */
export interface MdnsRemote {
  address: string
  port: number
}

/** Called when a send completed or failed. */
export type MdnsSendCallback = (err: Error | null) => void

/**
 * The part of the `multicast-dns` API we use. Incoming packets are `unknown`:
 * they come off the wire and are validated field by field.
 */
export interface MdnsSocket {
  /** Multicasts a query packet. */
  query(packet: { questions: Array<{ name: string, type: 'PTR', class: 'IN' }>, answers: MdnsRecord[] }, callback: MdnsSendCallback): void
  /** Sends a response packet: multicast without `rinfo`, unicast to `rinfo` with it. */
  respond(packet: { answers: MdnsRecord[] }, rinfo: MdnsRemote | undefined, callback: MdnsSendCallback): void
  on(event: 'query' | 'response', listener: (packet: unknown, rinfo: MdnsRemote) => void): unknown
  on(event: 'error' | 'warning', listener: (err: Error) => void): unknown
  removeListener(event: 'query' | 'response', listener: (packet: unknown, rinfo: MdnsRemote) => void): unknown
  removeListener(event: 'error' | 'warning', listener: (err: Error) => void): unknown
  /** Closes the socket; calls back when closed. */
  destroy(callback?: () => void): void
}

/** Opens a socket on `port` joined to the group `ip`. */
export type MdnsSocketFactory = (options: { port: number, ip: string }) => MdnsSocket

/** The real socket: `multicast-dns` on all IPv4 interfaces. */
export const multicastDnsSocket: MdnsSocketFactory = ({ port, ip }) => multicastDns({ port, ip })

/** Options of `createMdnsDiscovery`. */
export interface MdnsDiscoveryInit {
  /** DNS-SD service name, e.g. `keys.mdnsServiceName` (`_kp-<16 chars>._udp.local`, derived from the token). */
  serviceTag: string
  /** Our own peer id. */
  peerId: string
  /**
   * Our listen multiaddrs without `/p2p`. Read at each send; when it is empty
   * we send nothing (and answer nobody) until it is not.
   */
  addresses: () => string[]
  /** Steady-phase announcement interval, ms (`timing.mdnsIntervalMs`). */
  intervalMs: number
  /**
   * A peer was heard, with its addresses (without `/p2p`). Not called again
   * for the same peer and the same address set within `intervalMs`.
   */
  onPeer: (peer: string, addresses: string[]) => void
  /**
   * While this holds (a member is held dead: a partition may heal, a box come back), the
   * steady announcements do not back off: they stay at `intervalMs`, so the two sides of
   * a healed partition hear each other within an interval. @default never
   */
  missing?: () => boolean
  /** How many nodes of the site are up as far as we know (members not held dead), us included. @default 1 */
  up?: () => number
  /**
   * `minimum_nodes`. While fewer are `up`, our side cannot form without nodes it has not
   * found (the small side of a partition from boot), and the first of its announcements
   * heard across a healed partition brings it in: it announces at `belowMinimumGap`, a
   * small side every quarter interval. @default 1
   */
  minimumNodes?: number
  /** @default systemClock */
  clock?: Clock
  /** Jitter source. @default cryptoRandom */
  random?: RandomSource
  /** @default silentLogger */
  logger?: Logger
  /** Opens the socket at each `start()`. @default multicastDnsSocket */
  socket?: MdnsSocketFactory
  /** @default DEFAULT_MDNS_PORT */
  port?: number
  /** @default DEFAULT_MDNS_IP */
  ip?: string
}

/** Counters since the discovery was created. */
export interface MdnsStats {
  /** Fast-phase queries multicast. */
  queriesSent: number
  /** Steady-phase announcements multicast. */
  announcementsSent: number
  /** Unicast answers to queriers. */
  answersSent: number
  /** Every decoded packet the socket handed us, ours and strangers' included. */
  packetsReceived: number
  /** `onPeer` calls. */
  peersReported: number
  /** Packets about our service that failed validation (see `readMdnsPacket`, `validateMdnsRecords`). */
  malformed: number
  /** Packets about other services: other mDNS users, or another cluster on the same LAN. */
  foreign: number
  /** Packets carrying our own peer id: our multicast looped back, or a node using our identity. */
  ownEchoes: number
}

/** LAN discovery; see the module comment. */
export interface MdnsDiscovery {
  /** Opens the socket and begins the fast phase. Safe to call twice; works again after `stop()`. */
  start(): Promise<void>
  /** Clears timers, removes listeners and closes the socket. Safe to call twice. */
  stop(): Promise<void>
  /** Back to the fast phase (e.g. we lost members). No effect while already in it or stopped. */
  nudge(): void
  stats(): MdnsStats
}

// ---- service ---------------------------------------------------------------

/**
 * Creates LAN discovery. Nothing touches the network until `start()`.
 * Throws `RangeError` on an empty service tag, a peer id that does not parse
 * or does not fit a DNS label, or an interval that is not a positive number.
 */
export function createMdnsDiscovery (init: MdnsDiscoveryInit): MdnsDiscovery {
  const { serviceTag, peerId: self, intervalMs } = init
  if (serviceTag === '') throw new RangeError('mdns: serviceTag is empty, expected a DNS-SD service name such as _kp-abc._udp.local')
  try {
    peerIdFromString(self)
  } catch (err) {
    throw new RangeError(`mdns: peerId ${quote(self)} is not a peer id`, { cause: err })
  }
  if (Buffer.byteLength(self) > 63) throw new RangeError(`mdns: peerId ${quote(self)} is ${Buffer.byteLength(self)} bytes, expected at most 63 (one DNS label)`)
  if (!Number.isFinite(intervalMs) || intervalMs <= 0) throw new RangeError(`mdns: intervalMs ${intervalMs}, expected a positive number of ms`)
  const clock = init.clock ?? systemClock
  const random = init.random ?? cryptoRandom
  const log = (init.logger ?? silentLogger).child('mdns')
  const openSocket = init.socket ?? multicastDnsSocket
  const port = init.port ?? DEFAULT_MDNS_PORT
  const ip = init.ip ?? DEFAULT_MDNS_IP
  const offsets = fastPhaseOffsets(intervalMs)

  const stats: MdnsStats = { queriesSent: 0, announcementsSent: 0, answersSent: 0, packetsReceived: 0, peersReported: 0, malformed: 0, foreign: 0, ownEchoes: 0 }
  /** Last report per peer: its joined address set and when. */
  const reported = new Map<string, { key: string, at: number }>()
  /** Last answer per querier. */
  const answered = new Map<string, number>()
  /** Validated instances, keyed by their raw records: a steady site re-sends the same bytes, so it skips the parsing. */
  const validated = new Map<string, Extract<MdnsPeerVerdict, { kind: 'peer' }>>()

  let socket: MdnsSocket | undefined
  let running: AbortController | undefined
  let loop: Promise<void> | undefined
  /** Aborts the current wait, so a nudge takes effect at once. */
  let waking: AbortController | undefined
  /** Index into `offsets` of the next fast-phase query; undefined in the steady phase. */
  let fastStep: number | undefined
  /** Gap after the next announcement: doubles up to the cap, back to `intervalMs` on a change. */
  let steadyGap = intervalMs
  /** Set by `freshen`: the pending wait ends by then at the latest. */
  let endBy: number | undefined
  /** Our records as last sent, to notice our own new addresses. */
  let lastSentKey: string | undefined

  /** Something changed on the LAN: the next announcement comes within an interval. */
  const freshen = (): void => {
    steadyGap = intervalMs
    if (fastStep !== undefined || waking === undefined) return
    endBy = clock.now() + jittered(intervalMs, random)
    waking.abort()
  }

  const sent = (what: string): MdnsSendCallback => (err) => {
    if (err !== null && err !== undefined) log.warn(`mdns ${what} failed`, { error: errorMessage(err) })
  }

  const ourRecords = (): MdnsRecord[] => {
    let addresses: string[]
    try {
      addresses = init.addresses()
    } catch (err) {
      log.warn('mdns: reading our addresses failed', { error: errorMessage(err) })
      return []
    }
    return encodeMdnsRecords(serviceTag, self, addresses)
  }

  const send = (what: string, count: () => void, act: (s: MdnsSocket, answers: MdnsRecord[]) => void): void => {
    const s = socket
    if (s === undefined) return
    const answers = ourRecords()
    if (answers.length === 0) { log.debug(`mdns: no address to publish, ${what} skipped`); return }
    const key = answers.map((a) => a.data).join('\n')
    if (lastSentKey !== undefined && key !== lastSentKey) freshen()
    lastSentKey = key
    try {
      act(s, answers)
      count()
    } catch (err) {
      log.warn(`mdns ${what} failed`, { error: errorMessage(err) })
    }
  }

  const query = (): void => {
    send('query', () => { stats.queriesSent++ }, (s, answers) => {
      s.query({ questions: [{ name: serviceTag, type: 'PTR', class: 'IN' }], answers }, sent('query'))
    })
  }
  const announce = (): void => {
    send('announcement', () => { stats.announcementsSent++ }, (s, answers) => { s.respond({ answers }, undefined, sent('announcement')) })
  }
  const answer = (querier: string, rinfo: MdnsRemote): void => {
    const t = clock.now()
    const last = answered.get(querier)
    if (last !== undefined && t - last < MDNS_ANSWER_HOLDOFF_MS) return
    remember(answered, querier, t)
    send('answer', () => { stats.answersSent++ }, (s, answers) => {
      s.respond({ answers }, { address: rinfo.address, port: rinfo.port }, sent('answer'))
    })
  }

  const report = (peer: string, addresses: string[]): void => {
    const key = [...addresses].sort().join(' ')
    const t = clock.now()
    const last = reported.get(peer)
    if (last !== undefined && last.key === key && t - last.at < intervalMs) return
    if (last === undefined || last.key !== key) freshen()
    remember(reported, peer, { key, at: t })
    stats.peersReported++
    try {
      init.onPeer(peer, addresses)
    } catch (err) {
      log.warn('mdns: onPeer failed', { peer, error: errorMessage(err) })
    }
  }

  const validate = (instance: string, dnsaddrs: string[]): MdnsPeerVerdict => {
    const key = instance + '\n' + dnsaddrs.join('\n')
    const cached = validated.get(key)
    if (cached !== undefined) return cached
    const verdict = validateMdnsRecords(instance, dnsaddrs, self)
    if (verdict.kind === 'peer') remember(validated, key, verdict)
    return verdict
  }

  const refuse = (reason: string, rinfo: MdnsRemote): void => {
    stats.malformed++
    log.debug('mdns: packet ignored', { reason, from: `${String(rinfo?.address)}:${String(rinfo?.port)}` })
  }

  /** Never throws: whatever a packet holds, the worst outcome is a counted refusal. */
  const onPacket = (packet: unknown, rinfo: MdnsRemote, isQuery: boolean): void => {
    try {
      stats.packetsReceived++
      const view = readMdnsPacket(packet, serviceTag)
      switch (view.kind) {
        case 'foreign': stats.foreign++; return
        case 'malformed': refuse(view.reason, rinfo); return
        case 'question':
          if (isQuery) answer(`${rinfo.address}:${rinfo.port}`, rinfo)
          return
        case 'records': {
          const verdict = validate(view.instance, view.dnsaddrs)
          if (verdict.kind === 'own') { stats.ownEchoes++; return }
          if (verdict.kind === 'malformed') { refuse(verdict.reason, rinfo); return }
          report(verdict.peer, [...verdict.addresses]) // a copy: the verdict stays cached
          if (isQuery && view.asks) answer(verdict.peer, rinfo)
        }
      }
    } catch (err) {
      refuse(`handler failed: ${errorMessage(err)}`, rinfo)
    }
  }
  const onQuery = (packet: unknown, rinfo: MdnsRemote): void => { onPacket(packet, rinfo, true) }
  const onResponse = (packet: unknown, rinfo: MdnsRemote): void => { onPacket(packet, rinfo, false) }
  const onError = (err: Error): void => { log.warn('mdns socket error', { error: errorMessage(err) }) }
  const onWarning = (err: Error): void => { log.warn('mdns socket warning', { error: errorMessage(err) }) }

  /** Sleeps `ms`, or less when nudged, freshened (see `endBy`) or stopped. */
  const wait = async (ms: number, signal: AbortSignal): Promise<void> => {
    let until = clock.now() + ms
    endBy = undefined
    while (!signal.aborted) {
      const w = new AbortController()
      waking = w
      try {
        await clock.sleep(Math.max(0, until - clock.now()), w.signal)
        return
      } catch {
        // woken: nudged, stopped or freshened
      } finally {
        if (waking === w) waking = undefined
      }
      if (fastStep !== undefined || endBy === undefined) return
      until = Math.min(until, endBy)
      endBy = undefined
    }
  }

  const run = async (signal: AbortSignal): Promise<void> => {
    while (!signal.aborted) {
      let gap: number
      if (fastStep !== undefined) {
        guarded('query', query)
        const here = offsets[fastStep] ?? 0
        const next = offsets[fastStep + 1]
        fastStep = next === undefined ? undefined : fastStep + 1
        gap = next === undefined ? intervalMs : next - here
      } else {
        guarded('announcement', announce)
        gap = steadyStep()
      }
      await wait(jittered(gap, random), signal)
    }
  }
  /** The gap after this announcement; sets the one after the next (see `missing`, `minimumNodes`). */
  const steadyStep = (): number => {
    let up: number
    let missing: boolean
    try {
      up = init.up?.() ?? 1
      missing = init.missing?.() === true
    } catch (err) {
      log.warn('mdns: reading the site view failed, announcing every interval', { error: errorMessage(err) })
      up = Infinity
      missing = true
    }
    if (up < (init.minimumNodes ?? 1)) {
      steadyGap = intervalMs
      return belowMinimumGap(intervalMs, up)
    }
    const gap = steadyGap
    steadyGap = missing ? intervalMs : Math.min(steadyGap * 2, quietGapCap(intervalMs, up))
    return gap
  }
  /** One send of the loop: a failure is logged and the loop carries on at its next interval. */
  const guarded = (what: string, fn: () => void): void => {
    try {
      fn()
    } catch (err) {
      log.warn(`mdns ${what} failed, carrying on`, { error: errorMessage(err) })
    }
  }

  return {
    async start () {
      if (running !== undefined) return
      const s = openSocket({ port, ip })
      s.on('query', onQuery)
      s.on('response', onResponse)
      s.on('error', onError)
      s.on('warning', onWarning)
      socket = s
      reported.clear()
      answered.clear()
      fastStep = 0
      steadyGap = intervalMs
      lastSentKey = undefined
      running = new AbortController()
      // Never left to reject unobserved: awaited only at stop.
      loop = run(running.signal).catch((err: unknown) => { log.error('mdns loop ended', { error: errorMessage(err) }) })
      log.debug('mdns started', { serviceTag, intervalMs })
    },

    async stop () {
      const r = running
      const s = socket
      if (r === undefined || s === undefined) return
      running = undefined
      socket = undefined
      r.abort()
      waking?.abort()
      await loop
      loop = undefined
      s.removeListener('query', onQuery)
      s.removeListener('response', onResponse)
      s.removeListener('error', onError)
      s.removeListener('warning', onWarning)
      await new Promise<void>((resolve) => {
        try {
          s.destroy(resolve)
        } catch (err) {
          log.warn('mdns: closing the socket failed', { error: errorMessage(err) })
          resolve()
        }
      })
      log.debug('mdns stopped')
    },

    nudge () {
      if (running === undefined || fastStep !== undefined) return
      fastStep = 0
      waking?.abort()
    },

    stats: () => ({ ...stats })
  }
}

// ---- helpers ---------------------------------------------------------------

/** Sets `key` as the newest entry, forgetting the oldest beyond `MAX_REMEMBERED`. */
function remember<V> (map: Map<string, V>, key: string, value: V): void {
  map.delete(key)
  map.set(key, value)
  if (map.size > MAX_REMEMBERED) {
    const oldest = map.keys().next()
    if (oldest.done !== true) map.delete(oldest.value)
  }
}
