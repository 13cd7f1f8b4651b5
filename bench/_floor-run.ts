// One run of the stack floor (see floor.ts for what it measures), shared by floor.ts and
// lab.ts, which interleaves floor runs with its own so that their ratios come from one sitting.
import { spawn, type ChildProcess } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { sleep } from './_harness.ts'
import { CLOCK_TICKS_PER_S, cpuTicks, machineTicks, memoryKb, memoryStats, secs, stats } from './_proc.ts'
import type { FloorNodeConfig } from './_floor-node.ts'

/** The floor node's bundle file, next to the lab's agent bundle. */
const FLOOR_BUNDLE_NAME = 'floor-node.mjs'
const FLOOR_ENTRY = join('bench', '_floor-node.ts')

interface Proc { child: ChildProcess, spawnedAt: number, events: Map<string, number>, stderr: string[], exited: boolean }

/** What one floor run needs: whether the nodes run the DHT, how long they may take, where progress goes. */
export interface FloorOptions { dht: boolean, timeoutMs: number, progress: (msg: string) => void }

/**
 * One floor run of `n` nodes (floor.ts, and lab.ts interleaved with its own rounds):
 * builds the topology, starts the floor nodes at once, waits until each heard every
 * other, and takes it all down (also on failure).
 */
export async function floorOnce (n: number, opt: FloorOptions, signal: AbortSignal): Promise<Record<string, unknown>> {
  const progress = opt.progress
  const { createLab, DEFAULT_AGENT_NODE_ARGS, LAB_COMPILE_CACHE, LAB_P2P_PORT } = await import('../netns-lab/index.ts')
  const { hostArgv } = await import('../netns-lab/run.ts')
  const { ensureBundle, LAB_BUNDLE, REPO_ROOT } = await import('../build/bundle.ts')
  const { generateKeyPair, privateKeyToProtobuf } = await import('@libp2p/crypto/keys')
  const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')
  const { generateToken } = await import('../token/index.ts')

  const script = await ensureBundle(REPO_ROOT, join(dirname(LAB_BUNDLE), FLOOR_BUNDLE_NAME), FLOOR_ENTRY)
  const env = { ...process.env, NODE_COMPILE_CACHE: join(REPO_ROOT, LAB_COMPILE_CACHE) }
  const lab = createLab({ nodes: n, agents: false, ...(process.env.KAIROS_BENCH_LAB_ROOT === undefined ? {} : { root: process.env.KAIROS_BENCH_LAB_ROOT }) })
  const procs: Proc[] = []
  try {
    progress(`N=${n}: topology up`)
    const rec = await lab.up(signal)
    // Like the lab's agents: the bundle compiled once into the compile cache before they start.
    await run([rec.nodePath, ...DEFAULT_AGENT_NODE_ARGS, script, '--warm'], env)
    const token = generateToken()
    const keys = await Promise.all(rec.hosts.map(async () => await generateKeyPair('Ed25519')))
    const peers = rec.hosts.map((h, i) => ({ id: peerIdFromPrivateKey(keys[i] as never).toString(), addr: `/ip4/${h.address}/tcp/${LAB_P2P_PORT}` }))
    const configs = await Promise.all(rec.hosts.map(async (h, i) => {
      const cfg: FloorNodeConfig = { key: Buffer.from(privateKeyToProtobuf(keys[i] as never)).toString('base64'), listen: peers[i]?.addr ?? '', token, peers, dht: opt.dht }
      const file = join(h.dir, 'floor.json')
      await writeFile(file, JSON.stringify(cfg), { mode: 0o600 })
      return file
    }))

    const cpuBefore = await machineTicks()
    rec.hosts.forEach((h, i) => {
      const argv = [rec.nodePath, ...DEFAULT_AGENT_NODE_ARGS, script, configs[i] as string]
      const full = h.holderPid === undefined ? ['nsenter', `--net=/run/netns/${h.ns}`, '--', ...argv] : hostArgv(h.ns, h.holderPid, argv)
      const child = spawn(full[0] as string, full.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env })
      const p: Proc = { child, spawnedAt: Date.now(), events: new Map(), stderr: [], exited: false }
      createInterface({ input: child.stdout }).on('line', (line) => {
        try {
          const e = JSON.parse(line) as { event: string, at: number }
          if (!p.events.has(e.event)) p.events.set(e.event, e.at)
        } catch { /* not an event */ }
      })
      createInterface({ input: child.stderr }).on('line', (line) => { p.stderr.push(line); if (p.stderr.length > 20) p.stderr.shift() })
      child.on('exit', () => { p.exited = true })
      procs.push(p)
    })
    progress(`N=${n}: ${n} floor nodes spawned`)

    const deadline = Date.now() + opt.timeoutMs
    while (!procs.every((p) => p.events.has('heard'))) {
      const dead = procs.find((p) => p.exited)
      if (dead !== undefined) throw new Error(`a floor node exited early: ${dead.stderr.join(' | ')}`)
      if (Date.now() > deadline) throw new Error(`not every node heard every other within ${opt.timeoutMs / 1000} s (${procs.filter((p) => p.events.has('heard')).length} of ${n} did; events: ${procs.map((p) => [...p.events.keys()].join('+') || 'none').join(', ')}; ${procs.flatMap((p) => p.stderr).slice(-3).join(' | ')})`)
      await sleep(20, signal)
    }
    const cpuAfter = await machineTicks()
    const pids = procs.flatMap((p) => p.child.pid === undefined ? [] : [p.child.pid])
    const cpu = (await Promise.all(pids.map(cpuTicks))).filter((v) => v !== undefined)
    const memory = await Promise.all(pids.map(memoryKb))
    // Gossip may reach everyone before every link is up (a dial to a starved peer waits out its timeout).
    while (!procs.every((p) => p.events.has('linked')) && Date.now() < deadline && !procs.some((p) => p.exited)) await sleep(20, signal)

    const all = (event: string): number[] => procs.map((p) => p.events.get(event) ?? NaN)
    const started = all('started')
    const lastStart = Math.max(...started)
    const firstSpawn = Math.min(...procs.map((p) => p.spawnedAt))
    const latest = (event: string): number | undefined => { const t = Math.max(...all(event)); return Number.isFinite(t) ? t : undefined }
    return {
      nodes: n,
      dht: opt.dht,
      startS: { ...stats(procs.map((p, i) => ((started[i] ?? NaN) - p.spawnedAt) / 1000)), firstSpawnToLastStarted: secs(lastStart - firstSpawn) },
      fromLastStartS: { allLinked: secs((latest('linked') ?? NaN) - lastStart), allHeard: secs((latest('heard') ?? NaN) - lastStart) },
      linkedNodes: procs.filter((p) => p.events.has('linked')).length,
      fromFirstSpawnS: { allHeard: secs((latest('heard') ?? NaN) - firstSpawn) },
      cpuSecondsAtHeard: stats(cpu.map((t) => t / CLOCK_TICKS_PER_S)),
      memoryMbAtHeard: memoryStats(memory),
      machineBusyPct: Math.round(100 * (cpuAfter.busy - cpuBefore.busy) / Math.max(1, cpuAfter.total - cpuBefore.total))
    }
  } finally {
    for (const p of procs) if (!p.exited) p.child.kill('SIGTERM')
    const until = Date.now() + 5000
    while (procs.some((p) => !p.exited) && Date.now() < until) await sleep(50)
    for (const p of procs) if (!p.exited) p.child.kill('SIGKILL')
    progress(`N=${n}: lab down`)
    // Also ends any floor node that outlived the signals: the lab ends every process in its namespaces.
    await lab.down().catch((err: unknown) => { progress(`lab down failed: ${String(err)}`) })
  }
}

async function run (argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const { execa } = await import('execa')
  await execa(argv[0] as string, argv.slice(1), { env, stdin: 'ignore' })
}
