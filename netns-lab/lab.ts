/**
 * The netns lab: a whole edge site on one machine. `createLab` builds the topology,
 * writes each host's cloud-config and drives the hosts (up, down, kill, restart,
 * power cycle, partitions); host processes are in `host-processes.ts`, status and the
 * timeline report in `lab-status.ts`.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { distArtefactDir } from '../build/artefact-name.ts'
import { deepMerge, type YamlMap } from '../config/merge.ts'
import { generateToken } from '../token/index.ts'
import { systemClock, type Clock } from '../util/clock.ts'
import { silentLogger, type Logger } from '../util/log.ts'
import { cryptoRandom, type RandomSource } from '../util/random.ts'
import { hostCloudConfig, listenAddr, renderCloudConfig } from './cloud-config.ts'
import { LabAgentExitedError, LabCommandError, LabExistsError, LabInputError, LabNotFoundError, LabTimeoutError, UnknownNodeError } from './errors.ts'
import { artefactLauncher, createHostProcesses, ensureIdentity } from './host-processes.ts'
import { STANDIN_PORT, type RegisteredNode } from './k3s-standin.ts'
import {
  readAgentStatus, readClusters, readNodeStatus, summarizeStatus, writeTimelineReport,
  type AgentStatusView, type LabStatus
} from './lab-status.ts'
import { allocateLabIndex, DEFAULT_LAB_ROOT, labDir, listLabIds, readLabRecord, resolveLabId, writeLabRecord, type HostRecord, type LabRecord } from './meta.ts'
import { labPrefix, planTopology, strictMajority } from './plan.ts'
import type { TimelineReport } from './report.ts'
import { createRunner, hostArgv, type RunResult, type Runner } from './run.ts'
import { teardownLab, type TeardownReport } from './teardown.ts'
import { applyImpairment, applyPartitions, buildTopology, mapLimit } from './topology.ts'

export { DEFAULT_AGENT_NODE_ARGS, IDENTITY_FILE, LAB_COMPILE_CACHE } from './host-processes.ts'
export {
  isFormed, LAST_STATUS_FILE, summarizeStatus,
  type AgentStatusView, type ClusterView, type LabStatus, type NodeStatus
} from './lab-status.ts'

/** Default interval of `waitFor` polls, ms. */
export const DEFAULT_WAIT_INTERVAL_MS = 250
/** Time an agent gets to stop cleanly on `restart --agent` before SIGKILL, ms. */
export const AGENT_STOP_GRACE_MS = 5000
/** Default `waitFor` deadline, ms. */
export const DEFAULT_WAIT_TIMEOUT_MS = 120_000
/** Default deadline of a stand-in registration from inside a lab host, ms. */
export const DEFAULT_INSTALL_TIMEOUT_MS = 300_000

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')

/** Node binary for lab processes: this one when it is Node 22 or later, else the project's pinned Node. */
export function defaultNodePath (repoRoot: string = REPO_ROOT): string {
  const major = Number(process.versions.node.split('.')[0])
  if (major >= 22) return process.execPath
  const pinned = join(repoRoot, 'node_modules', 'node', 'bin', 'node')
  return existsSync(pinned) ? pinned : process.execPath
}

/**
 * Throws LabAgentExitedError when a powered host's agent is no longer running, naming
 * the end of its log: a `waitFor` predicate guard for callers that never stop agents.
 */
export async function assertAgentsAlive (lab: Lab, status: LabStatus): Promise<void> {
  const dead = status.nodes.find((n) => n.powered && !n.running)
  if (dead === undefined) return
  const host = (await lab.record()).hosts.find((h) => h.name === dead.name)
  const logPath = host?.logPath ?? '(unknown)'
  let tail = ''
  try { tail = (await readFile(logPath, 'utf8')).trimEnd().split('\n').slice(-8).join('\n') } catch { tail = '(no log)' }
  throw new LabAgentExitedError(dead.name, logPath, tail)
}

/** The names of `group`, each a host of `r`, the groups disjoint; LabInputError otherwise. */
function checkGroup (r: LabRecord, group: readonly string[]): string[] {
  if (group.length === 0) throw new LabInputError('a partition needs two non-empty groups of nodes, e.g. n1-n3/n4-n5')
  for (const n of group) {
    if (!r.hosts.some((h) => h.name === n)) throw new LabInputError(`partition names node '${n}', which this lab does not have; expected one of n1…n${r.hosts.length}`)
  }
  return [...group]
}

/** Options of `createLab`; the topology options matter only to `up`. */
export interface LabInit {
  /** Lab id `[a-z0-9]{1,6}`. @default four random characters (on `up`); the only lab under `root` otherwise */
  id?: string
  /** Dir holding every lab's dir. @default '/tmp/kairos-lab' */
  root?: string
  /** Number of hosts (for `up`). @default 3 */
  nodes?: number
  /** Routed segments. @default 1 */
  segments?: number
  /** Packet loss on every host veth, percent. @default 0 */
  lossPct?: number
  /** Delay on every host veth, ms (needs tc netem). @default 0 */
  delayMs?: number
  /** Network token. @default `p2p.network_token` of `baseConfig`, else a generated one */
  token?: string
  /** The user's cloud-config, merged under the lab's keys. */
  baseConfig?: YamlMap
  /** `p2p.minimum_nodes`. @default `baseConfig`'s, else a strict majority of `nodes` */
  minimumNodes?: number
  /**
   * Per-host token and cloud-config additions (merged over `baseConfig`), e.g. a second
   * site with another token on the same bridge. @default none
   */
  hostOverrides?: (host: HostRecord) => { token?: string, config?: YamlMap, minimumNodes?: number } | undefined
  /**
   * Partitions in place before any agent starts (pairs of node-name groups that cannot
   * reach each other), as `partition` would make them later. @default none
   */
  partitions?: ReadonlyArray<readonly [readonly string[], readonly string[]]>
  /** Start one agent per host on `up`; false builds the topology only. @default true */
  agents?: boolean
  /** Node 24 binary for agents and stand-ins. @default process.execPath under Node ≥ 22, else node_modules/node/bin/node */
  nodePath?: string
  /** Node options for agents. @default DEFAULT_AGENT_NODE_ARGS */
  nodeArgs?: string[]
  /** Checkout holding cli/main.ts and netns-lab/k3s-standin.ts. @default this checkout */
  repoRoot?: string
  /**
   * argv of a host's agent (run inside the host). @default [nodePath, ...nodeArgs, the
   * agent bundle (see `agentEntry`), 'agent', '--config', host.configPath, ...agentArgs]
   */
  agentCommand?: (host: HostRecord, lab: LabRecord) => string[]
  /** Options appended to the default agent command, e.g. `['--preset', 'lan']`. @default none */
  agentArgs?: string[]
  /**
   * An unpacked self-contained artefact (`dist/kairos-p2p-<version>-linux-x64`): every
   * host runs its `bin/kairos-p2p` as the systemd unit does, with no `p2p.state_dir` in
   * its config, so the state lands in the default dir (/var/lib/kairos/p2p), which
   * each host's mount namespace binds to the host's own state dir; `true`: the one in
   * `repoRoot`'s dist/. @default the bundle on `nodePath`
   */
  artefact?: string | true
  /**
   * The script agents run. @default the single-file bundle of this checkout (rebuilt by
   * `build/bundle.ts` when a source changed), or the running bundle itself; the
   * TypeScript sources when the bundler is not installed.
   */
  agentEntry?: (lab: LabRecord) => Promise<string>
  /** Reads a running agent's status. @default GET /status on `<state_dir>/agent.sock` */
  readStatus?: (host: HostRecord, signal?: AbortSignal) => Promise<AgentStatusView>
  /** Stand-in registration deadline inside a host, ms. @default 300000 */
  installTimeoutMs?: number
  run?: Runner
  clock?: Clock
  random?: RandomSource
  logger?: Logger
}

/** Options of `waitFor`. */
export interface WaitOptions {
  /** @default 120000 */
  timeoutMs?: number
  /** @default 250 */
  intervalMs?: number
  signal?: AbortSignal
  /** What is awaited, for the timeout message. @default 'condition' */
  what?: string
}

/** A lab: build, drive and remove a whole site in network namespaces. */
export interface Lab {
  /** The lab id (resolved on first use when not given). */
  id: () => Promise<string>
  /** The lab dir. */
  dir: () => Promise<string>
  /** lab.json as last read or written. */
  record: () => Promise<LabRecord>
  /** Builds the topology and starts the agents. LabExistsError when the id is taken. */
  up: (signal?: AbortSignal) => Promise<LabRecord>
  status: (signal?: AbortSignal) => Promise<LabStatus>
  /**
   * Removes everything of the lab (also after a crash) but its report files; `keepFiles`
   * keeps the whole lab dir, `keepReports: false` removes the reports too. Idempotent.
   */
  down: (options?: { keepFiles?: boolean, keepReports?: boolean }) => Promise<TeardownReport>
  /**
   * Powers a host off hard: every process in it (agent, stand-in, wireguard-go) gets
   * SIGKILL. With `agentOnly` only the agent process is killed (a crash; the overlay
   * and the stand-in stay).
   */
  kill: (node: string, options?: { agentOnly?: boolean }) => Promise<void>
  /**
   * Boots a host again (after powering it off when it runs): fresh /run, agent, its k3s
   * stand-in server if it had one. With `agentOnly` only the agent is restarted
   * (SIGTERM, then a new agent process) and the rest of the host keeps running.
   */
  restart: (node: string, options?: { agentOnly?: boolean, signal?: AbortSignal }) => Promise<void>
  /** Powers every host off hard and boots them all again; state dirs stay. */
  powerCycle: (signal?: AbortSignal) => Promise<void>
  /** Cuts every host of group `a` off from every host of group `b` (both ways). */
  partition: (a: string | readonly string[], b: string | readonly string[]) => Promise<void>
  /** Removes every partition. */
  heal: () => Promise<void>
  /** Runs `argv` inside a host (its network and mount namespaces). */
  exec: (node: string, argv: readonly string[], signal?: AbortSignal) => Promise<RunResult>
  /** Polls `status()` until `predicate` holds; LabTimeoutError with the last state otherwise. */
  waitFor: (predicate: (s: LabStatus) => boolean, options?: WaitOptions) => Promise<LabStatus>
  /** Writes timeline.json and timeline.svg into `outDir` (default the lab dir). */
  report: (outDir?: string, signal?: AbortSignal) => Promise<{ json: string, svg: string, report: TimelineReport }>
}

const ID_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789'

/** A fresh lab id: a letter and three letters or digits. */
export function randomLabId (random: RandomSource): string {
  let id = ID_CHARS[random.int(26)] ?? 'a'
  for (let i = 0; i < 3; i++) id += ID_CHARS[random.int(ID_CHARS.length)] ?? '0'
  return id
}

function groups (g: string | readonly string[]): string[] {
  return (typeof g === 'string' ? g.split(',') : [...g]).map((s) => s.trim()).filter((s) => s !== '')
}

/** A lab handle; nothing happens until a method is called. */
export function createLab (init: LabInit = {}): Lab {
  const root = init.root ?? DEFAULT_LAB_ROOT
  const run = init.run ?? createRunner()
  const clock = init.clock ?? systemClock
  const random = init.random ?? cryptoRandom
  const log = init.logger ?? silentLogger
  const readStatus = init.readStatus ?? readAgentStatus
  let labId = init.id
  let rec: LabRecord | undefined

  const resolveId = async (): Promise<string> => {
    if (labId !== undefined) return labId
    labId = await resolveLabId(root, undefined)
    return labId
  }

  const load = async (): Promise<LabRecord> => {
    const id = await resolveId()
    const r = await readLabRecord(root, id)
    if (r === undefined) {
      const others = await listLabIds(root)
      throw new LabNotFoundError(`no lab '${id}' under ${root} (no ${join(labDir(root, id), 'lab.json')}); ${others.length === 0 ? "no labs there; start one with 'kairos-p2p lab up --nodes N'" : `labs there: ${others.join(', ')}`}`)
    }
    rec = r
    return r
  }

  const save = async (): Promise<void> => {
    if (rec !== undefined) await writeLabRecord(rec)
  }

  const hostOf = (r: LabRecord, name: string): HostRecord => {
    const h = r.hosts.find((x) => x.name === name)
    if (h === undefined) throw new UnknownNodeError(name, r.hosts.map((x) => x.name))
    return h
  }

  const {
    standinScript, warmCompileCache, startHostHolder, liveHolder, agentRunning, powerOff, stopAgent, startAgent, startStandinAgain
  } = createHostProcesses(init, run, clock, log)

  const boot = async (r: LabRecord, hosts: HostRecord[], signal?: AbortSignal): Promise<void> => {
    await mapLimit(hosts, 4, async (h) => {
      h.holderPid = await liveHolder(h) ?? await startHostHolder(r, h, signal)
    })
    await save()
    await warmCompileCache(r, hosts.length, signal)
    for (const h of hosts) await startAgent(r, h)
    await save()
    for (const h of hosts) await startStandinAgain(r, h)
  }

  const status = async (signal?: AbortSignal): Promise<LabStatus> => {
    const r = await load()
    const clusters = await readClusters(r)
    const registered = new Map<string, RegisteredNode>()
    for (const c of clusters) for (const n of c.nodes) registered.set(n.name, n)
    const inits = new Set(clusters.map((c) => c.server))
    const nodes = await mapLimit(r.hosts, 8, async (h) => await readNodeStatus(h, registered, inits, { liveHolder, agentRunning, readStatus }, signal))
    return { id: r.id, at: clock.now(), nodes, clusters }
  }

  const up = async (signal?: AbortSignal): Promise<LabRecord> => {
    const id = labId ?? randomLabId(random)
    labId = id
    const nodes = init.nodes ?? 3
    const plan = planTopology({ id, index: await allocateLabIndex(root), nodes, ...(init.segments === undefined ? {} : { segments: init.segments }) })
    const lossPct = init.lossPct ?? 0
    const delayMs = init.delayMs ?? 0
    if (!(lossPct >= 0 && lossPct <= 100)) throw new LabInputError(`--loss ${lossPct} is out of range; expected a percentage from 0 to 100`)
    if (!(Number.isInteger(delayMs) && delayMs >= 0 && delayMs <= 60_000)) throw new LabInputError(`--delay ${delayMs} is out of range; expected whole milliseconds from 0 to 60000`)
    const baseP2p = (init.baseConfig?.p2p ?? {}) as YamlMap
    const minimumNodes = init.minimumNodes ?? (typeof baseP2p.minimum_nodes === 'number' ? baseP2p.minimum_nodes : strictMajority(nodes))
    if (!Number.isInteger(minimumNodes) || minimumNodes < 1) throw new LabInputError(`--min ${minimumNodes} is invalid; expected a positive integer`)
    if (await readLabRecord(root, id) !== undefined) throw new LabExistsError(id, join(labDir(root, id), 'lab.json'))
    const listed = await run(['ip', 'netns', 'list'], { reject: false })
    if (listed.stdout.split('\n').some((l) => l.startsWith(labPrefix(id)))) throw new LabExistsError(id, `namespaces ${labPrefix(id)}* exist`)
    const dir = labDir(root, id)
    const token = init.token ?? (typeof baseP2p.network_token === 'string' && baseP2p.network_token !== '' ? baseP2p.network_token : generateToken(random))
    const repoRoot = init.repoRoot ?? REPO_ROOT
    const nodePath = init.nodePath ?? defaultNodePath(repoRoot)
    const { hosts: planned, ...planRest } = plan
    const r: LabRecord = {
      version: 1, id, dir, createdAt: clock.now(), plan: planRest,
      hosts: planned.map((h) => {
        const hostDir = join(dir, 'hosts', h.name)
        return { ...h, dir: hostDir, stateDir: join(hostDir, 'state'), configPath: join(hostDir, 'cloud-config.yaml'), logPath: join(hostDir, 'agent.log') }
      }),
      lossPct, delayMs, impairment: 'none', minimumNodes, tokenFile: join(dir, 'token'), bootstrapPeers: [],
      nodePath, repoRoot, partitions: [],
      ...(init.artefact === undefined ? {} : { artefact: init.artefact === true ? await distArtefactDir(repoRoot) : init.artefact })
    }
    if (r.artefact !== undefined) {
      artefactLauncher(r.artefact)
      // The bind source must stay visible once the host has its own /var/lib.
      if (`${dir}/`.startsWith('/var/lib/')) throw new LabInputError(`a lab running the artefact cannot live under /var/lib (got --dir ${root}): each host mounts its own /var/lib`)
    }
    await mkdir(dir, { recursive: true, mode: 0o700 })
    await writeFile(r.tokenFile, token + '\n', { mode: 0o600 })
    rec = r
    await save()
    try {
      await buildTopology(plan, run, signal)
      r.impairment = await applyImpairment(planned, lossPct, delayMs, run, signal)
      await save()
      for (const h of r.hosts) {
        await mkdir(h.stateDir, { recursive: true, mode: 0o700 })
        await mkdir(join(h.dir, 'k3s'), { recursive: true })
      }
      const first = r.hosts[0]
      if (plan.segments.length > 1 && first !== undefined) {
        r.bootstrapPeers = [`${listenAddr(first.address)}/p2p/${await ensureIdentity(first.stateDir)}`]
      }
      const script = await standinScript(r)
      for (const h of r.hosts) {
        const installer = [nodePath, script, 'install', '--name', h.name, '--dir', join(h.dir, 'k3s'),
          '--port', String(STANDIN_PORT), '--timeout-ms', String(init.installTimeoutMs ?? DEFAULT_INSTALL_TIMEOUT_MS)]
        const over = init.hostOverrides?.(h)
        const base = over?.config === undefined ? init.baseConfig : deepMerge(init.baseConfig ?? {}, over.config)
        const doc = hostCloudConfig({ host: h, token: over?.token ?? token, minimumNodes: over?.minimumNodes ?? minimumNodes, bootstrapPeers: r.bootstrapPeers, installerCommand: installer, k3sDataDir: join(h.dir, 'k3s', 'data'), defaultStateDir: r.artefact !== undefined, ...(base === undefined ? {} : { base }) })
        await writeFile(h.configPath, renderCloudConfig(doc, h.configPath), { mode: 0o600 })
      }
      await mapLimit(r.hosts, 4, async (h) => { h.holderPid = await startHostHolder(r, h, signal) })
      await save()
      if (init.partitions !== undefined && init.partitions.length > 0) {
        r.partitions = init.partitions.map(([a, b]) => [checkGroup(r, a), checkGroup(r, b)])
        await applyPartitions(r.hosts, r.partitions, run, signal)
        await save()
      }
      if (init.agents !== false) {
        await warmCompileCache(r, r.hosts.length, signal)
        for (const h of r.hosts) await startAgent(r, h)
        await save()
      }
      log.info('lab up', { id, nodes, segments: plan.segments.length })
      return r
    } catch (err) {
      await teardownLab({ root, id, run, clock })
      rec = undefined
      throw err
    }
  }

  const waitFor = async (predicate: (s: LabStatus) => boolean, options: WaitOptions = {}): Promise<LabStatus> => {
    const timeoutMs = options.timeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS
    const deadline = clock.now() + timeoutMs
    for (;;) {
      const s = await status(options.signal)
      if (predicate(s)) return s
      if (clock.now() >= deadline) throw new LabTimeoutError(options.what ?? 'condition', timeoutMs, summarizeStatus(s))
      await clock.sleep(options.intervalMs ?? DEFAULT_WAIT_INTERVAL_MS, options.signal)
    }
  }
  const report = async (outDir?: string, signal?: AbortSignal): Promise<{ json: string, svg: string, report: TimelineReport }> => {
    const r = await load()
    const s = await status(signal)
    return await writeTimelineReport(r, s, clock, outDir)
  }

  return {
    id: resolveId,
    dir: async () => labDir(root, await resolveId()),
    record: async () => rec ?? await load(),
    up,
    status,
    down: async (options = {}) => {
      const id = await resolveId()
      rec = undefined
      return await teardownLab({
        root, id, run, clock,
        ...(options.keepFiles === undefined ? {} : { keepFiles: options.keepFiles }),
        ...(options.keepReports === undefined ? {} : { keepReports: options.keepReports })
      })
    },
    kill: async (node, options = {}) => {
      const r = await load()
      const h = hostOf(r, node)
      if (options.agentOnly === true) await stopAgent(h, 0)
      else await powerOff(h)
      await save()
    },
    restart: async (node, options = {}) => {
      const r = await load()
      const h = hostOf(r, node)
      if (options.agentOnly === true) {
        await stopAgent(h, AGENT_STOP_GRACE_MS)
        const holder = await liveHolder(h)
        if (holder === undefined) throw new LabCommandError([], `host ${node} is powered off; restart it without --agent`)
        await startAgent(r, h)
        await save()
        return
      }
      await powerOff(h)
      await boot(r, [h], options.signal)
    },
    powerCycle: async (signal) => {
      const r = await load()
      await mapLimit(r.hosts, 8, async (h) => { await powerOff(h) })
      await save()
      await boot(r, r.hosts, signal)
    },
    partition: async (a, b) => {
      const r = await load()
      const ga = groups(a)
      const gb = groups(b)
      if (ga.length === 0 || gb.length === 0) throw new LabInputError('partition needs two non-empty groups of nodes, e.g. n1,n2 n3')
      for (const n of [...ga, ...gb]) hostOf(r, n)
      const overlap = ga.filter((n) => gb.includes(n))
      if (overlap.length > 0) throw new LabInputError(`partition groups overlap on ${overlap.join(', ')}; expected disjoint groups`)
      r.partitions.push([ga, gb])
      await applyPartitions(r.hosts, r.partitions, run)
      await save()
    },
    heal: async () => {
      const r = await load()
      r.partitions = []
      await applyPartitions(r.hosts, [], run)
      await save()
    },
    exec: async (node, argv, signal) => {
      const r = await load()
      const h = hostOf(r, node)
      const holder = await liveHolder(h)
      if (holder === undefined) throw new LabCommandError([...argv], `host ${node} is powered off; 'lab restart ${node}' boots it`)
      return await run(hostArgv(h.ns, holder, argv), { reject: false, ...(signal === undefined ? {} : { signal }) })
    },
    waitFor,
    report
  }
}