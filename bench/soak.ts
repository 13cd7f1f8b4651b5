// Soak benchmark in the netns lab: does an idle site hold its memory and its files?
// It starts N agents (default 10) on one segment, waits until the site has formed, then
// leaves it idle for `--minutes` (default 60) and samples every agent every
// `--sample-seconds` (default 60), from /proc and unpolled (no status request during the
// idle time, so the reading does not feed what it reads):
//   - VmRSS and its private anonymous part (RssAnon: the heap and what V8 compiled);
//   - open file descriptors (entries of /proc/<pid>/fd: sockets, the WireGuard device, logs);
//   - CPU (utime + stime) and eth0 rx + tx bytes, as a rate between samples.
// It reports RSS and anon after the warm-up (`--warmup-minutes`, default 5) and at the
// end, median over the agents, and their change; fds at the first sample, at warm-up and
// at the end; and the target check: RSS within ±5 % from warm-up to the end and no agent
// with more than 2 fds more than at warm-up (`_soak-summary.ts`). At the end it asks every
// agent once for its status: all still running, joined and seeing every other alive.
// The agents' heap is not exposed by their status or metrics; `--heap-snapshots` writes
// a V8 heap snapshot of the first agent at warm-up and at the end (into a fresh dir
// outside the lab, kept), to compare in Chrome DevTools' Comparison view. It changes that agent's memory:
// leave it off for the figures.
// `--variant` (repeatable) compares agent options on one site instead: agent i runs
// variant i mod k (its Node options and `NAME=value` environment settings), and the result
// has the figures of each variant's agents too, with the CPU each used until the site
// formed. One site for all keeps the comparison fair on a loaded machine.
// Needs root; prints {"skipped":"needs root"} otherwise. Progress goes to stderr; the
// last stdout line is the JSON result. The lab comes down at the end, on failure and on
// SIGINT / SIGTERM.
//
//   sudo npx node bench/soak.ts [--nodes 10] [--minutes 60] [--warmup-minutes 5] [--sample-seconds 60] [--timeout-seconds 240] [--node-args="--max-semi-space-size=1 …"] [--heap-snapshots]
//   sudo npx node bench/soak.ts --nodes 30 --minutes 20 --variant="--max-semi-space-size=1" --variant="--max-semi-space-size=1 --single-threaded-gc" …
// `npm run bench` skips it unless KAIROS_BENCH_SOAK=1 (or `npm run bench -- soak`);
// there KAIROS_BENCH_SOAK_MINUTES / KAIROS_BENCH_SOAK_NODES set its length and size.
import { execFile } from 'node:child_process'
import { mkdtemp, readdir, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs, promisify } from 'node:util'
import type { HostRecord, LabRecord } from '../netns-lab/index.ts'
import { runEachSize, sleep } from './_harness.ts'
import { CLOCK_TICKS_PER_S, cpuTicks, eth0Bytes, memoryKb, secs } from './_proc.ts'
import { formationCpuS, parseSoakVariant, samplesOfVariant, SOAK_TARGET, summarizeSoak, variantOfAgent, type AgentSample, type SoakSample, type SoakVariant } from './_soak-summary.ts'

const execFileAsync = promisify(execFile)

interface Options { nodes: number, minutes: number, warmupMinutes: number, sampleS: number, timeoutMs: number, nodeArgs: string[] | undefined, variants: SoakVariant[], heapSnapshots: boolean }

function options (): Options {
  const { values } = parseArgs({
    options: {
      nodes: { type: 'string' },
      minutes: { type: 'string' },
      'warmup-minutes': { type: 'string' },
      'sample-seconds': { type: 'string' },
      'timeout-seconds': { type: 'string' },
      'node-args': { type: 'string' },
      variant: { type: 'string', multiple: true },
      'heap-snapshots': { type: 'boolean' }
    }
  })
  const env = process.env
  const num = (name: string, v: string | undefined, def: number, min: number, integer = false): number => {
    const n = v === undefined ? def : Number(v)
    if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) throw new Error(`${name} '${String(v)}': expected ${integer ? 'an integer' : 'a number'} ≥ ${min}`)
    return n
  }
  const nodes = num('--nodes', values.nodes ?? env.KAIROS_BENCH_SOAK_NODES, 10, 2, true)
  if (nodes > 200) throw new Error(`--nodes '${nodes}': expected an integer from 2 to 200`)
  const minutes = num('--minutes', values.minutes ?? env.KAIROS_BENCH_SOAK_MINUTES, 60, 1)
  const warmupMinutes = num('--warmup-minutes', values['warmup-minutes'], 5, 0)
  if (warmupMinutes >= minutes) throw new Error(`--warmup-minutes '${warmupMinutes}': expected less than --minutes (${minutes})`)
  const rawArgs = values['node-args'] ?? env.KAIROS_BENCH_LAB_NODE_ARGS
  const variants = (values.variant ?? []).map(parseSoakVariant)
  if (variants.length > 0 && values['node-args'] !== undefined) throw new Error('--node-args and --variant: give one of them')
  if (variants.length > nodes) throw new Error(`${variants.length} variants for ${nodes} nodes: expected at most one variant per node`)
  return {
    nodes,
    minutes,
    warmupMinutes,
    sampleS: num('--sample-seconds', values['sample-seconds'], 60, 1),
    timeoutMs: num('--timeout-seconds', values['timeout-seconds'], 240, 1) * 1000,
    nodeArgs: variants.length > 0 ? undefined : rawArgs?.split(' ').filter((s) => s !== ''),
    variants,
    heapSnapshots: values['heap-snapshots'] === true
  }
}

function progress (msg: string): void {
  process.stderr.write(`[soak-bench ${new Date().toISOString().slice(11, 23)}] ${msg}\n`)
}

/** Entries of /proc/<pid>/fd, or undefined when the process is gone. */
async function openFds (pid: number): Promise<number | undefined> {
  try { return (await readdir(`/proc/${pid}/fd`)).length } catch { return undefined }
}

async function sampleAgent (pid: number): Promise<AgentSample> {
  const [mem, fds, cpu, net] = await Promise.all([memoryKb(pid), openFds(pid), cpuTicks(pid), eth0Bytes(pid)])
  return {
    ...(mem === undefined ? {} : { rssKb: mem.rss, anonKb: mem.anon }),
    ...(fds === undefined ? {} : { fds }),
    ...(cpu === undefined ? {} : { cpuTicks: cpu }),
    ...(net === undefined ? {} : { netBytes: net })
  }
}

interface PeerView { id?: string, liveness?: string }

async function runOnce (n: number, opt: Options, signal: AbortSignal): Promise<Record<string, unknown>> {
  const { createLab, isFormed, assertAgentsAlive, summarizeStatus, DEFAULT_AGENT_NODE_ARGS } = await import('../netns-lab/index.ts')
  // Snapshots go to the agents' diagnostic dir, a fresh one (it outlives the lab).
  const diagnosticDir = opt.heapSnapshots ? await mkdtemp(join(tmpdir(), 'kairos-soak-heap-')) : undefined
  const baseArgs = opt.nodeArgs ?? [...DEFAULT_AGENT_NODE_ARGS]
  const repoRoot = process.env.KAIROS_BENCH_LAB_REPO
  const lab = createLab({
    nodes: n,
    ...(process.env.KAIROS_BENCH_LAB_ROOT === undefined ? {} : { root: process.env.KAIROS_BENCH_LAB_ROOT }),
    ...(repoRoot === undefined ? {} : { repoRoot }),
    ...(opt.variants.length === 0 ? {} : { agentCommand: await variantCommand(opt.variants, repoRoot) }),
    nodeArgs: diagnosticDir === undefined ? baseArgs : [...baseArgs, '--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${diagnosticDir}`]
  })
  let formed = false
  try {
    progress(`N=${n}: lab up`)
    const rec = await lab.up(signal)
    progress(`N=${n}: lab ${rec.id} up, ${n} agents spawned`)
    const deadline = Date.now() + opt.timeoutMs
    let last = await lab.status(signal)
    let downBefore = new Set<string>()
    for (;;) {
      const down = last.nodes.filter((x) => x.powered && !x.running).map((x) => x.name)
      if (down.some((name) => downBefore.has(name))) await assertAgentsAlive(lab, last)
      downBefore = new Set(down)
      if (isFormed(last) && (last.clusters[0]?.nodes.length ?? 0) >= n) { formed = true; break }
      if (Date.now() >= deadline) {
        progress(`N=${n}: timeout: ${summarizeStatus(last)}`)
        return { nodes: n, formed: false }
      }
      await sleep(1000, signal)
      last = await lab.status(signal)
    }
    const started = last.nodes.map((x) => x.agent?.timeline?.find((e) => e.event === 'started')?.at)
    const lastStart = started.every((s) => s !== undefined) ? Math.max(...started as number[]) : undefined
    const formedAt = last.at
    const pids = last.nodes.flatMap((x) => x.agentPid === undefined ? [] : [x.agentPid])
    if (pids.length !== n) throw new Error(`${n - pids.length} of ${n} agents have no process id after formation`)
    progress(`N=${n}: formed ${lastStart === undefined ? '' : `${secs(formedAt - lastStart) ?? '?'} s after the last start`}; idle for ${opt.minutes} min, a sample every ${opt.sampleS} s`)

    const samples: SoakSample[] = []
    const t0 = performance.now()
    const totalMs = opt.minutes * 60_000
    const snapshot = async (label: string): Promise<void> => {
      if (!opt.heapSnapshots) return
      const pid = pids[0] as number
      const before = new Set(await readdir(diagnosticDir as string).catch(() => []))
      process.kill(pid, 'SIGUSR2')
      // The agent writes it on its main thread: wait until the file is there and stops growing.
      let size = -1
      for (let i = 0; i < 300; i++) {
        await sleep(1000, signal)
        const file = (await readdir(diagnosticDir as string).catch(() => [])).find((f) => !before.has(f) && f.endsWith('.heapsnapshot'))
        if (file === undefined) continue
        const now = await stat(join(diagnosticDir as string, file)).then((s) => s.size, () => 0)
        if (now > 0 && now === size) { progress(`N=${n}: heap snapshot at ${label}: ${join(diagnosticDir as string, file)} (${(now / 1e6).toFixed(1)} MB)`); return }
        size = now
      }
      progress(`N=${n}: no whole heap snapshot at ${label} after 300 s`)
    }
    let snappedWarmup = false
    for (let k = 0; ; k++) {
      const due = k * opt.sampleS * 1000
      if (due > totalMs) break
      const wait = due - (performance.now() - t0)
      if (wait > 0) await sleep(wait, signal)
      const agents = await Promise.all(pids.map(sampleAgent))
      const gone = agents.findIndex((a) => a.rssKb === undefined)
      if (gone >= 0) {
        await assertAgentsAlive(lab, await lab.status(signal))
        throw new Error(`agent ${last.nodes[gone]?.name ?? gone} (pid ${pids[gone] ?? '?'}) exited during the soak`)
      }
      const atS = Math.round((performance.now() - t0) / 1000)
      samples.push({ atS, agents })
      const rss = agents.map((a) => (a.rssKb ?? 0) / 1024).sort((a, b) => a - b)
      const byVariant = opt.variants.map((_, v) => {
        const own = agents.filter((_a, i) => variantOfAgent(i, opt.variants.length) === v).map((a) => (a.rssKb ?? 0) / 1024).sort((a, b) => a - b)
        return own[Math.floor(own.length / 2)]?.toFixed(1) ?? '?'
      })
      progress(`N=${n}: min ${(atS / 60).toFixed(1)}: rss median ${rss[Math.floor(rss.length / 2)]?.toFixed(1) ?? '?'} MB${byVariant.length === 0 ? '' : ` (by variant ${byVariant.join(' ')})`}, fds ${agents.map((a) => a.fds ?? '?').join(' ')}`)
      if (!snappedWarmup && atS >= opt.warmupMinutes * 60) { snappedWarmup = true; await snapshot('warm-up') }
    }
    // Still a site: every agent running, joined and seeing every other alive (asked
    // before the last snapshot, which holds its agent up for a while).
    const end = await lab.status(signal)
    await snapshot('end')
    const alive = end.nodes.map((x) => ((x.agent?.peers ?? []) as PeerView[]).filter((p) => p.liveness === 'alive' && p.id !== x.peerId).length)
    const summary = summarizeSoak(samples, opt.warmupMinutes * 60, CLOCK_TICKS_PER_S)
    const k = opt.variants.length
    const variants = opt.variants.map((v, i) => {
      const own = samplesOfVariant(samples, i, k)
      const { series, target: _target, ...figures } = summarizeSoak(own, opt.warmupMinutes * 60, CLOCK_TICKS_PER_S)
      return { variant: v.label, agents: own[0]?.agents.length ?? 0, formationCpuS: formationCpuS(own, CLOCK_TICKS_PER_S), ...figures, rssMbSeries: series.rssMb }
    })
    return {
      nodes: n,
      formed: true,
      formedAfterLastStartS: lastStart === undefined ? null : secs(formedAt - lastStart),
      minutes: opt.minutes,
      sampleSeconds: opt.sampleS,
      ...summary,
      atEnd: { running: end.nodes.filter((x) => x.running).length, joined: end.nodes.filter((x) => x.phase === 'joined').length, seeAllAlive: alive.filter((a) => a >= n - 1).length, formed: isFormed(end) },
      ...(diagnosticDir === undefined ? {} : { heapSnapshotDir: diagnosticDir }),
      ...(k === 0 ? {} : { variants })
    }
  } finally {
    const keepFiles = process.env.KAIROS_BENCH_KEEP_FILES === '1' || !formed
    if (keepFiles) progress(`N=${n}: its files stay in ${await lab.dir().catch(() => '(lab dir unknown)')}`)
    progress(`N=${n}: lab down`)
    await lab.down({ keepFiles }).catch((err: unknown) => { progress(`lab down failed: ${String(err)}`) })
  }
}

/**
 * The agent command of a soak with variants: host i (in the lab's host order) runs the
 * lab's agent bundle with variant i mod k's Node options, under `env` with its settings.
 */
async function variantCommand (variants: readonly SoakVariant[], repoRoot: string | undefined): Promise<(h: HostRecord, r: LabRecord) => string[]> {
  const { ensureBundle, LAB_BUNDLE, CLI_ENTRY, REPO_ROOT } = await import('../build/bundle.ts')
  const { AGENT_MALLOC_ENV } = await import('../box/runtime.ts')
  const { LAB_COMPILE_CACHE } = await import('../netns-lab/index.ts')
  const root = repoRoot ?? REPO_ROOT
  const entry = await ensureBundle(root, LAB_BUNDLE, CLI_ENTRY)
  // Node's compile cache is kept per V8 code cache tag, which some V8 options change:
  // warm it under each variant's options, as the lab does under its own.
  for (const v of variants) {
    await execFileAsync(process.execPath, [...v.nodeArgs, entry, 'agent', '--help'], { env: { ...AGENT_MALLOC_ENV, ...process.env, ...v.env, NODE_COMPILE_CACHE: join(root, LAB_COMPILE_CACHE) } })
      .catch((err: unknown) => { progress(`warming the compile cache for '${v.label}' failed: ${String(err)}`) })
  }
  return (h, r) => {
    const v = variants[variantOfAgent(r.hosts.findIndex((x) => x.name === h.name), variants.length)] as SoakVariant
    const env = Object.entries(v.env).map(([name, value]) => `${name}=${value}`)
    return [...(env.length === 0 ? [] : ['env', ...env]), r.nodePath, ...v.nodeArgs, entry, 'agent', '--config', h.configPath]
  }
}

await runEachSize(() => {
  const opt = options()
  return {
    nodes: [opt.nodes],
    head: {
      targets: { rssChangePct: SOAK_TARGET.rssChangePct, fdSlack: SOAK_TARGET.fdSlack },
      warmupMinutes: opt.warmupMinutes,
      agentNodeArgs: opt.variants.length > 0 ? 'per variant' : opt.nodeArgs?.join(' ') ?? 'lab default (DEFAULT_AGENT_NODE_ARGS)'
    },
    runOnce: async (n, signal) => await runOnce(n, opt, signal)
  }
}, progress)
