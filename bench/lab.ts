// Formation benchmark in the netns lab (issue 6, "Benchmark"). For each N (default
// 3, 10, 30, 50) it starts N agents at once on one segment, in rounds (default 3: every
// size once per round), each lab run right after a floor run (bench/_floor-run.ts) of the
// same size, and reports per N the median over the rounds of:
//   - agent start: spawn → the agent's 'started' timeline event (process boot and
//     imports), median and max;
//   - from the first agent's spawn to the election and to every node joined (the whole
//     boot as an operator sees it);
//   - from the LAST 'started' event to
//       (a) every member sees every other alive (status peers, polled),
//       (b) election done on every node ('elected' events),
//       (c) every credential delivered ('credential' events),
//       (d) full WireGuard mesh (every node has N-1 overlay peers up, polled),
//       (e) every node registered at the k3s stand-in (registry timestamps);
//   - memory per agent at formation and after the idle window, median / max: VmRSS, and
//     its two parts, private anonymous memory (RssAnon: heap, code the agent compiled)
//     and file-backed pages (RssFile: mostly the node binary's own code, shared by
//     every agent and clean, so the kernel can drop it);
//   - idle CPU per agent over the idle window (% of one core, utime+stime), which starts
//     once the formed site settled for `--settle-seconds` (default 20) unpolled, and idle
//     traffic per agent (eth0 rx+tx bytes/s inside the host's namespace);
//   - the floor's figures (`floor`), and the lab's read against them per round
//     (`vsFloor`: median, min and max over the rounds; the pairs are FLOOR_PAIRS in
//     bench/_results-md.ts), so a ratio never spans two sittings of a drifting machine.
// Polled milestones carry the poll's resolution (`pollMs`). Needs root; prints
// {"skipped":"needs root"} otherwise. Progress goes to stderr; the last stdout line is
// the JSON result.
//
//   npx node bench/lab.ts [--nodes 3,10,30,50] [--rounds 3] [--no-floor] [--skip-30] [--settle-seconds 20] [--idle-seconds 60] [--timeout-seconds 240]
//   npx node bench/lab.ts … [--poll-ms 200] [--node-args="…"] [--preset lan] [--timing dead_after_ms=600,…]
// or through `npm run bench lab`, with KAIROS_BENCH_LAB_NODES / KAIROS_BENCH_LAB_ROUNDS /
// KAIROS_BENCH_LAB_FLOOR=0 / KAIROS_BENCH_SKIP_30=1 /
// KAIROS_BENCH_SETTLE_SECONDS / KAIROS_BENCH_IDLE_SECONDS / KAIROS_BENCH_LAB_NODE_ARGS ("" for plain Node) in the env.
import { parseArgs } from 'node:util'
import { floorOnce } from './_floor-run.ts'
import { runEachSize, sleep } from './_harness.ts'
import { CLOCK_TICKS_PER_S, cpuTicks, eth0Bytes, machineTicks, memoryKb, memoryStats, secs, stats } from './_proc.ts'
import { combineRounds, floorRatios } from './_rounds.ts'

interface Options { nodes: number[], rounds: number, floor: boolean, settleMs: number, idleMs: number, timeoutMs: number, pollMs: number, nodeArgs: string[] | undefined, preset: string | undefined, timing: Record<string, number> }

function options (): Options {
  const { values } = parseArgs({
    options: {
      nodes: { type: 'string' },
      rounds: { type: 'string' },
      'no-floor': { type: 'boolean' },
      'skip-30': { type: 'boolean' },
      'settle-seconds': { type: 'string' },
      'idle-seconds': { type: 'string' },
      'timeout-seconds': { type: 'string' },
      'poll-ms': { type: 'string' },
      'node-args': { type: 'string' },
      preset: { type: 'string' },
      timing: { type: 'string' }
    }
  })
  const env = process.env
  const list = (values.nodes ?? env.KAIROS_BENCH_LAB_NODES ?? '3,10,30,50').split(',').map((s) => Number(s.trim()))
  if (list.some((n) => !Number.isInteger(n) || n < 2 || n > 200)) throw new Error(`--nodes '${values.nodes ?? ''}': expected comma-separated integers from 2 to 200`)
  const skip30 = values['skip-30'] === true || env.KAIROS_BENCH_SKIP_30 === '1'
  const num = (name: string, v: string | undefined, def: number): number => {
    const n = v === undefined ? def : Number(v)
    if (!Number.isFinite(n) || n < 0) throw new Error(`${name} '${String(v)}': expected a non-negative number`)
    return n
  }
  const rawArgs = values['node-args'] ?? env.KAIROS_BENCH_LAB_NODE_ARGS
  const rounds = num('--rounds', values.rounds ?? env.KAIROS_BENCH_LAB_ROUNDS, 3)
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) throw new Error(`--rounds '${String(values.rounds ?? env.KAIROS_BENCH_LAB_ROUNDS)}': expected an integer from 1 to 20`)
  return {
    nodes: list.filter((n) => !(skip30 && n >= 30)),
    rounds,
    floor: values['no-floor'] !== true && env.KAIROS_BENCH_LAB_FLOOR !== '0',
    settleMs: num('--settle-seconds', values['settle-seconds'] ?? env.KAIROS_BENCH_SETTLE_SECONDS, 20) * 1000,
    idleMs: num('--idle-seconds', values['idle-seconds'] ?? env.KAIROS_BENCH_IDLE_SECONDS, 60) * 1000,
    timeoutMs: num('--timeout-seconds', values['timeout-seconds'], 240) * 1000,
    pollMs: num('--poll-ms', values['poll-ms'], 200),
    nodeArgs: rawArgs?.split(' ').filter((s) => s !== ''),
    preset: values.preset ?? env.KAIROS_BENCH_LAB_PRESET,
    timing: parseTiming(values.timing ?? env.KAIROS_BENCH_LAB_TIMING ?? '')
  }
}

/** `key=ms,key=ms` (snake_case `p2p.timing` keys) → a map. */
function parseTiming (text: string): Record<string, number> {
  const out: Record<string, number> = {}
  for (const part of text.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const [k, v] = part.split('=')
    const ms = Number(v)
    if (k === undefined || k === '' || !Number.isInteger(ms) || ms <= 0) throw new Error(`--timing '${part}': expected key=milliseconds, e.g. dead_after_ms=3000`)
    out[k] = ms
  }
  return out
}

function progress (msg: string): void {
  process.stderr.write(`[lab-bench ${new Date().toISOString().slice(11, 23)}] ${msg}\n`)
}

interface PeerView { id?: string, liveness?: string, connections?: number }

async function runOnce (n: number, opt: Options, signal: AbortSignal): Promise<Record<string, unknown>> {
  const { createLab, isFormed, assertAgentsAlive, summarizeStatus } = await import('../netns-lab/index.ts')
  const preset = opt.preset
  const lab = createLab({
    nodes: n,
    ...(process.env.KAIROS_BENCH_LAB_ROOT === undefined ? {} : { root: process.env.KAIROS_BENCH_LAB_ROOT }),
    ...(process.env.KAIROS_BENCH_LAB_REPO === undefined ? {} : { repoRoot: process.env.KAIROS_BENCH_LAB_REPO }),
    nodeArgs: opt.nodeArgs,
    ...(Object.keys(opt.timing).length === 0 ? {} : { baseConfig: { p2p: { timing: opt.timing } } }),
    ...(preset === undefined ? {} : { agentArgs: ['--preset', preset] })
  })
  const polled: { seeAll?: number, mesh?: number } = {}
  let pollsDone = 0
  let pollSpentMs = 0
  /** Set once every node joined: a run that never got there keeps its agent logs for a post-mortem. */
  let formed = false
  try {
    progress(`N=${n}: lab up`)
    const cpuBefore = await machineTicks()
    const rec = await lab.up(signal)
    progress(`N=${n}: lab ${rec.id} up, ${n} agents spawned`)
    const deadline = Date.now() + opt.timeoutMs
    let last: Awaited<ReturnType<typeof lab.status>> | undefined
    let formedAt: number | undefined
    let downBefore = new Set<string>()
    for (;;) {
      const t0 = Date.now()
      last = await lab.status(signal)
      pollSpentMs += Date.now() - t0
      pollsDone++
      // An agent seen down twice in a row has exited (once may be a spawn still in flight).
      const down = last.nodes.filter((x) => x.powered && !x.running).map((x) => x.name)
      if (down.some((name) => downBefore.has(name))) await assertAgentsAlive(lab, last)
      downBefore = new Set(down)
      const at = last.at
      const alive = last.nodes.every((x) => ((x.agent?.peers ?? []) as PeerView[]).filter((p) => p.liveness === 'alive' && p.id !== x.peerId).length >= n - 1)
      if (alive) polled.seeAll ??= at
      if (last.nodes.every((x) => x.handshakes.up >= n - 1)) polled.mesh ??= at
      if (isFormed(last) && (last.clusters[0]?.nodes.length ?? 0) >= n) { formedAt ??= at; formed = true }
      if (polled.seeAll !== undefined && polled.mesh !== undefined && formedAt !== undefined) break
      if (Date.now() >= deadline) {
        progress(`N=${n}: timeout: ${summarizeStatus(last)}`)
        break
      }
      await sleep(opt.pollMs, signal)
    }
    const cpuAfter = await machineTicks()
    const r = await lab.record()
    const eventsOf = (name: string): Array<number | undefined> => last.nodes.map((x) => x.agent?.timeline?.find((e) => e.event === name)?.at)
    const started = eventsOf('started')
    const spawnToStart = r.hosts.flatMap((h, i) => {
      const s = started[i]
      return s === undefined || h.agentStartedAt === undefined ? [] : [s - h.agentStartedAt]
    })
    const lastStart = started.every((s) => s !== undefined) ? Math.max(...started as number[]) : undefined
    const allOf = (name: string): number | undefined => {
      const ev = eventsOf(name)
      return ev.every((e) => e !== undefined) ? Math.max(...ev as number[]) : undefined
    }
    const regs = last.clusters[0]?.nodes ?? []
    const registeredAll = formedAt !== undefined && regs.length >= n ? Math.max(...regs.map((x) => x.registeredAt)) : undefined
    const since = (t: number | undefined): number | null => lastStart === undefined || t === undefined ? null : secs(t - lastStart)
    const firstSpawn = Math.min(...r.hosts.map((h) => h.agentStartedAt ?? Infinity))
    const sinceFirstSpawn = (t: number | undefined): number | null => t === undefined || !Number.isFinite(firstSpawn) ? null : secs(t - firstSpawn)
    const pids = last.nodes.flatMap((x) => x.agentPid === undefined ? [] : [x.agentPid])
    const memoryAtFormation = await Promise.all(pids.map(memoryKb))
    const cpuAtFormation = (await Promise.all(pids.map(cpuTicks))).filter((v) => v !== undefined)
    const out: Record<string, unknown> = {
      nodes: n,
      formed: formedAt !== undefined,
      agentStartS: { ...stats(spawnToStart.map((ms) => ms / 1000)), firstSpawnToLastStarted: lastStart === undefined || r.hosts[0]?.agentStartedAt === undefined ? null : secs(lastStart - r.hosts[0].agentStartedAt) },
      fromLastStartS: {
        allSeeAll: since(polled.seeAll),
        electionDone: since(allOf('elected')),
        credentialsDelivered: since(allOf('credential')),
        fullMesh: since(polled.mesh),
        allJoined: since(registeredAll)
      },
      // The whole boot as an operator sees it: from the first agent's spawn (start-up included).
      fromFirstSpawnS: {
        electionDone: sinceFirstSpawn(allOf('elected')),
        allJoined: sinceFirstSpawn(registeredAll)
      },
      pollMs: pollsDone === 0 ? null : Math.round(pollSpentMs / pollsDone + opt.pollMs),
      memoryMbAtFormation: memoryStats(memoryAtFormation),
      agentCpuSecondsAtFormation: stats(cpuAtFormation.map((t) => t / CLOCK_TICKS_PER_S)),
      // Links each agent holds (the mesh aims at about twice its four links) and its failed dials.
      connectionsAtFormation: stats(last.nodes.flatMap((x) => x.agent?.mesh?.connections ?? [])),
      dialsFailedAtFormation: stats(last.nodes.flatMap((x) => x.agent?.mesh?.dials?.failed ?? [])),
      // The site's connections since its start, each seen from both ends (halved): opened, held
      // at formation, token proofs passed; and connections opened while another to the same peer was
      // open, counted at each end (`doublesClosed`, named when P2P-38 closed them; nothing closes them now).
      siteConnectionsAtFormation: siteConnections(last.nodes.map((x) => x.agent?.mesh)),
      // Pairs of nodes connected at formation, and those with more than one connection (either end's count).
      pairsAtFormation: connectedPairs(last.nodes.map((x) => ({ id: x.peerId, peers: (x.agent?.peers ?? []) as PeerView[] }))),
      machineBusyPctUntilFormed: Math.round(100 * (cpuAfter.busy - cpuBefore.busy) / Math.max(1, cpuAfter.total - cpuBefore.total))
    }
    if (formedAt === undefined) return out
    // The site settles first (WireGuard handshakes, the stand-in's connections, the last
    // anti-entropy rounds): idle means a formed site that nobody polls.
    progress(`N=${n}: formed; settling ${opt.settleMs / 1000} s, then an idle window of ${opt.idleMs / 1000} s`)
    await sleep(opt.settleMs, signal)
    const before = await Promise.all(pids.map(async (pid) => ({ cpu: await cpuTicks(pid), net: await eth0Bytes(pid) })))
    const t0 = performance.now()
    await sleep(opt.idleMs, signal)
    const after = await Promise.all(pids.map(async (pid) => ({ cpu: await cpuTicks(pid), net: await eth0Bytes(pid) })))
    const wallS = (performance.now() - t0) / 1000
    const cpuPct: number[] = []
    const bytesPerS: number[] = []
    after.forEach((a, i) => {
      const b = before[i]
      if (b?.cpu !== undefined && a.cpu !== undefined) cpuPct.push(100 * (a.cpu - b.cpu) / CLOCK_TICKS_PER_S / wallS)
      if (b?.net !== undefined && a.net !== undefined) bytesPerS.push((a.net - b.net) / wallS)
    })
    out.settleSeconds = opt.settleMs / 1000
    out.idleSeconds = Math.round(wallS)
    out.memoryMbAfterIdle = memoryStats(await Promise.all(pids.map(memoryKb)))
    out.idleCpuPct = stats(cpuPct)
    out.idleTrafficBytesPerS = stats(bytesPerS)
    return out
  } finally {
    const keepFiles = process.env.KAIROS_BENCH_KEEP_FILES === '1' || !formed
    if (!formed) progress(`N=${n}: did not form; its agent logs stay in ${await lab.dir().catch(() => '(lab dir unknown)')}/hosts`)
    progress(`N=${n}: lab down`)
    await lab.down({ keepFiles }).catch((err: unknown) => { progress(`lab down failed: ${String(err)}`) })
  }
}

/** Key of a run's floor figures, taken apart again by `combine`. */
const FLOOR = 'floor'

/** One round at one size: the floor first (unless off), then the lab. */
async function roundOnce (n: number, opt: Options, signal: AbortSignal): Promise<Record<string, unknown>> {
  let floor: Record<string, unknown> | undefined
  if (opt.floor) {
    floor = await floorOnce(n, { dht: true, timeoutMs: 120_000, progress: (msg) => { progress(`floor ${msg}`) } }, signal)
      .catch((err: unknown) => ({ error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) }))
  }
  const lab = await runOnce(n, opt, signal)
  return floor === undefined ? lab : { ...lab, [FLOOR]: floor }
}

/**
 * The rounds of one size as one result: each lab figure the median over the rounds,
 * `formed` only when every round formed, `floor` the floor's figures (medians), and
 * `vsFloor` each floor pair (bench/_results-md.ts) per round against that round's floor,
 * median and range.
 */
function combine (runs: Array<Record<string, unknown>>): Record<string, unknown> {
  const pairs = runs.map(({ [FLOOR]: floor, ...lab }) => ({ lab, floor }))
  const labs = pairs.map((p) => p.lab).filter((l) => l.error === undefined)
  // A round that did not form would report its figures at the timeout: left out while another formed.
  const formedLabs = labs.filter((l) => l.formed === true)
  const floors = pairs.flatMap((p) => p.floor !== null && typeof p.floor === 'object' && !('error' in p.floor) ? [p.floor] : [])
  const errors = [...runs.flatMap((r) => typeof r.error === 'string' ? [r.error] : []), ...pairs.flatMap((p) => p.floor !== null && typeof p.floor === 'object' && 'error' in p.floor ? [`floor: ${String(p.floor.error)}`] : [])]
  const out = { ...(combineRounds(formedLabs.length > 0 ? formedLabs : labs) as Record<string, unknown> | undefined) }
  out.rounds = runs.length
  out.formed = labs.length === runs.length && labs.every((l) => l.formed === true)
  out.formedRounds = formedLabs.length
  if (errors.length > 0) out.errors = errors
  if (floors.length > 0) {
    out[FLOOR] = combineRounds(floors)
    out.vsFloor = floorRatios(pairs.filter((p) => p.lab.formed === true))
  }
  return out
}

await runEachSize(() => {
  const opt = options()
  return {
    nodes: opt.nodes,
    rounds: opt.rounds,
    combine: (_n, runs) => combine(runs),
    head: {
      targets: { allJoinedS: { n3: 2, n10: 3, n30: 10 }, rssMb: 60, idleCpuPct: 0.5 },
      agentNodeArgs: opt.nodeArgs?.join(' ') ?? 'lab default (DEFAULT_AGENT_NODE_ARGS)',
      preset: opt.preset ?? 'lab (the lab cloud-config)',
      timingOverrides: opt.timing,
      floorInterleaved: opt.floor
    },
    runOnce: async (n, signal) => await roundOnce(n, opt, signal)
  }
}, progress)

/** Site totals of the agents' connection counters (null when an agent does not report them: an older build). */
function siteConnections (meshes: Array<{ connections?: number, connectionsSinceStart?: { opened: number, doubles: number, admissions: number } | undefined } | undefined>): Record<string, number> | null {
  if (meshes.some((m) => m?.connectionsSinceStart === undefined)) return null
  const sum = (f: (m: NonNullable<typeof meshes[number]>) => number): number => meshes.reduce((a, m) => a + (m === undefined ? 0 : f(m)), 0)
  return {
    opened: sum((m) => m.connectionsSinceStart?.opened ?? 0) / 2,
    held: sum((m) => m.connections ?? 0) / 2,
    admissions: sum((m) => m.connectionsSinceStart?.admissions ?? 0) / 2,
    doublesClosed: sum((m) => m.connectionsSinceStart?.doubles ?? 0)
  }
}

/** Pairs of nodes with an open connection, and with more than one, as either end reports them. */
function connectedPairs (nodes: Array<{ id: string | undefined, peers: PeerView[] }>): { connected: number, doubled: number } {
  const most = new Map<string, number>()
  for (const n of nodes) {
    for (const p of n.peers) {
      if (n.id === undefined || p.id === undefined || (p.connections ?? 0) === 0) continue
      const key = [n.id, p.id].sort().join()
      most.set(key, Math.max(most.get(key) ?? 0, p.connections ?? 0))
    }
  }
  return { connected: most.size, doubled: [...most.values()].filter((c) => c > 1).length }
}
