// In-process p2p benchmark (N nodes, default 10, `lan` timing):
//   - put → every other node has it: median / p95 / max latency
//   - idle traffic per node, bytes/s, counted on the loopback interface of a private
//     network namespace (so TCP/IP headers are included and nobody else's traffic is)
//   - idle CPU per node, % of one core (process CPU time / N / wall time)
//   - RSS of the whole process after start
// Prints one JSON object on its last stdout line. Needs root for the namespace; without
// it the traffic figure is reported as null.
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { execa } from 'execa'

const INNER = '--in-netns'
const N = Number(process.env.KP2P_BENCH_NODES ?? 10)
const IDLE_MS = Number(process.env.KP2P_BENCH_IDLE_MS ?? 60_000)
const PUTS = Number(process.env.KP2P_BENCH_PUTS ?? 20)

if (!process.argv.includes(INNER) && process.getuid?.() === 0) {
  // Re-run inside a fresh network namespace: its loopback carries only our traffic.
  const run = await execa('unshare', ['--net', '--', process.execPath, fileURLToPath(import.meta.url), INNER], { reject: false, stdio: ['ignore', 'pipe', 'inherit'] })
  process.stdout.write(run.stdout + '\n')
  process.exit(run.exitCode ?? 1)
}

const inNetns = process.argv.includes(INNER)
if (inNetns) await execa('ip', ['link', 'set', 'lo', 'up'])

const { PRESETS } = await import('../config/presets.ts')
const { generateToken, parseToken } = await import('../token/index.ts')
const { createP2PNode } = await import('../p2p/index.ts')
type Node = Awaited<ReturnType<typeof createP2PNode>>

/** IPv4 (20) + TCP with timestamps (32) header bytes per packet on loopback. */
const IP_TCP_HEADER_BYTES = 52

/** Bytes and packets sent on loopback (every byte sent there is also received once). */
async function loCounters (): Promise<{ bytes: number, packets: number } | null> {
  if (!inNetns) return null
  const text = await readFile('/proc/net/dev', 'utf8')
  const line = text.split('\n').find((l) => l.trim().startsWith('lo:'))
  if (line === undefined) return null
  const fields = line.split(':')[1]?.trim().split(/\s+/).map(Number) ?? []
  const bytes = fields[8]
  const packets = fields[9]
  return bytes === undefined || packets === undefined ? null : { bytes, packets }
}

async function waitFor (check: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const start = performance.now()
  while (!check()) {
    if (performance.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  return performance.now() - start
}

const token = parseToken(generateToken())
const dirs: string[] = []
const nodes: Node[] = []
// KP2P_BENCH_TIMING='{"heartbeatIntervalMs":1000}' overrides single fields (to see what costs what).
const timing = { ...PRESETS.lan, ...JSON.parse(process.env.KP2P_BENCH_TIMING ?? '{}') as Partial<typeof PRESETS.lan> }
const base = {
  networkToken: '', networkId: '', role: 'auto' as const, minimumNodes: 2, disableDht: process.env.KP2P_BENCH_NO_DHT === '1', autoEnable: true,
  haEnable: false, haMasterNodes: 0, vpn: { create: false, use: false, cidr: '10.88.0.0/16', interface: 'kairos0', port: 51820, mtu: 1420 },
  listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false, stateDir: '', installer: { kind: 'dry-run' as const }, preset: 'lan' as const, timing
}

const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN
}
const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d

try {
  const t0 = performance.now()
  for (let i = 0; i < N; i++) {
    const dir = await mkdtemp(join(tmpdir(), 'kp2p-bench-'))
    dirs.push(dir)
    const bootstrapPeers = i === 0 ? [] : [nodes[0]?.addresses()[0] as string]
    const node = await createP2PNode({ p2p: { ...base, bootstrapPeers }, token, stateDir: dir, ...(process.env.KP2P_BENCH_FANOUT === undefined ? {} : { heartbeatFanout: Number(process.env.KP2P_BENCH_FANOUT) }) })
    await node.start()
    nodes.push(node)
  }
  const formMs = await waitFor(() => nodes.every((n) => n.state.members().filter((m) => m.liveness === 'alive').length === N - 1), 60_000, 'full membership')
  const formationMs = performance.now() - t0

  // Let the gossip mesh settle before timing puts.
  await new Promise((resolve) => setTimeout(resolve, 3_000))
  const latencies: number[] = []
  for (let i = 0; i < PUTS; i++) {
    const writer = nodes[i % N] as Node
    const key = `bench/${i}`
    const started = performance.now()
    await writer.state.put(key, { i })
    await waitFor(() => nodes.every((n) => n.state.get(writer.peerId, key) !== undefined), 30_000, `put ${i} everywhere`)
    latencies.push(performance.now() - started)
  }

  // Idle: nothing but heartbeats, anti-entropy, rendezvous and libp2p's own upkeep.
  // KP2P_BENCH_SETTLE_MS waits longer first, to see the steady state after start-up DHT work.
  await new Promise((resolve) => setTimeout(resolve, Number(process.env.KP2P_BENCH_SETTLE_MS ?? 3_000)))
  const cpu0 = process.cpuUsage()
  const w0 = performance.now()
  // Sample every second: the median second is the steady cost (heartbeats), the
  // mean includes DHT rendezvous rounds and other bursts.
  const perSecond: number[] = []
  const perSecondPayload: number[] = []
  let last = await loCounters()
  for (let sec = 0; sec < IDLE_MS / 1000; sec++) {
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const c = await loCounters()
    if (c !== null && last !== null) {
      perSecond.push((c.bytes - last.bytes) / N)
      perSecondPayload.push((c.bytes - last.bytes - (c.packets - last.packets) * IP_TCP_HEADER_BYTES) / N)
      if (process.env.KP2P_BENCH_SERIES === '1') process.stderr.write(`${sec}s ${Math.round((c.bytes - last.bytes) / N)} B/node\n`)
    }
    last = c
  }
  const wallMs = performance.now() - w0
  const cpu = process.cpuUsage(cpu0)
  const mean = (xs: number[]): number | null => xs.length === 0 ? null : Math.round(xs.reduce((a, b) => a + b, 0) / xs.length)
  const median = (xs: number[]): number | null => xs.length === 0 ? null : Math.round(percentile(xs, 0.5))
  const stillAlive = nodes.every((n) => n.state.members().filter((m) => m.liveness === 'alive').length === N - 1)

  const result = {
    nodes: N,
    timing: 'lan',
    heartbeatFanout: Number(process.env.KP2P_BENCH_FANOUT ?? 1),
    formationMs: Math.round(formationMs),
    fullMembershipAfterLastStartMs: Math.round(formMs),
    putToAllNodesMs: { median: round(percentile(latencies, 0.5)), p95: round(percentile(latencies, 0.95)), max: round(Math.max(...latencies)), samples: latencies.length },
    idleTrafficBytesPerSecPerNode: { meanOnWire: mean(perSecond), steadyOnWire: median(perSecond), meanPayload: mean(perSecondPayload), steadyPayload: median(perSecondPayload) },
    idleTrafficNote: 'bytes sent per node per second on loopback in a private netns; onWire counts IP+TCP headers of every packet (ACKs too), payload is TCP payload (libp2p bytes); steady = median second, mean includes DHT rendezvous rounds; each node receives about as much',
    idleCpuPercentPerNode: round(((cpu.user + cpu.system) / 1000) / N / wallMs * 100, 2),
    idleWindowMs: Math.round(wallMs),
    rssMbWholeProcess: Math.round(process.memoryUsage().rss / 1024 / 1024),
    membershipStableWhileIdle: stillAlive
  }
  process.stderr.write(JSON.stringify(result, null, 2) + '\n')
  process.stdout.write(JSON.stringify(result) + '\n')
} finally {
  await Promise.allSettled(nodes.map(async (n) => { await n.stop() }))
  await Promise.allSettled(dirs.map(async (d) => { await rm(d, { recursive: true, force: true }) }))
}
