import { spawn } from 'node:child_process'
import { mkdir, readFile } from 'node:fs/promises'
import { systemClock, type Clock } from '../util/clock.ts'
import { LabCapabilityError, LabCommandError } from './errors.ts'
import type { HostPlan, TopologyPlan } from './plan.ts'
import { planNamespaces } from './plan.ts'
import type { Runner } from './run.ts'
import type { ImpairmentMethod } from './meta.ts'

/**
 * Applying a TopologyPlan to the kernel: namespaces, bridges, veths, addresses,
 * routes, the per-host mount-namespace holders, packet loss / delay and partitions.
 * Nothing here touches the root namespace's links or routes; the one root setting it
 * changes is the kernel's neighbour-table limits (`ensureNeighbourLimits`).
 */

/** Commands run in parallel while building, at most. */
export const BUILD_CONCURRENCY = 6
/** nft table every lab host carries for loss and partitions. */
export const NFT_TABLE = 'kairoslab'
/** Where wireguard-go keeps its control sockets; private per host. */
export const WIREGUARD_RUN_DIR = '/run/wireguard'

/** Runs `fn` over `items` with at most `limit` in flight; rejects with the first failure. */
export async function mapLimit<T, R> (items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length)
  let next = 0
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    for (;;) {
      const i = next++
      const item = items[i]
      if (i >= items.length || item === undefined) return
      out[i] = await fn(item)
    }
  })
  await Promise.all(workers)
  return out
}

/** The kernel's neighbour-table limits (`net.ipv4.neigh.default.gc_thresh1..3`). */
export interface NeighbourLimits { gcThresh1: number, gcThresh2: number, gcThresh3: number }

/** Linux's defaults, which one lab of more than about 20 hosts outgrows. */
export const DEFAULT_NEIGHBOUR_LIMITS: NeighbourLimits = Object.freeze({ gcThresh1: 128, gcThresh2: 512, gcThresh3: 1024 })

/**
 * The neighbour-table limits a lab of `hosts` hosts needs, given the `current` ones (never
 * lower). The table is the kernel's, one for every network namespace on the machine, and
 * each host holds an entry for every other host's LAN address and, on the WireGuard
 * interface (no ARP, but an entry all the same), for every overlay address: 2 (N − 1)
 * each, 4 900 at N = 50 against a default hard limit of 1 024. Past the hard limit a send
 * to an address without an entry fails with ENOBUFS: at N = 50 a third of the WireGuard
 * handshakes never left their host and the site never formed. The hard limit is twice
 * the lab's own need (another lab may run beside it), the soft one half of that.
 */
export function neighbourLimitsFor (hosts: number, current: NeighbourLimits): NeighbourLimits {
  const need = 2 * hosts * 2 * Math.max(0, hosts - 1)
  let hard = DEFAULT_NEIGHBOUR_LIMITS.gcThresh3
  while (hard < need) hard *= 2
  return {
    gcThresh1: Math.max(current.gcThresh1, DEFAULT_NEIGHBOUR_LIMITS.gcThresh1),
    gcThresh2: Math.max(current.gcThresh2, hard / 2),
    gcThresh3: Math.max(current.gcThresh3, hard)
  }
}

const NEIGH_SYSCTL = '/proc/sys/net/ipv4/neigh/default/'

/**
 * Raises the machine's neighbour-table limits for a lab of `hosts` hosts (see
 * `neighbourLimitsFor`); they are never lowered again, as other labs may rely on them.
 * The limits are the root namespace's, so this is the one setting a lab changes outside
 * its own namespaces.
 */
export async function ensureNeighbourLimits (hosts: number, run: Runner, signal?: AbortSignal): Promise<NeighbourLimits> {
  const read = async (name: string, fallback: number): Promise<number> => {
    const n = Number((await readFile(`${NEIGH_SYSCTL}${name}`, 'utf8').catch(() => '')).trim())
    return Number.isInteger(n) && n > 0 ? n : fallback
  }
  const d = DEFAULT_NEIGHBOUR_LIMITS
  const current = { gcThresh1: await read('gc_thresh1', d.gcThresh1), gcThresh2: await read('gc_thresh2', d.gcThresh2), gcThresh3: await read('gc_thresh3', d.gcThresh3) }
  const want = neighbourLimitsFor(hosts, current)
  if (want.gcThresh3 === current.gcThresh3 && want.gcThresh2 === current.gcThresh2 && want.gcThresh1 === current.gcThresh1) return current
  const key = 'net.ipv4.neigh.default.'
  await run(['sysctl', '-q', '-w', `${key}gc_thresh3=${want.gcThresh3}`, `${key}gc_thresh2=${want.gcThresh2}`, `${key}gc_thresh1=${want.gcThresh1}`], signal === undefined ? {} : { signal })
  return want
}

/** Creates every namespace, bridge, veth, address and route of `plan`. */
export async function buildTopology (plan: TopologyPlan, run: Runner, signal?: AbortSignal): Promise<void> {
  const opts = signal === undefined ? {} : { signal }
  await ensureNeighbourLimits(plan.hosts.length, run, signal)
  for (const ns of planNamespaces(plan)) {
    await run(['ip', 'netns', 'add', ns], opts)
    await run(['ip', '-n', ns, 'link', 'set', 'lo', 'up'], opts)
  }
  const sw = plan.switchNs
  for (const seg of plan.segments) {
    await run(['ip', '-n', sw, 'link', 'add', seg.bridge, 'type', 'bridge', 'mcast_snooping', '0'], opts)
    await run(['ip', '-n', sw, 'link', 'set', seg.bridge, 'up'], opts)
    if (seg.router !== undefined && plan.routerNs !== undefined) {
      const rt = plan.routerNs
      await run(['ip', 'link', 'add', seg.router.iface, 'netns', rt, 'type', 'veth', 'peer', 'name', seg.router.switchPort, 'netns', sw], opts)
      await run(['ip', '-n', sw, 'link', 'set', seg.router.switchPort, 'master', seg.bridge], opts)
      await run(['ip', '-n', sw, 'link', 'set', seg.router.switchPort, 'up'], opts)
      await run(['ip', '-n', rt, 'addr', 'add', `${seg.router.address}/24`, 'dev', seg.router.iface], opts)
      await run(['ip', '-n', rt, 'link', 'set', seg.router.iface, 'up'], opts)
    }
  }
  if (plan.routerNs !== undefined) {
    await run(['ip', 'netns', 'exec', plan.routerNs, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'], opts)
  }
  await mapLimit(plan.hosts, BUILD_CONCURRENCY, async (host) => { await buildHost(plan, host, run, signal) })
}

async function buildHost (plan: TopologyPlan, host: HostPlan, run: Runner, signal?: AbortSignal): Promise<void> {
  const opts = signal === undefined ? {} : { signal }
  const bridge = plan.segments[host.segment]?.bridge
  if (bridge === undefined) throw new LabCommandError([], `host ${host.name} names segment ${host.segment}, which the plan lacks`)
  const sw = plan.switchNs
  await run(['ip', 'link', 'add', host.iface, 'netns', host.ns, 'type', 'veth', 'peer', 'name', host.switchPort, 'netns', sw], opts)
  await run(['ip', '-n', sw, 'link', 'set', host.switchPort, 'master', bridge], opts)
  await run(['ip', '-n', sw, 'link', 'set', host.switchPort, 'up'], opts)
  await run(['ip', '-n', host.ns, 'addr', 'add', `${host.address}/${host.prefixLength}`, 'dev', host.iface], opts)
  await run(['ip', '-n', host.ns, 'link', 'set', host.iface, 'up'], opts)
  // mDNS sends fail silently in a namespace without a multicast route.
  await run(['ip', '-n', host.ns, 'route', 'add', '224.0.0.0/4', 'dev', host.iface], opts)
  if (host.gateway !== undefined) {
    await run(['ip', '-n', host.ns, 'route', 'add', 'default', 'via', host.gateway, 'dev', host.iface], opts)
  }
  await run(['ip', 'netns', 'exec', host.ns, 'nft', '-f', '-'], { ...opts, input: nftBaseRuleset() })
}

/**
 * The per-host nft table: the input hook jumps to the partition and loss chains. Both drop
 * on the way in, as a lossy or cut network does: a packet dropped on the way out fails
 * the sender's `send` with EPERM, which no real network does (the agents logged about a
 * hundred `mdns answer failed: send EPERM` warnings per 10-node run under loss).
 * `partition_out` stays, empty, for tables made by older versions.
 */
export function nftBaseRuleset (): string {
  return [
    `table inet ${NFT_TABLE} {`,
    '  chain partition_in { }',
    '  chain partition_out { }',
    '  chain loss { }',
    '  chain input { type filter hook input priority 0; policy accept; jump partition_in; jump loss; }',
    '  chain output { type filter hook output priority 0; policy accept; jump partition_out; }',
    '}',
    ''
  ].join('\n')
}

/**
 * nft script replacing a host's partition rules: drop traffic from `blocked` addresses on
 * the way in. Every host of both groups carries the rule, so both directions are cut;
 * a sender sees silence (timeouts), not an error.
 */
export function nftPartitionScript (blocked: readonly string[]): string {
  const lines = [`flush chain inet ${NFT_TABLE} partition_in`, `flush chain inet ${NFT_TABLE} partition_out`]
  if (blocked.length > 0) {
    const set = `{ ${[...blocked].sort().join(', ')} }`
    lines.push(`add rule inet ${NFT_TABLE} partition_in ip saddr ${set} drop`)
  }
  return lines.join('\n') + '\n'
}

/**
 * nft script dropping `lossPct` % of the packets arriving on `iface` (0.01 % steps): on
 * the way in, so a sender never gets EPERM (see nftBaseRuleset). Each packet crosses one
 * receiving host, so a path loses `lossPct` % as with netem on the sender.
 */
export function nftLossScript (iface: string, lossPct: number): string {
  const lines = [`flush chain inet ${NFT_TABLE} loss`]
  const threshold = Math.round(lossPct * 100)
  if (threshold >= 10000) lines.push(`add rule inet ${NFT_TABLE} loss iifname "${iface}" drop`)
  else if (threshold > 0) lines.push(`add rule inet ${NFT_TABLE} loss iifname "${iface}" numgen random mod 10000 < ${threshold} drop`)
  return lines.join('\n') + '\n'
}

/** For every host, the addresses it must not reach under `partitions` (pairs of node-name groups). */
export function partitionBlocks (hosts: ReadonlyArray<Pick<HostPlan, 'name' | 'address'>>, partitions: ReadonlyArray<readonly [readonly string[], readonly string[]]>): Map<string, string[]> {
  const addr = new Map(hosts.map((h) => [h.name, h.address]))
  const blocks = new Map<string, Set<string>>(hosts.map((h) => [h.name, new Set<string>()]))
  for (const [a, b] of partitions) {
    for (const x of a) {
      for (const y of b) {
        const ax = addr.get(x)
        const ay = addr.get(y)
        if (ax === undefined || ay === undefined || x === y) continue
        blocks.get(x)?.add(ay)
        blocks.get(y)?.add(ax)
      }
    }
  }
  return new Map([...blocks].map(([k, v]) => [k, [...v].sort()]))
}

/**
 * Applies (full recompute) the partition rules on every host, then closes every TCP
 * connection a host holds across the cut (`ss -K`). A partition in the lab stands for
 * one that lasts: on a real network TCP gives up on a silent peer only after its
 * retransmissions run out (about 15 minutes on Linux), and until then an open
 * connection keeps crediting the peer with life (the p2p layer refreshes `lastSeen` of
 * every admitted connection), so neither side would see the partition for that long.
 */
export async function applyPartitions (hosts: readonly HostPlan[], partitions: ReadonlyArray<readonly [readonly string[], readonly string[]]>, run: Runner, signal?: AbortSignal): Promise<void> {
  const blocks = partitionBlocks(hosts, partitions)
  const opts = signal === undefined ? {} : { signal }
  await mapLimit(hosts, BUILD_CONCURRENCY, async (host) => {
    await run(['ip', 'netns', 'exec', host.ns, 'nft', '-f', '-'], { input: nftPartitionScript(blocks.get(host.name) ?? []), ...opts })
  })
  await mapLimit(hosts, BUILD_CONCURRENCY, async (host) => {
    for (const addr of blocks.get(host.name) ?? []) {
      // A kernel without sock_destroy refuses: the partition still holds, it shows later.
      await run(['ip', 'netns', 'exec', host.ns, 'ss', '-K', '-t', 'dst', addr], { reject: false, ...opts })
    }
  })
}

/**
 * Applies loss and delay on every host's veth: tc netem (egress) when the kernel has
 * it; without sch_netem, loss falls back to an nft random-drop rule and a delay is
 * refused with LabCapabilityError. Returns the method used.
 */
export async function applyImpairment (hosts: readonly HostPlan[], lossPct: number, delayMs: number, run: Runner, signal?: AbortSignal): Promise<ImpairmentMethod> {
  if (lossPct <= 0 && delayMs <= 0) return 'none'
  const opts = signal === undefined ? {} : { signal }
  const first = hosts[0]
  if (first === undefined) return 'none'
  const netem = (h: HostPlan): string[] => ['ip', 'netns', 'exec', h.ns, 'tc', 'qdisc', 'replace', 'dev', h.iface, 'root', 'netem',
    ...(delayMs > 0 ? ['delay', `${delayMs}ms`] : []), ...(lossPct > 0 ? ['loss', `${lossPct}%`] : [])]
  const probe = await run(netem(first), { ...opts, reject: false })
  if (probe.exitCode === 0) {
    await mapLimit(hosts.slice(1), BUILD_CONCURRENCY, async (h) => { await run(netem(h), opts) })
    return 'netem'
  }
  if (delayMs > 0) {
    throw new LabCapabilityError(`--delay ${delayMs} needs tc netem, which this kernel lacks (${probe.stderr.trim() || `exit ${probe.exitCode}`}); drop --delay or use a kernel with sch_netem`)
  }
  await mapLimit(hosts, BUILD_CONCURRENCY, async (h) => {
    await run(['ip', 'netns', 'exec', h.ns, 'nft', '-f', '-'], { ...opts, input: nftLossScript(h.iface, lossPct) })
  })
  return 'nft'
}

/** Options of `startHolder`. */
export interface HolderInit {
  /** Give up when the holder has not settled in its namespaces after this long, ms. @default 5000 */
  timeoutMs?: number
  clock?: Clock
  signal?: AbortSignal
}

/** Poll interval while waiting for a holder to settle, ms. */
const HOLDER_POLL_MS = 10

/**
 * Starts the holder of a host's private mount namespace (`ip netns exec` →
 * `unshare --mount --propagation private` → `sleep infinity`, one PID throughout) and
 * mounts a tmpfs on /run/wireguard inside it. The holder is detached: the lab
 * outlives the command that built it. Returns the holder's PID.
 */
export async function startHolder (ns: string, run: Runner, init: HolderInit = {}): Promise<number> {
  const clock = init.clock ?? systemClock
  // A detached, long-lived child: spawned directly (argument array), not awaited.
  const child = spawn('ip', ['netns', 'exec', ns, 'unshare', '--mount', '--propagation', 'private', 'sleep', 'infinity'], { detached: true, stdio: 'ignore' })
  child.on('error', () => { /* reported below as a holder that never settles */ })
  child.unref()
  const pid = child.pid
  if (pid === undefined) throw new LabCommandError(['ip', 'netns', 'exec', ns, 'unshare', '--mount', 'sleep', 'infinity'], 'could not spawn the mount-namespace holder')
  const deadline = clock.now() + (init.timeoutMs ?? 5000)
  for (;;) {
    let comm = ''
    try { comm = (await readFile(`/proc/${pid}/comm`, 'utf8')).trim() } catch { /* not yet or gone */ }
    if (comm === 'sleep') break
    if (clock.now() >= deadline) {
      throw new LabCommandError(['ip', 'netns', 'exec', ns, 'unshare', '--mount', 'sleep', 'infinity'], `holder PID ${pid} did not settle within ${init.timeoutMs ?? 5000} ms (comm '${comm}')`)
    }
    await clock.sleep(HOLDER_POLL_MS, init.signal)
  }
  await mkdir(WIREGUARD_RUN_DIR, { recursive: true })
  await run(['nsenter', `--mount=/proc/${pid}/ns/mnt`, '--', 'mount', '-t', 'tmpfs', '-o', 'mode=0755,size=4m', 'kairoslab', WIREGUARD_RUN_DIR], init.signal === undefined ? {} : { signal: init.signal })
  return pid
}
