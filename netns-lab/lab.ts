import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdir, open, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { queryAgent } from '../agent/api.ts'
import { unitCommand } from '../box/unit.ts'
import { distArtefactDir } from '../build/artefact-name.ts'
import { DEFAULT_STATE_DIR } from '../config/defaults.ts'
import { deepMerge, type YamlMap } from '../config/merge.ts'
import { generateToken } from '../token/index.ts'
import { systemClock, type Clock } from '../util/clock.ts'
import { BUNDLED } from '../util/bundled.ts'
import { errorMessage } from '../util/errors.ts'
import { silentLogger, type Logger } from '../util/log.ts'
import { cryptoRandom, type RandomSource } from '../util/random.ts'
import { hostCloudConfig, listenAddr, renderCloudConfig } from './cloud-config.ts'
import { LabAgentExitedError, LabCommandError, LabExistsError, LabInputError, LabNotFoundError, LabTimeoutError, UnknownNodeError } from './errors.ts'
import {
  readRegistry, REGISTRY_FILE, SERVER_FILE, STANDIN_PORT, TOKENS_FILE,
  type RegisteredNode, type ServerRecord, type StandinTokens
} from './k3s-standin.ts'
import { allocateLabIndex, DEFAULT_LAB_ROOT, labDir, listLabIds, readLabRecord, resolveLabId, writeLabRecord, type HostRecord, type LabRecord } from './meta.ts'
import { labPrefix, planTopology, strictMajority } from './plan.ts'
import { isRunning, namespaceInode, processComm, processesInNamespaces, processNetInode, terminate } from './processes.ts'
import { buildTimelineReport, renderTimelineSvg, type NodeTimeline, type TimelineReport } from './report.ts'
import { createRunner, hostArgv, type RunResult, type Runner } from './run.ts'
import { teardownLab, type TeardownReport } from './teardown.ts'
import { applyImpairment, applyPartitions, buildTopology, mapLimit, startHolder } from './topology.ts'

/** File name of the peer identity the p2p layer reads from the state dir (p2p/identity.ts). */
export const IDENTITY_FILE = 'identity.key'
/** Last status read from each agent, kept in its host dir so a report still has the timeline of a killed node. */
export const LAST_STATUS_FILE = 'last-status.json'
/** Default interval of `waitFor` polls, ms. */
export const DEFAULT_WAIT_INTERVAL_MS = 250
/** Time an agent gets to stop cleanly on `restart --agent` before SIGKILL, ms. */
export const AGENT_STOP_GRACE_MS = 5000
/**
 * Node options of lab agents: a 1 MB young generation (about 140 MB RSS per agent at
 * N=10 instead of about 200 MB). No old-space cap: with `--max-old-space-size=64` an
 * agent ran out of heap during a 30-node formation on a saturated 2-core machine.
 */
export const DEFAULT_AGENT_NODE_ARGS: readonly string[] = Object.freeze(['--max-semi-space-size=1'])
/** How long after its spawn an agent still outside the host's namespace counts as starting, ms. */
const JUST_SPAWNED_MS = 5_000
/** Default `waitFor` deadline, ms. */
export const DEFAULT_WAIT_TIMEOUT_MS = 120_000
/** Default deadline of a stand-in registration from inside a lab host, ms. */
export const DEFAULT_INSTALL_TIMEOUT_MS = 300_000

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')

/** The part of an agent's `GET /status` the lab reads; every field optional so an older or partial agent still shows. */
export interface AgentStatusView {
  peerId?: string
  phase?: string
  role?: string
  awaiting?: number
  leader?: string
  /** Why it waits (agents with reasons): `text` is what `kairos-p2p status` prints. */
  reason?: { code?: string, text?: string, since?: number }
  warnings?: string[]
  peers?: unknown[]
  overlay?: { address?: string, interface?: string, peers?: Array<{ peerId?: string, endpoint?: string, latestHandshake?: number, up?: boolean }> }
  timeline?: Array<{ event: string, at: number }>
  mesh?: { connections?: number, dials?: { ok?: number, failed?: number } }
}

/** One node as `lab status` shows it. */
export interface NodeStatus {
  name: string
  ns: string
  segment: number
  address: string
  /** The host is powered (its mount-namespace holder runs). */
  powered: boolean
  /** The agent process runs. */
  running: boolean
  agentPid?: number
  /** Why the agent's status could not be read. */
  error?: string
  peerId?: string
  phase?: string
  /** The agent's reason for a non-final phase, as `kairos-p2p status` prints it. */
  reason?: string
  /** The agent's warnings (weak configuration, installer failures). */
  warnings?: string[]
  role?: string
  overlayAddress?: string
  /** Overlay peers with a recent handshake / all overlay peers. */
  handshakes: { up: number, total: number }
  /** Peers the agent knows. */
  peers: number
  /** Registered at a k3s stand-in. */
  joined: boolean
  /** How it is registered, when joined. */
  registeredAs?: 'server' | 'agent'
  /** The host name is registered, but with another address than its agent's: an earlier identity of the host (wiped since). */
  registeredEarlier?: string
  /**
   * It is the init server: its agent says so, or (no agent answering) its host runs the
   * cluster-init stand-in. A host wiped and booted afresh is a new node, not the init server.
   */
  init: boolean
  agent?: AgentStatusView
}

/** One stand-in server's registry: a cluster as k3s would see it. */
export interface ClusterView {
  /** Node running the cluster-init stand-in. */
  server: string
  address: string
  port: number
  /** The stand-in process runs. */
  running: boolean
  nodes: RegisteredNode[]
}

/** The whole lab at one moment: every node and every stand-in cluster. */
export interface LabStatus {
  id: string
  at: number
  nodes: NodeStatus[]
  clusters: ClusterView[]
}

/** Exactly one cluster, its stand-in server running, and every listed node (default: all) registered in it and reporting `joined`. */
export function isFormed (status: LabStatus, nodes: readonly string[] = status.nodes.map((n) => n.name)): boolean {
  const [only, ...more] = status.clusters
  if (only === undefined || more.length > 0 || !only.running) return false
  const names = new Set(only.nodes.map((n) => n.name))
  // The registry outlives a power cycle, so each node's own agent must also say it joined.
  const joined = new Set(status.nodes.filter((n) => n.running && n.phase === 'joined').map((n) => n.name))
  return nodes.every((n) => names.has(n) && joined.has(n))
}

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

/** One line per node, for error messages and logs. */
export function summarizeStatus (s: LabStatus): string {
  const nodes = s.nodes.map((n) => `${n.name}:${n.running ? (n.phase ?? 'no-status') : (n.powered ? 'stopped' : 'off')}/${n.role ?? '-'}${n.joined ? '/joined' : ''}`)
  return `${nodes.join(' ')}; clusters: ${s.clusters.length === 0 ? 'none' : s.clusters.map((c) => `${c.server}[${c.nodes.map((n) => n.name).join(',')}]`).join(' ')}`
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

async function defaultReadStatus (host: HostRecord, signal?: AbortSignal): Promise<AgentStatusView> {
  signal?.throwIfAborted()
  return JSON.parse(await queryAgent(host.stateDir, '/status', 2000)) as AgentStatusView
}

async function writeJson (path: string, value: unknown, mode = 0o644): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, JSON.stringify(value, null, 2) + '\n', { mode })
  await rename(tmp, path)
}

async function readJson<T> (path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T
  } catch {
    return undefined
  }
}

/** Spawns a detached long-lived process (argument array) with output appended to `logPath`; returns its PID. */
async function spawnDetached (argv: readonly string[], logPath: string, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [file, ...args] = argv
  if (file === undefined) throw new LabCommandError([], 'empty command')
  const log = await open(logPath, 'a')
  try {
    const child = spawn(file, args, { detached: true, stdio: ['ignore', log.fd, log.fd], env })
    child.on('error', () => { /* a process that never runs shows as not running */ })
    child.unref()
    if (child.pid === undefined) throw new LabCommandError([...argv], 'could not spawn')
    return child.pid
  } finally {
    await log.close()
  }
}

/**
 * A bundle of this checkout's `entry` for lab processes, built or refreshed by
 * build/bundle.ts (`out` picks its place); the TypeScript sources when the bundler
 * cannot run (for example it is not installed).
 */
async function labBundle (repoRoot: string, entry: string, out: (bundle: typeof import('../build/bundle.ts')) => string, what: string, log: Logger): Promise<string> {
  try {
    const bundle = await import('../build/bundle.ts')
    return await bundle.ensureBundle(repoRoot, out(bundle), entry)
  } catch (err) {
    log.warn(`cannot bundle ${what}; it runs from the TypeScript sources`, { error: errorMessage(err) })
    return join(repoRoot, entry)
  }
}

/** The script lab agents run by default: the running bundle when the lab itself runs from one, else `labBundle`. */
async function defaultAgentEntry (repoRoot: string, log: Logger): Promise<string> {
  if (BUNDLED) return fileURLToPath(import.meta.url)
  return await labBundle(repoRoot, join('cli', 'main.ts'), (b) => b.LAB_BUNDLE, 'the agent', log)
}

/** The stand-in's entry module, relative to the checkout. */
const STANDIN_ENTRY = join('netns-lab', 'k3s-standin.ts')

/**
 * The script the k3s stand-in runs from: a bundle of it, like the agent's, so none of
 * the install and server processes a formation starts pays for TypeScript (40 ms of
 * CPU and 17 MB each).
 */
async function defaultStandinScript (repoRoot: string, log: Logger): Promise<string> {
  if (BUNDLED) return join(repoRoot, STANDIN_ENTRY)
  return await labBundle(repoRoot, STANDIN_ENTRY, (b) => b.LAB_STANDIN_BUNDLE, 'the k3s stand-in', log)
}

/** Node's compile cache of lab agents, relative to the checkout. */
export const LAB_COMPILE_CACHE = join('node_modules', '.cache', 'kairos-p2p', 'compile')

/**
 * Environment of lab agents: Node's compile cache in the checkout (it survives labs, so
 * only the first lab after a change compiles the sources).
 */
function agentEnv (r: Pick<LabRecord, 'repoRoot'>): NodeJS.ProcessEnv {
  return { ...process.env, NODE_COMPILE_CACHE: join(r.repoRoot, LAB_COMPILE_CACHE) }
}

/**
 * Gives a host (the holder of its mount namespace) its own /var/lib with the default
 * state dir bound to `stateDir`, as on a box: a tmpfs on /var/lib (the machine's stays
 * untouched), then a bind mount of `stateDir` on DEFAULT_STATE_DIR.
 */
async function mountDefaultStateDir (holderPid: number, stateDir: string, run: Runner, signal?: AbortSignal): Promise<void> {
  const inHost = (argv: string[]): string[] => ['nsenter', `--mount=/proc/${holderPid}/ns/mnt`, '--', ...argv]
  const opts = signal === undefined ? {} : { signal }
  await run(inHost(['mount', '-t', 'tmpfs', '-o', 'mode=0755,size=1m', 'kairoslab-varlib', '/var/lib']), opts)
  await run(inHost(['mkdir', '-p', '-m', '0755', DEFAULT_STATE_DIR]), opts)
  await run(inHost(['mount', '--bind', stateDir, DEFAULT_STATE_DIR]), opts)
}

/** `<artefact>/bin/kairos-p2p`, checked to be there; LabInputError naming the way to build it otherwise. */
function artefactLauncher (artefact: string): string {
  const launcher = join(artefact, 'bin', 'kairos-p2p')
  if (!existsSync(launcher)) throw new LabInputError(`no self-contained artefact at ${artefact} (${launcher} is missing); build it with 'npm run build'`)
  return launcher
}

/** Pre-creates (or reads) a host's libp2p identity so its peer id is known before it starts. */
async function ensureIdentity (stateDir: string): Promise<string> {
  const file = join(stateDir, IDENTITY_FILE)
  try {
    return peerIdFromPrivateKey(privateKeyFromProtobuf(new Uint8Array(await readFile(file)))).toString()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new LabInputError(`cannot read peer identity ${file}: ${errorMessage(err)}`)
  }
  const key = await generateKeyPair('Ed25519')
  await mkdir(stateDir, { recursive: true, mode: 0o700 })
  await writeFile(file, privateKeyToProtobuf(key), { mode: 0o600 })
  await chmod(file, 0o600)
  return peerIdFromPrivateKey(key).toString()
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
  const readStatus = init.readStatus ?? defaultReadStatus
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

  /**
   * The script agents run: the bundle, which loads in a quarter of the CPU time of the
   * ~800 source modules (see build/bundle.ts). Resolved once per lab command.
   */
  let entry: Promise<string> | undefined
  const agentEntry = async (r: LabRecord): Promise<string> => {
    entry ??= init.agentEntry?.(r) ?? defaultAgentEntry(r.repoRoot, log)
    return await entry
  }
  let standin: Promise<string> | undefined
  const standinScript = async (r: LabRecord): Promise<string> => {
    standin ??= defaultStandinScript(r.repoRoot, log)
    return await standin
  }

  /**
   * Runs the agent's script once, in one process, so the N agents that start next read
   * it compiled from Node's compile cache instead of each compiling it at once (not for
   * one agent, nor for agents the caller runs its own way). A failure only costs the
   * speed-up: the agents then fill the cache themselves.
   */
  const warmCompileCache = async (r: LabRecord, agents: number, signal?: AbortSignal): Promise<void> => {
    if (init.agentCommand !== undefined || r.artefact !== undefined || agents < 2) return
    const script = await agentEntry(r)
    const argvs = [[r.nodePath, script, 'agent', '--help']]
    // From the sources, also the modules `agent` loads lazily (its help loads neither).
    if (script.endsWith('.ts')) {
      argvs.push([r.nodePath, '--input-type=module', '-e', ['config/index.ts', 'agent/agent.ts'].map((f) => `await import(${JSON.stringify(pathToFileURL(join(r.repoRoot, f)).href)})`).join('; ')])
    }
    for (const argv of argvs) {
      const res = await run(argv, { env: agentEnv(r), reject: false, ...(signal === undefined ? {} : { signal }) })
        .catch((err: unknown) => ({ exitCode: -1, stdout: '', stderr: errorMessage(err) }))
      if (res.exitCode !== 0) { log.warn('warming the compile cache failed', { error: res.stderr.trim() }); return }
    }
  }

  const agentArgv = async (r: LabRecord, h: HostRecord): Promise<string[]> => {
    const custom = init.agentCommand?.(h, r)
    if (custom !== undefined) return custom
    if (r.artefact !== undefined) return [...unitCommand({ launcher: artefactLauncher(r.artefact), config: h.configPath }), ...(init.agentArgs ?? [])]
    return [r.nodePath, ...(init.nodeArgs ?? DEFAULT_AGENT_NODE_ARGS), await agentEntry(r), 'agent', '--config', h.configPath, ...(init.agentArgs ?? [])]
  }

  /** Starts a host's mount-namespace holder; with an artefact, binds its state dir on the default one. */
  const startHostHolder = async (r: LabRecord, h: HostRecord, signal?: AbortSignal): Promise<number> => {
    const pid = await startHolder(h.ns, run, { clock, ...(signal === undefined ? {} : { signal }) })
    if (r.artefact !== undefined) await mountDefaultStateDir(pid, h.stateDir, run, signal)
    return pid
  }

  /** A holder whose PID still lives in the host's namespace, or undefined. */
  const liveHolder = async (h: HostRecord): Promise<number | undefined> => {
    if (h.holderPid === undefined) return undefined
    const ino = await namespaceInode(h.ns)
    if (ino === undefined || !(await isRunning(h.holderPid))) return undefined
    return (await processNetInode(h.holderPid)) === ino ? h.holderPid : undefined
  }

  const agentRunning = async (h: HostRecord): Promise<boolean> => {
    if (h.agentPid === undefined) return false
    const ino = await namespaceInode(h.ns)
    if (ino === undefined || !(await isRunning(h.agentPid))) return false
    const net = await processNetInode(h.agentPid)
    if (net === ino) return true
    // Just spawned: still our fork before its exec, or nsenter before it entered the
    // host's namespaces (both still in our own network namespace).
    if (clock.now() - (h.agentStartedAt ?? 0) <= JUST_SPAWNED_MS && net !== undefined && net === await processNetInode(process.pid)) return true
    return (await processComm(h.agentPid)) === 'nsenter'
  }

  const powerOff = async (h: HostRecord): Promise<void> => {
    const ino = await namespaceInode(h.ns)
    if (ino !== undefined) await terminate(await processesInNamespaces(new Set([ino])), { graceMs: 0, clock })
    delete h.holderPid
    delete h.agentPid
  }

  /** Ends the agent process alone (SIGTERM with `graceMs`, then SIGKILL; 0 = SIGKILL at once). */
  const stopAgent = async (h: HostRecord, graceMs: number): Promise<void> => {
    if (h.agentPid !== undefined && await agentRunning(h)) await terminate([h.agentPid], { graceMs, clock })
    delete h.agentPid
  }

  const startAgent = async (r: LabRecord, h: HostRecord): Promise<void> => {
    if (h.holderPid === undefined) throw new LabCommandError([], `host ${h.name} has no mount-namespace holder`)
    h.agentPid = await spawnDetached(hostArgv(h.ns, h.holderPid, await agentArgv(r, h)), h.logPath, agentEnv(r))
    h.agentStartedAt = clock.now()
    log.info('agent started', { node: h.name, pid: h.agentPid })
  }

  /** Starts the k3s stand-in server again on a host that ran one (as the k3s service would at boot). */
  const startStandinAgain = async (r: LabRecord, h: HostRecord): Promise<void> => {
    const k3sDir = join(h.dir, 'k3s')
    const server = await readJson<ServerRecord>(join(k3sDir, SERVER_FILE))
    const tokens = await readJson<StandinTokens>(join(k3sDir, TOKENS_FILE))
    if (server === undefined || tokens === undefined || h.holderPid === undefined) return
    const argv = hostArgv(h.ns, h.holderPid, [r.nodePath, await standinScript(r), 'serve',
      '--dir', k3sDir, '--name', server.name, '--address', server.address, '--port', String(server.port)])
    // The server rewrites server.json with its own PID once it listens (after the agent brings the overlay address up).
    await spawnDetached(argv, join(k3sDir, 'server.log'), { ...process.env, KAIROS_TOKEN: tokens.server, KAIROS_AGENT_TOKEN: tokens.agent ?? '' })
  }

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

  const readNode = async (h: HostRecord, registered: Map<string, RegisteredNode>, inits: Set<string>, signal?: AbortSignal): Promise<NodeStatus> => {
    const powered = (await liveHolder(h)) !== undefined
    const running = await agentRunning(h)
    const reg = registered.get(h.name)
    const node: NodeStatus = {
      name: h.name, ns: h.ns, segment: h.segment, address: h.address, powered, running,
      handshakes: { up: 0, total: 0 }, peers: 0, joined: reg !== undefined, init: inits.has(h.name)
    }
    if (reg !== undefined) node.registeredAs = reg.role
    if (running && h.agentPid !== undefined) node.agentPid = h.agentPid
    if (!running) return node
    try {
      const view = await readStatus(h, signal)
      node.agent = view
      if (view.peerId !== undefined) node.peerId = view.peerId
      if (view.phase !== undefined) node.phase = view.phase
      if (view.role !== undefined) node.role = view.role
      node.init = view.role === 'init'
      if (typeof view.reason?.text === 'string') node.reason = view.reason.text
      if (Array.isArray(view.warnings) && view.warnings.length > 0) node.warnings = view.warnings.filter((w) => typeof w === 'string')
      if (view.overlay?.address !== undefined) node.overlayAddress = view.overlay.address
      // The stand-in registers by host name, as k3s does: a host wiped and booted afresh
      // has a new identity and overlay address, and the old registration is not its own.
      if (reg !== undefined && view.overlay?.address !== undefined && reg.nodeIp !== view.overlay.address) {
        node.joined = false
        delete node.registeredAs
        node.registeredEarlier = reg.nodeIp
      }
      const op = view.overlay?.peers ?? []
      node.handshakes = { up: op.filter((p) => p.up === true).length, total: op.length }
      node.peers = Array.isArray(view.peers) ? view.peers.length : 0
      await writeJson(join(h.dir, LAST_STATUS_FILE), view)
    } catch (err) {
      node.error = errorMessage(err)
    }
    return node
  }

  const clustersOf = async (r: LabRecord): Promise<ClusterView[]> => {
    const out: ClusterView[] = []
    for (const h of r.hosts) {
      const k3sDir = join(h.dir, 'k3s')
      const reg = await readRegistry(join(k3sDir, REGISTRY_FILE))
      if (reg === undefined) continue
      const server = await readJson<ServerRecord>(join(k3sDir, SERVER_FILE))
      const running = server !== undefined && (await isRunning(server.pid)) && (await processNetInode(server.pid)) === (await namespaceInode(h.ns))
      out.push({ server: h.name, address: reg.server.address, port: reg.server.port, running, nodes: reg.nodes })
    }
    return out
  }

  const status = async (signal?: AbortSignal): Promise<LabStatus> => {
    const r = await load()
    const clusters = await clustersOf(r)
    const registered = new Map<string, RegisteredNode>()
    for (const c of clusters) for (const n of c.nodes) registered.set(n.name, n)
    const inits = new Set(clusters.map((c) => c.server))
    const nodes = await mapLimit(r.hosts, 8, async (h) => await readNode(h, registered, inits, signal))
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
        const doc = hostCloudConfig({ host: h, token: over?.token ?? token, minimumNodes: over?.minimumNodes ?? minimumNodes, bootstrapPeers: r.bootstrapPeers, installerCommand: installer, defaultStateDir: r.artefact !== undefined, ...(base === undefined ? {} : { base }) })
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
    const rows: NodeTimeline[] = []
    for (const h of r.hosts) {
      const node = s.nodes.find((n) => n.name === h.name)
      const view = node?.agent ?? await readJson<AgentStatusView>(join(h.dir, LAST_STATUS_FILE))
      const events = [...(view?.timeline ?? [])]
      if (h.agentStartedAt !== undefined) events.push({ event: 'spawned', at: h.agentStartedAt })
      const reg = s.clusters.flatMap((c) => c.nodes).find((n) => n.name === h.name)
      // A registration from an earlier boot is not part of this boot's timeline.
      if (reg !== undefined && reg.registeredAt >= (h.agentStartedAt ?? 0)) events.push({ event: 'registered', at: reg.registeredAt })
      const role = view?.role ?? (node?.init === true ? 'init' : reg?.role)
      rows.push({ name: h.name, ...(role === undefined ? {} : { role }), events })
    }
    const rep = buildTimelineReport(r.id, rows, clock.now())
    const out = outDir ?? r.dir
    await mkdir(out, { recursive: true })
    const json = join(out, 'timeline.json')
    const svg = join(out, 'timeline.svg')
    await writeJson(json, rep)
    await writeFile(svg, renderTimelineSvg(rep))
    return { json, svg, report: rep }
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
