/**
 * The processes of a lab host: its mount-namespace holder, its agent (argv, script,
 * environment, compile cache) and its k3s stand-in server, and whether each runs.
 * `createLab` drives them for up, kill, restart and power cycles.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdir, open, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { AGENT_MALLOC_ENV, AGENT_NODE_OPTIONS } from '../box/runtime.ts'
import { unitCommand } from '../box/unit.ts'
import { DEFAULT_STATE_DIR } from '../config/defaults.ts'
import type { Clock } from '../util/clock.ts'
import { BUNDLED } from '../util/bundled.ts'
import { errorMessage } from '../util/errors.ts'
import type { Logger } from '../util/log.ts'
import { LabCommandError, LabInputError } from './errors.ts'
import { readJson } from './json-file.ts'
import { HA_DIR, SERVER_FILE, TOKENS_FILE, type ServerRecord, type StandinTokens } from './k3s-standin.ts'
import type { HostRecord, LabRecord } from './meta.ts'
import { isRunning, namespaceInode, processComm, processesInNamespaces, processNetInode, terminate } from './processes.ts'
import { hostArgv, type Runner } from './run.ts'
import { startHolder } from './topology.ts'

/** File name of the peer identity the p2p layer reads from the state dir (p2p/identity.ts). */
export const IDENTITY_FILE = 'identity.key'
/** Node options of lab agents: the agent's own, as on a box (AGENT_NODE_OPTIONS, box/runtime.ts). */
export const DEFAULT_AGENT_NODE_ARGS: readonly string[] = AGENT_NODE_OPTIONS
/** How long after its spawn an agent still outside the host's namespace counts as starting, ms. */
const JUST_SPAWNED_MS = 5_000

/** Spawns a detached long-lived process (argument array) with output appended to `logPath`; returns its PID. */
export async function spawnDetached (argv: readonly string[], logPath: string, env: NodeJS.ProcessEnv = process.env): Promise<number> {
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
 * Environment of lab agents: the malloc settings a box's launcher gives the agent (unless
 * the lab's own environment sets them), and Node's compile cache in the checkout (it
 * survives labs, so only the first lab after a change compiles the sources).
 */
function agentEnv (r: Pick<LabRecord, 'repoRoot'>): NodeJS.ProcessEnv {
  return { ...AGENT_MALLOC_ENV, ...process.env, NODE_COMPILE_CACHE: join(r.repoRoot, LAB_COMPILE_CACHE) }
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
export function artefactLauncher (artefact: string): string {
  const launcher = join(artefact, 'bin', 'kairos-p2p')
  if (!existsSync(launcher)) throw new LabInputError(`no self-contained artefact at ${artefact} (${launcher} is missing); build it with 'npm run build'`)
  return launcher
}

/** Pre-creates (or reads) a host's libp2p identity so its peer id is known before it starts. */
export async function ensureIdentity (stateDir: string): Promise<string> {
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

/** What `createHostProcesses` is given: the agent options of `LabInit` and the lab's runner, clock and logger. */
export interface HostProcessesInit {
  /** `LabInit.agentEntry`. */
  agentEntry?: (lab: LabRecord) => Promise<string>
  /** `LabInit.agentCommand`. */
  agentCommand?: (host: HostRecord, lab: LabRecord) => string[]
  /** `LabInit.agentArgs`. */
  agentArgs?: string[]
  /** `LabInit.nodeArgs`. */
  nodeArgs?: string[]
}

/** The host process operations of one lab handle (see the functions' own comments). */
export interface HostProcesses {
  agentEntry: (r: LabRecord) => Promise<string>
  standinScript: (r: LabRecord) => Promise<string>
  warmCompileCache: (r: LabRecord, agents: number, signal?: AbortSignal) => Promise<void>
  startHostHolder: (r: LabRecord, h: HostRecord, signal?: AbortSignal) => Promise<number>
  liveHolder: (h: HostRecord) => Promise<number | undefined>
  agentRunning: (h: HostRecord) => Promise<boolean>
  powerOff: (h: HostRecord) => Promise<void>
  stopAgent: (h: HostRecord, graceMs: number) => Promise<void>
  startAgent: (r: LabRecord, h: HostRecord) => Promise<void>
  startStandinAgain: (r: LabRecord, h: HostRecord) => Promise<void>
}

/** The host process operations of a lab handle; the agent and stand-in scripts are resolved once per handle. */
export function createHostProcesses (init: HostProcessesInit, run: Runner, clock: Clock, log: Logger): HostProcesses {
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
    // With the agents' Node options: Node keeps a cache per V8 code cache tag, which some V8 options change.
    const nodeArgs = init.nodeArgs ?? DEFAULT_AGENT_NODE_ARGS
    const argvs = [[r.nodePath, ...nodeArgs, script, 'agent', '--help']]
    // From the sources, also the modules `agent` loads lazily (its help loads neither).
    if (script.endsWith('.ts')) {
      argvs.push([r.nodePath, ...nodeArgs, '--input-type=module', '-e', ['config/index.ts', 'agent/agent.ts'].map((f) => `await import(${JSON.stringify(pathToFileURL(join(r.repoRoot, f)).href)})`).join('; ')])
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
    for (const k3sDir of [join(h.dir, 'k3s'), join(h.dir, 'k3s', HA_DIR)]) await startStandinIn(r, h, k3sDir)
  }
  const startStandinIn = async (r: LabRecord, h: HostRecord, k3sDir: string): Promise<void> => {
    const server = await readJson<ServerRecord>(join(k3sDir, SERVER_FILE))
    const tokens = await readJson<StandinTokens>(join(k3sDir, TOKENS_FILE))
    if (server === undefined || tokens === undefined || h.holderPid === undefined) return
    const argv = hostArgv(h.ns, h.holderPid, [r.nodePath, await standinScript(r), 'serve',
      '--dir', k3sDir, '--name', server.name, '--address', server.address, '--port', String(server.port),
      ...(server.dataDir === undefined ? [] : ['--data-dir', server.dataDir])])
    // The server rewrites server.json with its own PID once it listens (after the agent brings the overlay address up).
    await spawnDetached(argv, join(k3sDir, 'server.log'), { ...process.env, KAIROS_TOKEN: tokens.server, KAIROS_AGENT_TOKEN: tokens.agent ?? '' })
  }
  return { agentEntry, standinScript, warmCompileCache, startHostHolder, liveHolder, agentRunning, powerOff, stopAgent, startAgent, startStandinAgain }
}
