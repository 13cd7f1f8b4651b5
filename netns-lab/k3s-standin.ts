import { spawn } from 'node:child_process'
import { timingSafeEqual } from 'node:crypto'
import { mkdir, open, readFile, rename, writeFile } from 'node:fs/promises'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { isIP } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { systemClock, type Clock } from '../util/clock.ts'
import { InputError, KairosError, errorMessage } from '../util/errors.ts'

// Not an import: importing node:http as a module loads undici behind its lazy exports,
// 40 ms of CPU for every install and serve process (see agent/api.ts).
const { createServer, request } = process.getBuiltinModule('node:http')

/**
 * The lab's k3s stand-in: what the exec installer runs instead of k3s.
 *
 * `install` (the installer entry, plan in the environment as the agent's exec
 * installer passes it): for KAIROS_ROLE=init it starts a detached `serve` process on
 * KAIROS_NODE_IP:6443 (the overlay address), registers the init node itself and
 * exits 0 once registered; for `server`/`agent` it registers at KAIROS_SERVER_URL with
 * KAIROS_TOKEN, retrying with backoff, and exits 0 once registered.
 *
 * The server checks exactly what real k3s checks: servers must present the server
 * token; agents the agent token or the server token. It keeps the registry (the lab's
 * `kubectl get nodes`) in a JSON file. It speaks plain HTTP: the URL's host and port
 * are what is contacted, and only that address.
 *
 * Run as `node netns-lab/k3s-standin.ts install|serve|nodes [options]`.
 */

/** The k3s supervisor port. */
export const STANDIN_PORT = 6443
/** Registry file name inside the stand-in dir. */
export const REGISTRY_FILE = 'registry.json'
/** Running server's record (PID, address) inside the stand-in dir. */
export const SERVER_FILE = 'server.json'
/** The init server's tokens (mode 0600), kept like k3s keeps its token file, so the lab can restart the server. */
export const TOKENS_FILE = 'tokens.json'
/** Largest registration body accepted, bytes. */
export const MAX_BODY_BYTES = 16 * 1024

/** How a node registers: a k3s server or a k3s agent. */
export type NodeRole = 'server' | 'agent'

/** One registered node. */
export interface RegisteredNode {
  name: string
  role: NodeRole
  /** Address the node says it has (KAIROS_NODE_IP). */
  nodeIp: string
  /** Source address the registration came from; equal to `nodeIp` when it came through the overlay. */
  remoteAddress: string
  /** Wall-clock ms of the first registration. */
  registeredAt: number
  /** The cluster-init server itself. */
  init: boolean
}

/** The stand-in's persisted registry: the lab's `kubectl get nodes`. */
export interface StandinRegistry {
  version: 1
  server: { name: string, address: string, port: number, startedAt: number }
  nodes: RegisteredNode[]
}

/** Tokens a server accepts. */
export interface StandinTokens {
  /** k3s server token: servers and agents. */
  server: string
  /** k3s agent token: agents only. */
  agent?: string
}

/** What a registration asks for. */
export interface RegistrationRequest {
  name: string
  role: NodeRole
  nodeIp: string
  init?: boolean
}

/** The server's answer to one registration: the new registry, or the HTTP status and reason of a refusal. */
export type RegistrationDecision =
  | { ok: true, status: 200 | 201, registry: StandinRegistry, node: RegisteredNode }
  | { ok: false, status: 400 | 401 | 403, reason: string }

/** Bad stand-in input: environment, arguments or a registration body. */
export class StandinInputError extends InputError {
  constructor (message: string) {
    super(message)
    this.name = 'StandinInputError'
  }
}

/** The server refused the registration (wrong token or role); retrying will not help. */
export class StandinRefusedError extends KairosError {
  readonly status: number
  constructor (url: string, status: number, reason: string) {
    super(`k3s stand-in at ${url} refused the registration: HTTP ${status} ${reason}`)
    this.name = 'StandinRefusedError'
    this.status = status
  }
}

/** Registration did not succeed before the deadline. */
export class StandinTimeoutError extends KairosError {
  constructor (url: string, timeoutMs: number, last: string) {
    super(`k3s stand-in at ${url} not reachable within ${timeoutMs} ms (last error: ${last})`)
    this.name = 'StandinTimeoutError'
  }
}

function tokenEquals (a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/** Validates a registration body; throws StandinInputError naming the field. */
export function parseRegistration (body: unknown): RegistrationRequest {
  if (typeof body !== 'object' || body === null) throw new StandinInputError('registration body must be a JSON object with name, role and nodeIp')
  const b = body as Record<string, unknown>
  if (typeof b.name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/.test(b.name)) {
    throw new StandinInputError(`registration field 'name' ${JSON.stringify(b.name)} is invalid; expected a node name of [A-Za-z0-9.-], at most 63 characters`)
  }
  if (b.role !== 'server' && b.role !== 'agent') {
    throw new StandinInputError(`registration field 'role' ${JSON.stringify(b.role)} is invalid; expected 'server' or 'agent'`)
  }
  if (typeof b.nodeIp !== 'string' || isIP(b.nodeIp) === 0) {
    throw new StandinInputError(`registration field 'nodeIp' ${JSON.stringify(b.nodeIp)} is invalid; expected an IP address`)
  }
  return { name: b.name, role: b.role, nodeIp: b.nodeIp, init: b.init === true }
}

/**
 * The server's decision on one registration (pure): token check as k3s does it, then
 * insert or refresh the node. A node keeps its first registration time.
 */
export function decideRegistration (registry: StandinRegistry, body: unknown, presented: string | undefined, tokens: StandinTokens, remoteAddress: string, now: number): RegistrationDecision {
  if (presented === undefined || presented === '') return { ok: false, status: 401, reason: 'no token presented' }
  const isServerToken = tokenEquals(presented, tokens.server)
  const isAgentToken = tokens.agent !== undefined && tokens.agent !== '' && tokenEquals(presented, tokens.agent)
  if (!isServerToken && !isAgentToken) return { ok: false, status: 401, reason: 'token not accepted' }
  let req: RegistrationRequest
  try {
    req = parseRegistration(body)
  } catch (err) {
    return { ok: false, status: 400, reason: errorMessage(err) }
  }
  if (req.role === 'server' && !isServerToken) return { ok: false, status: 403, reason: 'a server must present the server token' }
  const previous = registry.nodes.find((n) => n.name === req.name)
  const node: RegisteredNode = {
    name: req.name,
    role: req.role,
    nodeIp: req.nodeIp,
    remoteAddress,
    registeredAt: previous?.registeredAt ?? now,
    init: req.init === true && isServerToken && req.role === 'server'
  }
  const nodes = [...registry.nodes.filter((n) => n.name !== req.name), node].sort((a, b) => a.name.localeCompare(b.name))
  return { ok: true, status: previous === undefined ? 201 : 200, registry: { ...registry, nodes }, node }
}

/** Retry delay before attempt `attempt` (0-based): doubling from `initialMs`, capped at `maxMs`. */
export function backoffDelay (attempt: number, initialMs = 100, maxMs = 2000): number {
  return Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 20))
}

/** Reads a registry file, or undefined when it does not exist. */
export async function readRegistry (path: string): Promise<StandinRegistry | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as StandinRegistry
  } catch {
    return undefined
  }
}

async function writeJsonAtomic (path: string, value: unknown, mode = 0o644): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, JSON.stringify(value, null, 2) + '\n', { mode })
  await rename(tmp, path)
}

/** Options of `startStandinServer`. */
export interface StandinServerInit {
  /** Address to listen on: the init server's overlay address. */
  address: string
  /** @default 6443 */
  port?: number
  tokens: StandinTokens
  /** Registry file; loaded when present, rewritten on every change. */
  registryPath: string
  /** Name of the init node. */
  name: string
  /** Where to write this server's ServerRecord once it listens (before /ping answers). @default none */
  recordPath?: string
  /** Keep retrying while the address is not yet configured (EADDRNOTAVAIL), until the signal aborts. @default false */
  waitForAddress?: boolean
  clock?: Clock
  signal?: AbortSignal
}

/** A running stand-in server. */
export interface StandinServer {
  /** `http://address:port`. */
  readonly url: string
  readonly port: number
  registry: () => StandinRegistry
  close: () => Promise<void>
}

async function readBody (req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const c of req) {
    size += (c as Buffer).length
    if (size > MAX_BODY_BYTES) throw new StandinInputError(`registration body larger than ${MAX_BODY_BYTES} bytes`)
    chunks.push(c as Buffer)
  }
  return Buffer.concat(chunks).toString('utf8')
}

function bearer (req: IncomingMessage): string | undefined {
  const h = req.headers.authorization
  return h?.startsWith('Bearer ') === true ? h.slice(7) : undefined
}

function reply (res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
}

/**
 * The stand-in server: `GET /ping` (no auth; 503 until the server record is written), `GET /nodes` (server token),
 * `POST /register` (bearer token, JSON body `{ name, role, nodeIp }`).
 */
export async function startStandinServer (init: StandinServerInit): Promise<StandinServer> {
  const clock = init.clock ?? systemClock
  const port = init.port ?? STANDIN_PORT
  let registry: StandinRegistry = (await readRegistry(init.registryPath)) ??
    { version: 1, server: { name: init.name, address: init.address, port, startedAt: clock.now() }, nodes: [] }
  registry = { ...registry, server: { ...registry.server, address: init.address, port } }
  let writing: Promise<void> = writeJsonAtomic(init.registryPath, registry)
  await writing
  let ready = false
  const server: Server = createServer((req, res) => {
    void (async () => {
      try {
        if (req.method === 'GET' && req.url === '/ping') { reply(res, ready ? 200 : 503, { ok: ready }); return }
        if (req.method === 'GET' && req.url === '/nodes') {
          const t = bearer(req)
          if (t === undefined || !tokenEquals(t, init.tokens.server)) { reply(res, 401, { error: 'the server token is required' }); return }
          reply(res, 200, registry); return
        }
        if (req.method === 'POST' && req.url === '/register') {
          let body: unknown
          try { body = JSON.parse(await readBody(req)) } catch (err) { reply(res, 400, { error: `body is not JSON: ${errorMessage(err)}` }); return }
          const remote = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '')
          const d = decideRegistration(registry, body, bearer(req), init.tokens, remote, clock.now())
          if (!d.ok) { reply(res, d.status, { error: d.reason }); return }
          registry = d.registry
          writing = writing.then(async () => { await writeJsonAtomic(init.registryPath, registry) })
          await writing
          reply(res, d.status, d.node); return
        }
        reply(res, 404, { error: `no route ${req.method ?? ''} ${req.url ?? ''}; expected GET /ping, GET /nodes or POST /register` })
      } catch (err) {
        reply(res, 500, { error: errorMessage(err) })
      }
    })()
  })
  for (let attempt = 0; ; attempt++) {
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(port, init.address, () => { server.off('error', reject); resolve() })
      })
      break
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (init.waitForAddress !== true || code !== 'EADDRNOTAVAIL') throw err
      await clock.sleep(backoffDelay(attempt, 100, 1000), init.signal)
    }
  }
  const addr = server.address()
  const boundPort = typeof addr === 'object' && addr !== null ? addr.port : port
  const host = init.address.includes(':') ? `[${init.address}]` : init.address
  if (init.recordPath !== undefined) {
    // Written by the process that actually listens, so the record never names the loser of a start race.
    const rec: ServerRecord = { pid: process.pid, name: init.name, address: init.address, port: boundPort, startedAt: clock.now() }
    await writeJsonAtomic(init.recordPath, rec)
  }
  ready = true
  let closed: Promise<void> | undefined
  return {
    url: `http://${host}:${boundPort}`,
    port: boundPort,
    registry: () => registry,
    close: async () => {
      closed ??= new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => { resolve() })
      }).then(async () => { await writing })
      await closed
    }
  }
}

/** One HTTP exchange with the stand-in. */
async function httpJson (url: string, method: 'GET' | 'POST', token: string, body: unknown, timeoutMs: number, signal?: AbortSignal): Promise<{ status: number, body: unknown }> {
  return await new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const req = request(url, {
      method,
      timeout: timeoutMs,
      headers: { authorization: `Bearer ${token}`, ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }) },
      ...(signal === undefined ? {} : { signal })
    }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', reject)
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let parsed: unknown = text
        try { parsed = JSON.parse(text) } catch { /* keep the text */ }
        resolve({ status: res.statusCode ?? 0, body: parsed })
      })
    })
    req.on('timeout', () => { req.destroy(new Error(`no answer within ${timeoutMs} ms`)) })
    req.on('error', reject)
    req.end(payload)
  })
}

/**
 * The URL actually contacted for a k3s server URL: the same host and port over plain
 * HTTP (the stand-in has no TLS). Throws StandinInputError unless it is `http(s)://host:port`.
 */
export function standinUrl (serverUrl: string): string {
  let u: URL
  try {
    u = new URL(serverUrl)
  } catch {
    throw new StandinInputError(`KAIROS_SERVER_URL '${serverUrl}' is not a URL; expected https://<overlay address>:6443`)
  }
  if ((u.protocol !== 'https:' && u.protocol !== 'http:') || u.hostname === '') {
    throw new StandinInputError(`KAIROS_SERVER_URL '${serverUrl}' is invalid; expected https://<overlay address>:6443`)
  }
  return `http://${u.host}`
}

/** Options of `registerNode`. */
export interface RegisterInit {
  /** k3s server URL (https://<overlay ip>:6443). */
  serverUrl: string
  token: string
  node: RegistrationRequest
  /** Give up after this long, ms. @default 120000 */
  timeoutMs?: number
  /** Longest pause between two attempts, ms. @default DEFAULT_REGISTER_RETRY_MAX_MS (250) */
  retryMaxMs?: number
  clock?: Clock
  signal?: AbortSignal
}

/**
 * Longest pause between registration attempts, ms. Agents usually hand off while the
 * init server's stand-in is still booting; it answers on the same site a moment later,
 * so a short cap wins up to 1.5 s per node over doubling to 2 s, and an attempt costs
 * one local HTTP request.
 */
export const DEFAULT_REGISTER_RETRY_MAX_MS = 250

/**
 * Registers at the stand-in, retrying with backoff while it cannot be reached or
 * answers 5xx; StandinRefusedError at once on 4xx (a wrong token stays wrong).
 */
export async function registerNode (init: RegisterInit): Promise<RegisteredNode> {
  const clock = init.clock ?? systemClock
  const timeoutMs = init.timeoutMs ?? 120_000
  const base = standinUrl(init.serverUrl)
  const deadline = clock.now() + timeoutMs
  let last = 'none'
  for (let attempt = 0; ; attempt++) {
    init.signal?.throwIfAborted()
    try {
      const r = await httpJson(`${base}/register`, 'POST', init.token, init.node, Math.min(5000, timeoutMs), init.signal)
      if (r.status === 200 || r.status === 201) return r.body as RegisteredNode
      const reason = typeof r.body === 'object' && r.body !== null ? String((r.body as { error?: unknown }).error ?? '') : String(r.body)
      if (r.status >= 400 && r.status < 500) throw new StandinRefusedError(base, r.status, reason)
      last = `HTTP ${r.status} ${reason}`
    } catch (err) {
      if (err instanceof StandinRefusedError) throw err
      if (init.signal?.aborted === true) throw err
      last = errorMessage(err)
    }
    const wait = backoffDelay(attempt, 100, init.retryMaxMs ?? DEFAULT_REGISTER_RETRY_MAX_MS)
    if (clock.now() + wait > deadline) throw new StandinTimeoutError(base, timeoutMs, last)
    await clock.sleep(wait, init.signal)
  }
}

/** Waits until `GET /ping` answers at `base` (http://host:port). */
export async function waitForStandin (base: string, timeoutMs: number, clock: Clock = systemClock, signal?: AbortSignal): Promise<void> {
  const deadline = clock.now() + timeoutMs
  let last = 'none'
  for (let attempt = 0; ; attempt++) {
    try {
      const r = await httpJson(`${base}/ping`, 'GET', '', undefined, 2000, signal)
      if (r.status === 200) return
      last = `HTTP ${r.status}`
    } catch (err) {
      if (signal?.aborted === true) throw err
      last = errorMessage(err)
    }
    if (clock.now() >= deadline) throw new StandinTimeoutError(base, timeoutMs, last)
    await clock.sleep(backoffDelay(attempt, 25, 250), signal)
  }
}

/** The installer's plan, read from the exec installer's environment. */
export interface InstallPlan {
  role: 'init' | 'server' | 'agent'
  serverUrl: string
  token: string
  agentToken: string
  nodeIp: string
  iface: string
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
  return { role, serverUrl, token, agentToken, nodeIp, iface: env.KAIROS_IFACE ?? '' }
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

/** Record of a running stand-in server (server.json), written by the server once it listens. */
export interface ServerRecord {
  pid: number
  name: string
  address: string
  port: number
  startedAt: number
}

/** Starts the detached `serve` process for this host's stand-in dir; returns its PID. */
export async function spawnStandinServer (dir: string, name: string, address: string, port: number, tokens: StandinTokens, nodePath: string = process.execPath): Promise<number> {
  const self = fileURLToPath(import.meta.url)
  const log = await open(join(dir, 'server.log'), 'a')
  try {
    // Long-lived and detached: spawned directly with an argument array; tokens go in the environment, never argv.
    const child = spawn(nodePath, [self, 'serve', '--dir', dir, '--name', name, '--address', address, '--port', String(port)], {
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
  if (plan.role !== 'init') {
    return await registerNode({
      serverUrl: plan.serverUrl, token: plan.token, node: { name: init.name, role: plan.role, nodeIp: plan.nodeIp },
      timeoutMs, clock, ...(init.signal === undefined ? {} : { signal: init.signal })
    })
  }
  const tokens: StandinTokens = { server: plan.token, agent: plan.agentToken }
  await writeJsonAtomic(join(init.dir, TOKENS_FILE), tokens, 0o600)
  const host = plan.nodeIp.includes(':') ? `[${plan.nodeIp}]` : plan.nodeIp
  const base = `http://${host}:${port}`
  let running = false
  try {
    await waitForStandin(base, 200, clock, init.signal)
    running = true
  } catch { /* not running yet */ }
  if (!running) {
    await spawnStandinServer(init.dir, init.name, plan.nodeIp, port, tokens, init.nodePath)
    await waitForStandin(base, timeoutMs, clock, init.signal)
  }
  return await registerNode({
    serverUrl: `https://${host}:${port}`, token: plan.token, node: { name: init.name, role: 'server', nodeIp: plan.nodeIp, init: true },
    timeoutMs, clock, ...(init.signal === undefined ? {} : { signal: init.signal })
  })
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
  serve --name NODE --dir DIR --address IP [--port 6443]
                                    run the server in the foreground (KAIROS_TOKEN, KAIROS_AGENT_TOKEN)
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
      await mkdir(dir, { recursive: true })
      const server = await startStandinServer({
        address: required(rest, 'address'), port, name: required(rest, 'name'), registryPath: join(dir, REGISTRY_FILE),
        recordPath: join(dir, SERVER_FILE), tokens: { server: token, agent: process.env.KAIROS_AGENT_TOKEN ?? '' }, waitForAddress: true, signal
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
