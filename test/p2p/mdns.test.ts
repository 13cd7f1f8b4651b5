import { EventEmitter } from 'node:events'
import type { Socket } from 'node:dgram'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import multicastDns from 'multicast-dns'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { PRESETS } from '../../config/presets.ts'
import {
  DEFAULT_MDNS_IP, DEFAULT_MDNS_PORT, MDNS_ANSWER_HOLDOFF_MS, MDNS_BELOW_MINIMUM_PER_INTERVAL, MDNS_JITTER, MDNS_MAX_ADDRESSES, MDNS_RECORD_TTL, MDNS_STEADY_LONGEST_MS, MDNS_STEADY_MAX_INTERVALS,
  belowMinimumGap, createMdnsDiscovery, encodeMdnsRecords, fastPhaseOffsets, jittered, quietGapCap,
  type MdnsDiscovery, type MdnsDiscoveryInit, type MdnsSocketFactory, type MdnsStats
} from '../../p2p/mdns.ts'
import { ManualClock } from '../../util/clock.ts'
import type { Logger } from '../../util/log.ts'
import { seededRandom, type RandomSource } from '../../util/random.ts'

const TAG = '_kp-abcdefghijklmnop._udp.local'
const INTERVAL = PRESETS.lan.mdnsIntervalMs
/** Query times of one fast phase with the lan interval: 0, 250, 500, 1000, 2000, 4000. */
const FAST = fastPhaseOffsets(INTERVAL)
const FAST_END = FAST.at(-1) as number

/** No jitter: every gap exactly as scheduled, so packet counts per interval are exact. */
const noJitter: RandomSource = { bytes: (n) => new Uint8Array(n), int: () => 0, float: () => 0.5 }

let ids: string[] = []
beforeAll(async () => {
  ids = await Promise.all(Array.from({ length: 12 }, async (_, i) => {
    const key = await generateKeyPairFromSeed('Ed25519', new Uint8Array(32).fill(i + 1))
    return peerIdFromPrivateKey(key).toString()
  }))
})

/** One datagram on the fake LAN. */
interface Datagram { from: string, to: string, multicast: boolean, at: number }

/**
 * An in-memory LAN of datagram sockets. Each discovery gets a real
 * `multicast-dns` instance over a fake socket, so packets go through the real
 * DNS encoding. A datagram to the mDNS group reaches every other socket (and
 * the sender too with `loopback`); one to a host address reaches that host only.
 */
class FakeLan {
  readonly log: Datagram[] = []
  private readonly sockets = new Map<string, FakeDatagramSocket>()
  private readonly failing = new Set<string>()
  private readonly clock: ManualClock
  private readonly loopback: boolean

  constructor (clock: ManualClock, loopback = false) {
    this.clock = clock
    this.loopback = loopback
  }

  /** The socket factory for the host at `address`. */
  host (address: string): MdnsSocketFactory {
    return ({ port, ip }) => multicastDns({ port, ip, multicast: false, bind: false, socket: this.attach(address) as unknown as Socket })
  }

  /** A bare `multicast-dns` endpoint on the LAN, for hand-made packets. */
  raw (address: string): multicastDns.MulticastDNS {
    return multicastDns({ multicast: false, bind: false, socket: this.attach(address) as unknown as Socket })
  }

  attach (address: string): FakeDatagramSocket {
    const s = new FakeDatagramSocket(this, address)
    this.sockets.set(address, s)
    return s
  }

  detach (s: FakeDatagramSocket): void {
    if (this.sockets.get(s.address) === s) this.sockets.delete(s.address)
  }

  isAttached (address: string): boolean {
    return this.sockets.has(address)
  }

  /** The datagram socket of the host at `address`, to inject socket-level events. */
  socketOf (address: string): FakeDatagramSocket | undefined {
    return this.sockets.get(address)
  }

  /** Sends from `address` fail until `heal`. */
  fail (address: string): void { this.failing.add(address) }
  heal (address: string): void { this.failing.delete(address) }

  send (from: FakeDatagramSocket, data: Uint8Array, port: number, to: string): Error | null {
    if (this.failing.has(from.address)) return new Error(`send from ${from.address} failed: EHOSTUNREACH`)
    const multicast = to === DEFAULT_MDNS_IP
    const targets = multicast
      ? [...this.sockets.values()].filter((s) => this.loopback || s !== from)
      : [this.sockets.get(to)].filter((s) => s !== undefined)
    for (const s of targets) {
      this.log.push({ from: from.address, to: s.address, multicast, at: this.clock.now() })
      const copy = Buffer.from(data)
      process.nextTick(() => { s.emit('message', copy, { address: from.address, family: 'IPv4', port, size: copy.length }) })
    }
    return null
  }

  /** Datagrams delivered to `address` (optionally only since `since`). */
  receivedBy (address: string, since = 0): Datagram[] {
    return this.log.slice(since).filter((d) => d.to === address)
  }

  sentBy (address: string, since = 0): Datagram[] {
    return this.log.slice(since).filter((d) => d.from === address)
  }
}

/** The part of `dgram.Socket` that `multicast-dns` uses when it neither binds nor joins groups. */
class FakeDatagramSocket extends EventEmitter {
  readonly address: string
  private readonly lan: FakeLan

  constructor (lan: FakeLan, address: string) {
    super()
    this.lan = lan
    this.address = address
  }

  send (buf: Uint8Array, offset: number, length: number, port: number, address: string, cb: (err: Error | null) => void): void {
    const err = this.lan.send(this, buf.subarray(offset, offset + length), port, address)
    process.nextTick(cb, err)
  }

  close (cb?: () => void): void {
    this.lan.detach(this)
    if (cb !== undefined) process.nextTick(cb)
  }
}

/** A logger that keeps warnings. */
function recordingLogger (): Logger & { warnings: string[] } {
  const warnings: string[] = []
  const logger: Logger & { warnings: string[] } = {
    warnings,
    debug: () => {},
    info: () => {},
    warn: (msg, fields) => { warnings.push(`${msg} ${JSON.stringify(fields ?? {})}`) },
    error: () => {},
    child: () => logger
  }
  return logger
}

/** A discovery under test with what it reported. */
interface TestNode {
  id: string
  host: string
  mdns: MdnsDiscovery
  /** Last addresses reported per peer. */
  heard: Map<string, string[]>
  /** Every `onPeer` call. */
  calls: Array<{ peer: string, addresses: string[], at: number }>
  /** Our addresses; tests may change them. */
  addresses: string[]
}

/** Lets every queued delivery and send callback run. */
async function settle (): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => { setImmediate(resolve) })
}

function diff (after: MdnsStats, before: MdnsStats): MdnsStats {
  const out = { ...after }
  for (const k of Object.keys(out) as Array<keyof MdnsStats>) out[k] -= before[k]
  return out
}

describe('mdns schedule and records', () => {
  it('the fast phase doubles from 250 ms while below the interval', () => {
    expect(fastPhaseOffsets(5_000)).toEqual([0, 250, 500, 1_000, 2_000, 4_000])
    expect(fastPhaseOffsets(PRESETS.lab.mdnsIntervalMs)).toEqual([0, 250, 500])
    expect(fastPhaseOffsets(250)).toEqual([0])
  })

  it('below minimum_nodes a small side announces every quarter interval, a larger one less often, never less than once an interval', () => {
    expect([1, 3, 4, 8, 12, 16, 100].map((up) => belowMinimumGap(4_000, up))).toEqual([1_000, 1_000, 1_000, 2_000, 3_000, 4_000, 4_000])
    expect(belowMinimumGap(4_000, Number.NaN)).toBe(4_000)
    // What the whole side sends per interval stays bounded, whatever its size.
    for (const up of [1, 2, 5, 9, 15, 16, 17, 40]) expect(up * 4_000 / belowMinimumGap(4_000, up)).toBeLessThanOrEqual(Math.max(up, MDNS_BELOW_MINIMUM_PER_INTERVAL))
  })

  it('a quiet site backs off to twelve intervals, or two per node up on a larger site, at most a day', () => {
    expect([1, 6, 7, 30, 1_000].map((up) => quietGapCap(1_000, up) / 1_000)).toEqual([12, 12, 14, 60, 2_000])
    expect(quietGapCap(5_000, 1e9)).toBe(MDNS_STEADY_LONGEST_MS)
    expect(quietGapCap(5_000, Number.NaN)).toBe(MDNS_STEADY_MAX_INTERVALS * 5_000)
  })

  it('jitter stays within ±10 % and spreads', () => {
    const random = seededRandom(7)
    const draws = Array.from({ length: 1_000 }, () => jittered(5_000, random))
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(4_500)
    expect(Math.max(...draws)).toBeLessThanOrEqual(5_500)
    expect(new Set(draws).size).toBeGreaterThan(100)
  })

  it('records: PTR to the instance, one TXT dnsaddr per usable address, at most eight', () => {
    const self = ids[0] as string
    const other = ids[1] as string
    const long = '/dns4/' + 'a'.repeat(250) + '/tcp/1'
    const addrs = ['/ip4/10.0.0.1/tcp/4001', 'not a multiaddr', `/ip4/10.0.0.2/tcp/4001/p2p/${self}`, `/ip4/10.0.0.3/tcp/4001/p2p/${other}`, long, '/ip4/10.0.0.1/tcp/4001']
    const records = encodeMdnsRecords(TAG, self, addrs)
    expect(records).toEqual([
      { name: TAG, type: 'PTR', class: 'IN', ttl: 120, data: `${self}.${TAG}` },
      { name: `${self}.${TAG}`, type: 'TXT', class: 'IN', ttl: 120, data: `dnsaddr=/ip4/10.0.0.1/tcp/4001/p2p/${self}` },
      { name: `${self}.${TAG}`, type: 'TXT', class: 'IN', ttl: 120, data: `dnsaddr=/ip4/10.0.0.2/tcp/4001/p2p/${self}` }
    ])
    const many = Array.from({ length: 12 }, (_, i) => `/ip4/10.0.1.${i}/tcp/4001`)
    expect(encodeMdnsRecords(TAG, self, many).filter((r) => r.type === 'TXT')).toHaveLength(MDNS_MAX_ADDRESSES)
    expect(encodeMdnsRecords(TAG, self, [])).toEqual([])
    expect(encodeMdnsRecords(TAG, self, ['garbage'])).toEqual([])
  })

  it('refuses an empty tag, a bad peer id and a non-positive interval', () => {
    const base: MdnsDiscoveryInit = { serviceTag: TAG, peerId: ids[0] as string, addresses: () => [], intervalMs: INTERVAL, onPeer: () => {} }
    expect(() => createMdnsDiscovery({ ...base, serviceTag: '' })).toThrow(RangeError)
    expect(() => createMdnsDiscovery({ ...base, peerId: 'nope' })).toThrow(/peerId "nope" is not a peer id/)
    expect(() => createMdnsDiscovery({ ...base, intervalMs: 0 })).toThrow(/intervalMs 0, expected a positive/)
  })
})

describe('mdns discovery on a fake LAN', () => {
  let clock: ManualClock
  let lan: FakeLan
  let nodes: TestNode[]

  const setup = (opts: { loopback?: boolean } = {}): void => {
    clock = new ManualClock(1_700_000_000_000)
    lan = new FakeLan(clock, opts.loopback)
    nodes = []
  }

  afterEach(async () => {
    for (const n of nodes) await n.mdns.stop()
  })

  /** Node `i` at 10.0.0.(i+1), listening on tcp 4001 there. */
  const node = (i: number, extra: Omit<Partial<MdnsDiscoveryInit>, 'addresses'> & { addresses?: string[] } = {}): TestNode => {
    const id = ids[i] as string
    const host = `10.0.0.${i + 1}`
    const heard = new Map<string, string[]>()
    const calls: TestNode['calls'] = []
    const { addresses: initial, ...rest } = extra
    const n: TestNode = { id, host, heard, calls, addresses: initial ?? [`/ip4/${host}/tcp/4001`], mdns: undefined as unknown as MdnsDiscovery }
    n.mdns = createMdnsDiscovery({
      serviceTag: TAG,
      peerId: id,
      addresses: () => n.addresses,
      intervalMs: INTERVAL,
      onPeer: (peer, addresses) => { heard.set(peer, addresses); calls.push({ peer, addresses, at: clock.now() }) },
      clock,
      random: noJitter,
      socket: lan.host(host),
      ...rest
    })
    nodes.push(n)
    return n
  }

  /** Starts all at the same instant (every socket is attached before the first packet lands). */
  const startAll = async (ns: TestNode[]): Promise<void> => {
    await Promise.all(ns.map(async (n) => { await n.mdns.start() }))
    await settle()
  }

  const advance = async (ms: number): Promise<void> => {
    await clock.advanceAsync(ms)
    await settle()
  }

  const knowsAll = (n: TestNode, others: TestNode[]): boolean => others.every((o) => o === n || n.heard.has(o.id))

  /** A response or query carrying records of `instance` with these TXT strings, sent from a raw endpoint. */
  const forged = (raw: multicastDns.MulticastDNS, instance: string, txt: string[], opts: { query?: boolean, tag?: string, ptr?: boolean } = {}): void => {
    const tag = opts.tag ?? TAG
    const answers = [
      ...(opts.ptr === false ? [] : [{ name: tag, type: 'PTR' as const, class: 'IN' as const, ttl: 120, data: `${instance}.${tag}` }]),
      ...txt.map((data) => ({ name: `${instance}.${tag}`, type: 'TXT' as const, class: 'IN' as const, ttl: 120, data }))
    ]
    if (opts.query === true) raw.query({ questions: [{ name: tag, type: 'PTR' }], answers })
    else raw.respond({ answers })
  }

  it('two nodes learn each other from the first query', async () => {
    setup()
    const [a, b] = [node(0), node(1)]
    await startAll([a, b])
    expect(a.heard.get(b.id)).toEqual(['/ip4/10.0.0.2/tcp/4001'])
    expect(b.heard.get(a.id)).toEqual(['/ip4/10.0.0.1/tcp/4001'])
    expect(a.mdns.stats()).toMatchObject({ queriesSent: 1, answersSent: 1, announcementsSent: 0, malformed: 0, peersReported: 1 })
  })

  it('ten nodes all learn each other in the first round; each node handles O(N) packets per round', async () => {
    setup()
    const all = Array.from({ length: 10 }, (_, i) => node(i))
    await startAll(all)
    for (const n of all) expect(knowsAll(n, all)).toBe(true)
    await advance(FAST_END)
    for (const n of all) {
      // Per fast round: N−1 queries in, N−1 unicast answers out and in.
      expect(n.mdns.stats()).toMatchObject({ queriesSent: FAST.length, answersSent: FAST.length * 9, packetsReceived: FAST.length * 2 * 9, announcementsSent: 0, malformed: 0 })
      expect(lan.receivedBy(n.host).filter((d) => !d.multicast)).toHaveLength(FAST.length * 9)
      // Re-sent queries do not report a peer again.
      expect(n.calls).toHaveLength(9)
    }
  })

  /** Times at which `n` multicast an announcement since log index `mark` (one datagram per receiver). */
  const announcedAt = (n: TestNode, mark = 0): number[] => [...new Set(lan.sentBy(n.host, mark).filter((d) => d.multicast).map((d) => d.at))]
  const gaps = (times: number[]): number[] => times.slice(1).map((t, i) => t - (times[i] as number))

  it('the steady phase: announcements only, the gap doubling from one interval to the cap; N−1 packets received per announcement round', async () => {
    setup()
    const all = Array.from({ length: 10 }, (_, i) => node(i))
    await startAll(all)
    await advance(FAST_END + 1)
    const before = all.map((n) => n.mdns.stats())
    const mark = lan.log.length
    const span = (1 + 2 + 4 + 8 + 12 + 12 + 12) * INTERVAL
    await advance(span)
    all.forEach((n, i) => {
      const times = announcedAt(n, mark)
      expect(gaps(times)).toEqual([1, 2, 4, 8, 12, 12].map((k) => k * INTERVAL))
      expect(diff(n.mdns.stats(), before[i] as MdnsStats)).toMatchObject({ queriesSent: 0, answersSent: 0, announcementsSent: times.length, packetsReceived: times.length * 9, malformed: 0 })
      expect(lan.receivedBy(n.host, mark).every((d) => d.multicast)).toBe(true)
    })
    expect(MDNS_STEADY_MAX_INTERVALS * INTERVAL).toBeLessThanOrEqual(MDNS_RECORD_TTL * 1000 / 2)
  })

  it('while a member is missing the announcements do not back off: one interval apart, and back to backing off once it is back', async () => {
    setup()
    let missing = true
    const all = Array.from({ length: 3 }, (_, i) => node(i, { missing: () => missing }))
    await startAll(all)
    await advance(FAST_END + 1)
    let mark = lan.log.length
    await advance(6 * INTERVAL + 1)
    for (const n of all) expect(gaps(announcedAt(n, mark))).toEqual([1, 1, 1, 1, 1].map((k) => k * INTERVAL))
    missing = false
    mark = lan.log.length
    await advance((1 + 1 + 2 + 4) * INTERVAL + 1)
    for (const n of all) expect(gaps(announcedAt(n, mark))).toEqual([1, 2, 4].map((k) => k * INTERVAL))
  })

  it('what a node of a quiet site hears does not grow with the site: at most one announcement per two intervals', async () => {
    const window = 96 * INTERVAL
    const heard: number[] = []
    for (const size of [4, 12]) {
      setup()
      const all = Array.from({ length: size }, (_, i) => node(i, { up: () => size }))
      await startAll(all)
      // The fast phase, then the gaps doubling up to the cap (24 intervals for 12 nodes).
      await advance(FAST_END + (1 + 2 + 4 + 8 + 16 + 24) * INTERVAL + 1)
      const mark = lan.log.length
      await advance(window)
      heard.push(lan.receivedBy(all[0]?.host as string, mark).filter((d) => d.multicast).length)
      for (const n of nodes.splice(0)) await n.mdns.stop()
    }
    // 3 peers every 12 intervals, 11 peers every 24 (with a fixed 12-interval cap the 12 nodes' site: 88).
    expect(heard).toEqual([24, 44])
    for (const h of heard) expect(h).toBeLessThanOrEqual(window / INTERVAL / 2)
  })

  it('below minimum_nodes the announcements come at the short gap; once it is reached they back off again from one interval', async () => {
    setup()
    let up = 3
    const all = Array.from({ length: 3 }, (_, i) => node(i, { up: () => up, minimumNodes: 4 }))
    await startAll(all)
    await advance(FAST_END + 1)
    let mark = lan.log.length
    await advance(INTERVAL + 4 * INTERVAL / 4 + 1)
    for (const n of all) expect(gaps(announcedAt(n, mark))).toEqual([1, 1, 1, 1].map((k) => k * INTERVAL / 4))
    up = 4
    mark = lan.log.length
    await advance((1 / 4 + 1 + 2 + 4) * INTERVAL + 1)
    for (const n of all) expect(gaps(announcedAt(n, mark))).toEqual([1, 2, 4].map((k) => k * INTERVAL))
  })

  it('a throwing site view is logged and the announcements go on every interval', async () => {
    setup()
    const logger = recordingLogger()
    const a = node(0, { logger, minimumNodes: 4, up: () => { throw new Error('membership gone') } })
    await startAll([a, node(1)])
    await advance(FAST_END + 1)
    const mark = lan.log.length
    await advance(4 * INTERVAL + 1)
    expect(gaps(announcedAt(a, mark))).toEqual([1, 1, 1].map((k) => k * INTERVAL))
    expect(logger.warnings.some((w) => w.includes('reading the site view failed') && w.includes('membership gone'))).toBe(true)
  })

  it('with jitter, nodes powered on together drift apart and still follow the backoff', async () => {
    setup()
    const all = Array.from({ length: 5 }, (_, i) => node(i, { random: seededRandom(100 + i) }))
    await startAll(all)
    await advance(FAST_END + 40 * INTERVAL)
    const mark = lan.log.length
    await advance(60 * INTERVAL)
    const sendTimes = new Set(lan.log.slice(mark).map((d) => d.at))
    expect(sendTimes.size).toBeGreaterThan(all.length)
    for (const n of all) {
      for (const g of gaps(announcedAt(n, mark))) {
        expect(g).toBeGreaterThanOrEqual(MDNS_STEADY_MAX_INTERVALS * INTERVAL * (1 - MDNS_JITTER))
        expect(g).toBeLessThanOrEqual(MDNS_STEADY_MAX_INTERVALS * INTERVAL * (1 + MDNS_JITTER))
      }
      expect(n.mdns.stats().answersSent).toBeGreaterThan(0) // in the fast phase only
    }
  })

  it('a box that joins a quiet site is announced to by everyone within an interval, even without their unicast answers', async () => {
    setup()
    const site = Array.from({ length: 4 }, (_, i) => node(i))
    await startAll(site)
    await advance(FAST_END + 30 * INTERVAL)
    // Each waits out a long gap now; the newcomer's unicast answers are lost (another daemon holds its port).
    const late = node(4)
    const realSend = lan.send.bind(lan)
    lan.send = (from, data, port, to) => to === late.host ? null : realSend(from, data, port, to)
    const mark = lan.log.length
    await late.mdns.start()
    await settle()
    expect(late.heard.size).toBe(0)
    await advance(INTERVAL)
    expect(knowsAll(late, [...site, late])).toBe(true)
    for (const n of site) expect(n.heard.has(late.id)).toBe(true)
    // Then they back off again from one interval.
    await advance(7 * INTERVAL)
    for (const n of site) {
      const times = announcedAt(n, mark)
      expect(times[0]).toBe((lan.log[mark]?.at ?? 0) + INTERVAL)
      expect(gaps(times)).toEqual([1, 2, 4].map((k) => k * INTERVAL))
    }
  })

  it('our new addresses go out with the next announcement, and the gaps start again from one interval', async () => {
    setup()
    const [a, b] = [node(0), node(1)]
    await startAll([a, b])
    await advance(FAST_END + 30 * INTERVAL)
    const mark = lan.log.length
    a.addresses = ['/ip4/10.0.0.9/tcp/4001']
    await advance(MDNS_STEADY_MAX_INTERVALS * INTERVAL)
    expect(b.heard.get(a.id)).toEqual(['/ip4/10.0.0.9/tcp/4001'])
    await advance(4 * INTERVAL)
    expect(gaps(announcedAt(a, mark))).toEqual([1, 2].map((k) => k * INTERVAL))
  })

  it('a query is answered by unicast to the querier only', async () => {
    setup()
    const site = [node(0), node(1), node(2)]
    await startAll(site)
    await advance(FAST_END + INTERVAL / 2)
    const before = site.map((n) => n.mdns.stats())
    const mark = lan.log.length
    const late = node(3)
    await late.mdns.start()
    await settle()
    expect(knowsAll(late, site)).toBe(true)
    site.forEach((n, i) => {
      expect(n.heard.has(late.id)).toBe(true)
      expect(diff(n.mdns.stats(), before[i] as MdnsStats)).toMatchObject({ answersSent: 1, packetsReceived: 1 })
      // The only packet each old node received is the late node's query: no one else's answer.
      expect(lan.receivedBy(n.host, mark)).toEqual([{ from: late.host, to: n.host, multicast: true, at: clock.now() }])
    })
    const answers = lan.log.slice(mark).filter((d) => !d.multicast)
    expect(answers).toHaveLength(3)
    expect(answers.every((d) => d.to === late.host)).toBe(true)
  })

  it('a burst of re-sent queries is answered once per hold-off', async () => {
    setup()
    const a = node(0)
    await startAll([a])
    const raw = lan.raw('10.0.0.99')
    const answersIn: unknown[] = []
    raw.on('response', (p) => { answersIn.push(p) })
    const q = ids[9] as string
    for (let i = 0; i < 3; i++) forged(raw, q, [`dnsaddr=/ip4/10.0.0.99/tcp/4001/p2p/${q}`], { query: true })
    await settle()
    expect(a.mdns.stats().answersSent).toBe(1)
    expect(answersIn).toHaveLength(1)
    expect(a.calls.filter((c) => c.peer === q)).toHaveLength(1)
    await advance(MDNS_ANSWER_HOLDOFF_MS)
    forged(raw, q, [`dnsaddr=/ip4/10.0.0.99/tcp/4001/p2p/${q}`], { query: true })
    await settle()
    expect(a.mdns.stats().answersSent).toBe(2)
    // A plain question (an @libp2p/mdns node) is answered too, rate-limited by address.
    raw.query({ questions: [{ name: TAG, type: 'PTR' }] })
    raw.query({ questions: [{ name: TAG, type: 'PTR' }] })
    await settle()
    expect(a.mdns.stats().answersSent).toBe(3)
    expect(answersIn).toHaveLength(3)
    raw.destroy()
  })

  it('onPeer is called once per peer and address set within an interval, again when the addresses change', async () => {
    setup()
    const [a, b] = [node(0), node(1)]
    await startAll([a, b])
    await advance(FAST_END + 1)
    expect(a.calls.filter((c) => c.peer === b.id)).toHaveLength(1)
    b.addresses = ['/ip4/10.0.0.2/tcp/4001', '/ip4/192.168.1.2/tcp/4001']
    b.mdns.nudge()
    await settle()
    expect(a.calls.filter((c) => c.peer === b.id)).toHaveLength(2)
    expect(a.heard.get(b.id)).toEqual(['/ip4/10.0.0.2/tcp/4001', '/ip4/192.168.1.2/tcp/4001'])
    // The rest of b's fast phase repeats the same set: no more reports.
    await advance(FAST_END)
    expect(a.calls.filter((c) => c.peer === b.id)).toHaveLength(2)
    // Steady: at most one report per interval.
    await advance(10 * INTERVAL)
    const reports = a.calls.filter((c) => c.peer === b.id)
    expect(reports.length).toBeLessThanOrEqual(2 + 10)
    for (let i = 1; i < reports.length; i++) {
      const gap = (reports[i]?.at as number) - (reports[i - 1]?.at as number)
      if (reports[i]?.addresses.join() === reports[i - 1]?.addresses.join()) expect(gap).toBeGreaterThanOrEqual(INTERVAL)
    }
    expect(a.mdns.stats().peersReported).toBe(a.calls.length)
  })

  it('nudge restarts the fast phase, only from the steady phase', async () => {
    setup()
    const [a, b] = [node(0), node(1)]
    await startAll([a, b])
    a.mdns.nudge() // in the fast phase already: no effect
    await settle()
    expect(a.mdns.stats().queriesSent).toBe(1)
    await advance(FAST_END + INTERVAL / 2)
    const before = a.mdns.stats()
    const bBefore = b.mdns.stats()
    a.mdns.nudge()
    await settle()
    expect(diff(a.mdns.stats(), before).queriesSent).toBe(1)
    expect(diff(b.mdns.stats(), bBefore).answersSent).toBe(1)
    await advance(FAST_END)
    expect(diff(a.mdns.stats(), before)).toMatchObject({ queriesSent: FAST.length, announcementsSent: 0 })
    await advance(INTERVAL)
    expect(diff(a.mdns.stats(), before)).toMatchObject({ queriesSent: FAST.length, announcementsSent: 1 })
  })

  it('malformed packets are counted and ignored; other services and our own id are told apart', async () => {
    setup()
    const a = node(0)
    await startAll([a])
    const raw = lan.raw('10.0.0.66')
    const x = ids[10] as string
    const y = ids[11] as string
    const ok = (id: string, host = '10.0.0.66'): string => `dnsaddr=/ip4/${host}/tcp/4001/p2p/${id}`
    const cases: Array<{ name: string, send: (query: boolean) => void, counter: keyof MdnsStats }> = [
      { name: 'wrong tag', counter: 'foreign', send: (query) => { forged(raw, x, [ok(x)], { query, tag: '_other._udp.local' }) } },
      { name: 'bad peer id', counter: 'malformed', send: (query) => { forged(raw, 'not-a-peer', ['dnsaddr=/ip4/10.0.0.66/tcp/4001/p2p/not-a-peer'], { query }) } },
      { name: 'bad multiaddr', counter: 'malformed', send: (query) => { forged(raw, x, [`dnsaddr=/ip4/999.0.0.1/tcp/4001/p2p/${x}`], { query }) } },
      { name: 'mismatched /p2p id', counter: 'malformed', send: (query) => { forged(raw, x, [ok(y)], { query }) } },
      { name: 'no /p2p id', counter: 'malformed', send: (query) => { forged(raw, x, ['dnsaddr=/ip4/10.0.0.66/tcp/4001'], { query }) } },
      { name: 'too many addresses', counter: 'malformed', send: (query) => { forged(raw, x, Array.from({ length: MDNS_MAX_ADDRESSES + 1 }, (_, i) => ok(x, `10.0.2.${i}`)), { query }) } },
      { name: 'no address', counter: 'malformed', send: (query) => { forged(raw, x, ['other=1'], { query }) } },
      { name: 'TXT without PTR', counter: 'malformed', send: (query) => { forged(raw, x, [ok(x)], { query, ptr: false }) } },
      {
        name: 'two instances',
        counter: 'malformed',
        send: (query) => {
          const answers = [x, y].map((id) => ({ name: TAG, type: 'PTR' as const, class: 'IN' as const, ttl: 120, data: `${id}.${TAG}` }))
          if (query) raw.query({ questions: [{ name: TAG, type: 'PTR' }], answers }); else raw.respond({ answers })
        }
      },
      { name: 'our own peer id', counter: 'ownEchoes', send: (query) => { forged(raw, a.id, [ok(a.id)], { query }) } }
    ]
    for (const c of cases) {
      for (const query of [false, true]) {
        const before = a.mdns.stats()
        c.send(query)
        await settle()
        const d = diff(a.mdns.stats(), before)
        expect({ case: c.name, query, counted: d[c.counter], received: d.packetsReceived, answers: d.answersSent, reported: d.peersReported })
          .toEqual({ case: c.name, query, counted: 1, received: 1, answers: 0, reported: 0 })
      }
    }
    expect(a.heard.size).toBe(0)
    // The node still works: a good packet after all that is reported.
    forged(raw, x, [ok(x)])
    await settle()
    expect(a.heard.get(x)).toEqual(['/ip4/10.0.0.66/tcp/4001'])
    raw.destroy()
  })

  it('our own packets looped back are ignored, not counted as malformed', async () => {
    setup({ loopback: true })
    const [a, b] = [node(0), node(1)]
    await startAll([a, b])
    await advance(FAST_END + 2 * INTERVAL)
    for (const [n, other] of [[a, b], [b, a]] as const) {
      const s = n.mdns.stats()
      expect(s.ownEchoes).toBe(FAST.length + 2)
      expect(s.malformed).toBe(0)
      expect([...n.heard.keys()]).toEqual([other.id])
      // One answer per query of the other node, none to ourselves.
      expect(s.answersSent).toBe(FAST.length)
    }
  })

  it('with no addresses a node sends nothing, still listens, and speaks once it has one', async () => {
    setup()
    const a = node(0, { addresses: [] })
    const b = node(1)
    await startAll([a, b])
    await advance(FAST_END + 3 * INTERVAL)
    expect(a.mdns.stats()).toMatchObject({ queriesSent: 0, announcementsSent: 0, answersSent: 0 })
    expect(lan.sentBy(a.host)).toEqual([])
    expect(a.heard.has(b.id)).toBe(true)
    expect(b.heard.has(a.id)).toBe(false)
    a.addresses = ['/ip4/10.0.0.1/tcp/4001']
    await advance(INTERVAL)
    expect(b.heard.get(a.id)).toEqual(['/ip4/10.0.0.1/tcp/4001'])
  })

  it('stop closes the socket and silences the node; start after stop begins again', async () => {
    setup()
    const [a, b] = [node(0), node(1)]
    await startAll([a, b])
    await a.mdns.start() // second start: no second socket, no extra query
    await settle()
    expect(a.mdns.stats().queriesSent).toBe(1)
    await advance(FAST_END + 1)
    await a.mdns.stop()
    await a.mdns.stop()
    expect(lan.isAttached(a.host)).toBe(false)
    a.mdns.nudge() // stopped: no effect
    const before = a.mdns.stats()
    const mark = lan.log.length
    await advance(3 * INTERVAL)
    expect(diff(a.mdns.stats(), before)).toMatchObject({ queriesSent: 0, announcementsSent: 0, answersSent: 0, packetsReceived: 0 })
    expect(lan.sentBy(a.host, mark)).toEqual([])
    const calls = a.calls.length
    await a.mdns.start()
    await settle()
    expect(lan.isAttached(a.host)).toBe(true)
    expect(diff(a.mdns.stats(), before).queriesSent).toBe(1)
    // A restart reports known peers afresh.
    expect(a.calls.length).toBe(calls + 1)
    expect(a.calls.at(-1)?.peer).toBe(b.id)
  })

  it('socket errors, send failures and a throwing onPeer are logged and discovery goes on', async () => {
    setup()
    const logger = recordingLogger()
    const a = node(0, { logger, onPeer: () => { throw new Error('peer store full') } })
    const b = node(1)
    lan.fail(a.host)
    await startAll([a, b])
    expect(logger.warnings.some((w) => w.includes('mdns query failed') && w.includes('EHOSTUNREACH'))).toBe(true)
    expect(logger.warnings.some((w) => w.includes('onPeer failed') && w.includes('peer store full'))).toBe(true)
    lan.heal(a.host)
    // The datagram layer reports a lost port; garbage that does not decode arrives.
    const err = Object.assign(new Error('bind EADDRINUSE'), { code: 'EADDRINUSE' })
    lan.socketOf(a.host)?.emit('error', err)
    const junk = lan.attach('10.0.0.77')
    junk.send(Uint8Array.of(1, 2, 3), 0, 3, DEFAULT_MDNS_PORT, DEFAULT_MDNS_IP, () => {})
    await settle()
    expect(logger.warnings.some((w) => w.includes('mdns socket error') && w.includes('EADDRINUSE'))).toBe(true)
    expect(logger.warnings.some((w) => w.includes('mdns socket warning'))).toBe(true)
    await advance(FAST.at(1) as number)
    expect(b.heard.get(a.id)).toEqual(['/ip4/10.0.0.1/tcp/4001'])
  })
})
