import { spawn } from 'node:child_process'
import { mkdir, open, writeFile } from 'node:fs/promises'
import { isIP } from 'node:net'
import { isAbsolute, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { load } from 'js-yaml'
import { systemClock, type Clock } from '../util/clock.ts'
import { KairosError, errorMessage } from '../util/errors.ts'
import { fetchClusterCa, registerNode, standinUrl, waitForStandin } from './standin-client.ts'
import {
  CONFIG_FILE, readRegistry, REGISTRY_FILE, SERVER_FILE, STANDIN_PORT, StandinInputError, TOKENS_FILE, writeJsonAtomic,
  type RegisteredNode, type StandinTokens
} from './standin-protocol.ts'
import { adoptClusterCa, ensureClusterCa } from './standin-ca.ts'
import { startStandinServer } from './standin-server.ts'

/**
 * The lab's k3s stand-in: what the exec installer runs instead of k3s.
 *
 * `install` (the installer entry, plan in the environment as the agent's exec
 * installer passes it) writes the k3s configuration it was given (KAIROS_K3S_CONFIG)
 * to `config.yaml` in its dir, as k3s reads /etc/rancher/k3s/config.yaml. For
 * KAIROS_ROLE=init it starts a detached `serve` process on KAIROS_NODE_IP:6443 (the
 * overlay address), registers the init node itself and exits 0 once registered; for
 * `server`/`agent` it registers at KAIROS_SERVER_URL with KAIROS_TOKEN, retrying with
 * backoff, and exits 0 once registered; a `server` then starts its own `serve` process
 * too (in `<dir>/ha`), with the cluster CA it took from the server it joined, as every
 * k3s server serves the API.
 *
 * As k3s: the server creates its cluster CA under the config's `data-dir` at first
 * start (`server/tls/server-ca.crt`) and serves it at `/cacerts`; a joiner given a
 * secure token (`K10<hash>::…`) checks that CA's hash before it sends the secret, and
 * refuses a mismatch in k3s's words. The server checks exactly what real k3s checks:
 * servers must present the server token; agents the agent token or the server token.
 * It keeps the registry (the lab's `kubectl get nodes`) in a JSON file. It speaks
 * plain HTTP: the URL's host and port are what is contacted, and only that address.
 *
 * Run as `node netns-lab/k3s-standin.ts install|serve|nodes [options]`.
 *
 * This module is the process entry (it spawns itself as `serve`) and holds the
 * installer and the command line; the protocol, server and client are in
 * `standin-protocol.ts`, `standin-server.ts` and `standin-client.ts`.
 */

export {
  backoffDelay, CACERTS_PATH, CONFIG_FILE, decideRegistration, MAX_BODY_BYTES, parseJoinToken, parseRegistration, readRegistry, REGISTRY_FILE, SERVER_FILE, STANDIN_PORT,
  StandinCaError, StandinCaMismatchError, StandinInputError, StandinRefusedError, StandinTimeoutError, TOKENS_FILE,
  type JoinToken, type NodeRole, type RegisteredNode, type RegistrationDecision, type RegistrationRequest, type ServerRecord, type StandinRegistry, type StandinTokens
} from './standin-protocol.ts'
export { startStandinServer, type StandinServer, type StandinServerInit } from './standin-server.ts'
export { CA_VALIDITY_DAYS, clusterCaPath, ensureClusterCa } from './standin-ca.ts'
export { DEFAULT_REGISTER_RETRY_MAX_MS, registerNode, standinUrl, waitForStandin, type RegisterInit } from './standin-client.ts'

/** The installer's plan, read from the exec installer's environment. */
export interface InstallPlan {
  role: 'init' | 'server' | 'agent'
  serverUrl: string
  token: string
  agentToken: string
  nodeIp: string
  iface: string
  /** config.yaml as the plan wrote it (KAIROS_K3S_CONFIG); empty when not given. */
  k3sConfig: string
  /** The config's `data-dir`: where the server keeps its CA. Absent when the config sets none. */
  dataDir?: string
}

/** Reads and checks the exec installer's environment; StandinInputError names the variable. */
export function parseInstallEnv (env: NodeJS.ProcessEnv): InstallPlan {
  const role = env.KAIROS_ROLE
  if (role !== 'init' && role !== 'server' && role !== 'agent') {
    throw new StandinInputError(`KAIROS_ROLE ${JSON.stringify(role ?? null)} is invalid; expected init, server or agent`)
  }
  const token = env.KAIROS_TOKEN ?? ''
  if (token === '') throw new StandinInputError('KAIROS_TOKEN is empty; expected the k3s token for this node')
  const nodeIp = env.KAIROS_NODE_IP ?? ''
  if (isIP(nodeIp) === 0) throw new StandinInputError(`KAIROS_NODE_IP '${nodeIp}' is invalid; expected the node's overlay address`)
  const serverUrl = env.KAIROS_SERVER_URL ?? ''
  if (role !== 'init') standinUrl(serverUrl)
  const agentToken = env.KAIROS_AGENT_TOKEN ?? ''
  if (role === 'init' && agentToken === '') throw new StandinInputError('KAIROS_AGENT_TOKEN is empty; the init server needs the agent token')
  const k3sConfig = env.KAIROS_K3S_CONFIG ?? ''
  const dataDir = dataDirOf(k3sConfig)
  // k3s would fall back to /var/lib/rancher/k3s; the lab never writes there.
  if (role === 'init' && dataDir === undefined) throw new StandinInputError('KAIROS_K3S_CONFIG sets no data-dir; the stand-in keeps its cluster CA only under a data dir given in k3s.args (--data-dir), never in /var/lib/rancher/k3s')
  return { role, serverUrl, token, agentToken, nodeIp, iface: env.KAIROS_IFACE ?? '', k3sConfig, ...(dataDir === undefined ? {} : { dataDir }) }
}

/** The absolute `data-dir` of a k3s config.yaml, or undefined; StandinInputError when it does not parse or the dir is relative. */
function dataDirOf (configYaml: string): string | undefined {
  if (configYaml === '') return undefined
  let doc: unknown
  try {
    doc = load(configYaml)
  } catch (err) {
    throw new StandinInputError(`KAIROS_K3S_CONFIG is not YAML: ${errorMessage(err)}`)
  }
  const dir = typeof doc === 'object' && doc !== null ? (doc as Record<string, unknown>)['data-dir'] : undefined
  if (dir === undefined) return undefined
  if (typeof dir !== 'string' || !isAbsolute(dir)) throw new StandinInputError(`KAIROS_K3S_CONFIG data-dir ${JSON.stringify(dir)} is invalid; expected an absolute path`)
  return dir
}

/** Options of `install`. */
export interface InstallInit {
  plan: InstallPlan
  /** Node name registered. */
  name: string
  /** Stand-in dir of this host (registry, server record, tokens, log). */
  dir: string
  /** Node binary for the detached server. @default process.execPath */
  nodePath?: string
  /** Port. @default 6443 */
  port?: number
  /** Registration / start-up deadline, ms. @default 120000 */
  timeoutMs?: number
  clock?: Clock
  signal?: AbortSignal
}

/** Starts the detached `serve` process for this host's stand-in dir, its CA under `dataDir`; returns its PID. */
export async function spawnStandinServer (dir: string, name: string, address: string, port: number, tokens: StandinTokens, dataDir: string, nodePath: string = process.execPath): Promise<number> {
  const self = fileURLToPath(import.meta.url)
  const log = await open(join(dir, 'server.log'), 'a')
  try {
    // Long-lived and detached: spawned directly with an argument array; tokens go in the environment, never argv.
    const child = spawn(nodePath, [self, 'serve', '--dir', dir, '--name', name, '--address', address, '--port', String(port), '--data-dir', dataDir], {
      detached: true,
      stdio: ['ignore', log.fd, log.fd],
      env: { ...process.env, KAIROS_TOKEN: tokens.server, KAIROS_AGENT_TOKEN: tokens.agent ?? '' }
    })
    child.on('error', () => { /* seen as a server that never answers */ })
    child.unref()
    if (child.pid === undefined) throw new KairosError(`could not spawn the k3s stand-in server (${nodePath} ${self} serve)`)
    return child.pid
  } finally {
    await log.close()
  }
}

/** The exec installer: start (init) or join the stand-in cluster; resolves once registered. */
export async function install (init: InstallInit): Promise<RegisteredNode> {
  const clock = init.clock ?? systemClock
  const port = init.port ?? STANDIN_PORT
  const timeoutMs = init.timeoutMs ?? 120_000
  const { plan } = init
  await mkdir(init.dir, { recursive: true })
  if (plan.k3sConfig !== '') await writeFile(join(init.dir, CONFIG_FILE), plan.k3sConfig, { mode: 0o600 })
  if (plan.role !== 'init') {
    const node = await registerNode({
      serverUrl: plan.serverUrl, token: plan.token, node: { name: init.name, role: plan.role, nodeIp: plan.nodeIp },
      timeoutMs, clock, ...(init.signal === undefined ? {} : { signal: init.signal })
    })
    // Like a k3s server, an HA server then serves the API itself: a joiner whose
    // credential it sealed (the init server being down) registers here. Its registry
    // sits in `HA_DIR`, apart from the cluster-init's, which the lab reads as the cluster.
    if (plan.role === 'server' && plan.agentToken !== '' && plan.dataDir !== undefined) {
      // It serves the cluster's CA, not one of its own: joiners pin the init server's.
      await adoptClusterCa(plan.dataDir, await fetchClusterCa(plan.serverUrl, Math.min(5000, timeoutMs), init.signal))
      await serve(join(init.dir, HA_DIR), { server: plan.token, agent: plan.agentToken }, plan.nodeIp, port, plan.dataDir, init, clock, timeoutMs)
    }
    return node
  }
  const tokens: StandinTokens = { server: plan.token, agent: plan.agentToken }
  const host = plan.nodeIp.includes(':') ? `[${plan.nodeIp}]` : plan.nodeIp
  await serve(init.dir, tokens, plan.nodeIp, port, plan.dataDir as string, init, clock, timeoutMs)
  return await registerNode({
    serverUrl: `https://${host}:${port}`, token: plan.token, node: { name: init.name, role: 'server', nodeIp: plan.nodeIp, init: true },
    timeoutMs, clock, ...(init.signal === undefined ? {} : { signal: init.signal })
  })
}

/** Sub-directory of a host's stand-in dir where an HA server's own stand-in keeps its files. */
export const HA_DIR = 'ha'

/** Starts this host's stand-in server in `dir` unless one answers already; resolves once it answers. */
async function serve (dir: string, tokens: StandinTokens, nodeIp: string, port: number, dataDir: string, init: InstallInit, clock: Clock, timeoutMs: number): Promise<void> {
  await mkdir(dir, { recursive: true })
  await writeJsonAtomic(join(dir, TOKENS_FILE), tokens, 0o600)
  const host = nodeIp.includes(':') ? `[${nodeIp}]` : nodeIp
  const base = `http://${host}:${port}`
  try {
    await waitForStandin(base, 200, clock, init.signal)
    return
  } catch { /* not running yet */ }
  await spawnStandinServer(dir, init.name, nodeIp, port, tokens, dataDir, init.nodePath)
  await waitForStandin(base, timeoutMs, clock, init.signal)
}

function flag (argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`)
  return i >= 0 ? argv[i + 1] : undefined
}

function required (argv: string[], name: string): string {
  const v = flag(argv, name)
  if (v === undefined || v === '') throw new StandinInputError(`k3s-standin: --${name} is required`)
  return v
}

function intFlag (argv: string[], name: string, fallback: number, min: number, max: number): number {
  const text = flag(argv, name)
  if (text === undefined) return fallback
  const v = Number(text)
  if (!Number.isInteger(v) || v < min || v > max) throw new StandinInputError(`--${name} '${text}' is invalid; expected an integer from ${min} to ${max}`)
  return v
}

const USAGE = `Usage: k3s-standin.ts <mode> [options]

Modes:
  install --name NODE --dir DIR [--port 6443] [--timeout-ms 120000]
                                    exec installer entry (plan from KAIROS_* environment)
  serve --name NODE --dir DIR --address IP --data-dir DIR [--port 6443]
                                    run the server in the foreground (KAIROS_TOKEN, KAIROS_AGENT_TOKEN),
                                    its cluster CA under the data dir (created at first start)
  nodes --dir DIR                   print the registry
`

/** Command-line entry; returns the exit code. */
export async function main (argv: string[], signal: AbortSignal): Promise<number> {
  const [mode, ...rest] = argv
  try {
    if (mode === 'install') {
      const node = await install({
        plan: parseInstallEnv(process.env), name: required(rest, 'name'), dir: required(rest, 'dir'), signal,
        port: intFlag(rest, 'port', STANDIN_PORT, 0, 65535), timeoutMs: intFlag(rest, 'timeout-ms', 120_000, 1, 86_400_000)
      })
      process.stdout.write(`registered ${node.name} as ${node.role}${node.init ? ' (cluster-init)' : ''}\n`)
      return 0
    }
    if (mode === 'serve') {
      const dir = required(rest, 'dir')
      const port = intFlag(rest, 'port', STANDIN_PORT, 0, 65535)
      const token = process.env.KAIROS_TOKEN ?? ''
      if (token === '') throw new StandinInputError('KAIROS_TOKEN is empty; the server needs the server token')
      const dataDir = required(rest, 'data-dir')
      if (!isAbsolute(dataDir)) throw new StandinInputError(`--data-dir '${dataDir}' is invalid; expected an absolute path`)
      await mkdir(dir, { recursive: true })
      const cacerts = await ensureClusterCa(dataDir, Date.now(), signal)
      const server = await startStandinServer({
        address: required(rest, 'address'), port, name: required(rest, 'name'), registryPath: join(dir, REGISTRY_FILE),
        recordPath: join(dir, SERVER_FILE), tokens: { server: token, agent: process.env.KAIROS_AGENT_TOKEN ?? '' }, waitForAddress: true, signal,
        cacerts, dataDir
      })
      process.stdout.write(`k3s stand-in listening on ${server.url}\n`)
      await new Promise<void>((resolve) => {
        if (signal.aborted) resolve()
        else signal.addEventListener('abort', () => { resolve() }, { once: true })
      })
      await server.close()
      return 0
    }
    if (mode === 'nodes') {
      const reg = await readRegistry(join(required(rest, 'dir'), REGISTRY_FILE))
      process.stdout.write(JSON.stringify(reg ?? null, null, 2) + '\n')
      return reg === undefined ? 1 : 0
    }
    process.stdout.write(USAGE)
    return mode === '--help' || mode === '-h' ? 0 : 2
  } catch (err) {
    if (signal.aborted) return 0
    process.stderr.write(`k3s-standin ${mode ?? ''}: ${errorMessage(err)}\n`)
    return err instanceof KairosError ? err.exitCode : 1
  }
}

if (import.meta.main) {
  const stop = new AbortController()
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => { stop.abort(new Error(`received ${sig}`)) })
  process.exitCode = await main(process.argv.slice(2), stop.signal)
}