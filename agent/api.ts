import type { Server } from 'node:http'
import { chmod, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { KairosError, errorMessage } from '../util/errors.ts'

// Through `process.getBuiltinModule`, not an import: importing node:http as a module builds
// its namespace, which reads every export and so loads undici (Node's fetch) behind the lazy
// ones, in every agent, for a unix-socket status API (docs/decisions.md, AGENT-7).
const { createServer, request } = process.getBuiltinModule('node:http')

/** File name of the agent's local API socket inside the state dir. */
export const API_SOCKET_NAME = 'agent.sock'

/** The agent is not running (or not reachable) at the given state dir. */
export class AgentUnreachableError extends KairosError {
  /** The socket that did not answer. */
  readonly socketPath: string
  constructor (socketPath: string, cause: unknown) {
    super(`no agent answers on ${socketPath} (${errorMessage(cause)}); is 'kairos-p2p agent' running with this state dir?`, { cause })
    this.name = 'AgentUnreachableError'
    this.socketPath = socketPath
  }
}

export interface ApiRoutes {
  /** `GET /status`: the agent's view, JSON. */
  status: () => unknown
  /** `GET /metrics`: Prometheus text exposition. */
  metrics: () => string
  /** `GET /nodes`: every known identity (`kairos-p2p node list`). */
  nodes?: () => unknown
  /** `POST /nodes/remove` with `{"node": "<peer id | host | overlay address>", "force": bool}` (`kairos-p2p node remove`). */
  remove?: (node: string, force: boolean) => Promise<unknown>
  /**
   * `POST /token/rotate` with `{"graceMs": n}` (`kairos-p2p token rotate`). `after` runs
   * once the answer is sent: the node then follows its own rotation, which restarts it.
   */
  rotate?: { run: (graceMs: number) => Promise<unknown>, after: () => void }
}

/** The agent refused a request (`POST`): carries the error's name and exit code. */
export class AgentRequestError extends KairosError {
  /** The `name` of the error the agent raised, e.g. `UnknownNodeError`. */
  readonly remoteName: string
  constructor (message: string, remoteName: string, exitCode: number) {
    super(message, { exitCode })
    this.name = 'AgentRequestError'
    this.remoteName = remoteName
  }
}

/** Most bytes of a request body the API reads. */
const MAX_BODY_BYTES = 16 * 1024

async function readBody (req: import('node:http').IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  let n = 0
  for await (const c of req) {
    n += (c as Buffer).length
    if (n > MAX_BODY_BYTES) throw new KairosError(`request body over ${MAX_BODY_BYTES} bytes`, { exitCode: 2 })
    chunks.push(c as Buffer)
  }
  return Buffer.concat(chunks).toString('utf8')
}

async function serveRemove (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse, remove: NonNullable<ApiRoutes['remove']>): Promise<void> {
  await servePost(req, res, async (o) => {
    if (typeof o.node !== 'string' || (o.force !== undefined && typeof o.force !== 'boolean')) {
      throw new KairosError('expected a JSON body {"node": "<peer id | host name | overlay address>", "force": true|false}', { exitCode: 2 })
    }
    return await remove(o.node, o.force === true)
  })
}

async function serveRotate (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse, rotate: NonNullable<ApiRoutes['rotate']>): Promise<void> {
  try {
    await servePost(req, res, async (o) => {
      if (typeof o.graceMs !== 'number') throw new KairosError('expected a JSON body {"graceMs": <milliseconds>}', { exitCode: 2 })
      return await rotate.run(o.graceMs)
    })
    if (!res.writableFinished) await new Promise<void>((resolve) => { res.once('close', () => { resolve() }) })
  } finally {
    rotate.after()
  }
}

async function servePost (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse, handle: (body: Record<string, unknown>) => Promise<unknown>): Promise<void> {
  try {
    const body = JSON.parse(await readBody(req)) as unknown
    const o = body !== null && typeof body === 'object' && !Array.isArray(body) ? body as Record<string, unknown> : {}
    const result = await handle(o)
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(result))
  } catch (err) {
    const e = err as { name?: unknown, exitCode?: unknown }
    const exitCode = typeof e.exitCode === 'number' ? e.exitCode : err instanceof SyntaxError ? 2 : 1
    res.writeHead(exitCode === 2 ? 400 : 500, { 'content-type': 'application/json' })
      .end(JSON.stringify({ error: errorMessage(err), name: typeof e.name === 'string' ? e.name : 'Error', exitCode }))
  }
}

export interface ApiServer {
  readonly path: string
  close: () => Promise<void>
}

/**
 * Serves the local API over HTTP on a unix socket in the state dir, mode 0600 so
 * only root (the agent's user) can read the status, which names peers and addresses.
 */
export async function startApiServer (stateDir: string, routes: ApiRoutes): Promise<ApiServer> {
  const path = join(stateDir, API_SOCKET_NAME)
  await rm(path, { force: true })
  const server: Server = createServer((req, res) => {
    try {
      if (req.method === 'GET' && req.url === '/status') {
        const body = JSON.stringify(routes.status())
        res.writeHead(200, { 'content-type': 'application/json' }).end(body)
      } else if (req.method === 'GET' && req.url === '/metrics') {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(routes.metrics())
      } else if (req.method === 'GET' && req.url === '/nodes' && routes.nodes !== undefined) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(routes.nodes()))
      } else if (req.method === 'POST' && req.url === '/nodes/remove' && routes.remove !== undefined) {
        void serveRemove(req, res, routes.remove)
      } else if (req.method === 'POST' && req.url === '/token/rotate' && routes.rotate !== undefined) {
        void serveRotate(req, res, routes.rotate)
      } else {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `no route ${req.method ?? ''} ${req.url ?? ''}; expected GET /status, GET /metrics, GET /nodes, POST /nodes/remove or POST /token/rotate` }))
      }
    } catch (err) {
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: errorMessage(err) }))
    }
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(path, () => { server.off('error', reject); resolve() })
  })
  await chmod(path, 0o600)
  return {
    path,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
      await rm(path, { force: true })
    }
  }
}

/** `GET route` on the agent socket of `stateDir`; rejects with AgentUnreachableError. */
export async function queryAgent (stateDir: string, route: '/status' | '/metrics' | '/nodes', timeoutMs = 3000): Promise<string> {
  const socketPath = join(stateDir, API_SOCKET_NAME)
  try {
    return await new Promise<string>((resolve, reject) => {
      const req = request({ socketPath, path: route, method: 'GET', timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          if (res.statusCode === 200) resolve(text)
          else reject(new Error(`HTTP ${res.statusCode ?? '?'}: ${text}`))
        })
        res.on('error', reject)
      })
      req.on('timeout', () => { req.destroy(new Error(`no answer within ${timeoutMs} ms`)) })
      req.on('error', reject)
      req.end()
    })
  } catch (err) {
    throw new AgentUnreachableError(socketPath, err)
  }
}

/**
 * `POST route` with a JSON body on the agent socket of `stateDir`. Rejects with
 * AgentUnreachableError when nothing answers, AgentRequestError when the agent refused.
 */
export async function postAgent (stateDir: string, route: '/nodes/remove' | '/token/rotate', body: unknown, timeoutMs = 10_000): Promise<string> {
  const socketPath = join(stateDir, API_SOCKET_NAME)
  let answer: { status: number, text: string }
  try {
    answer = await new Promise((resolve, reject) => {
      const req = request({ socketPath, path: route, method: 'POST', timeout: timeoutMs, headers: { 'content-type': 'application/json' } }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => { resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }) })
        res.on('error', reject)
      })
      req.on('timeout', () => { req.destroy(new Error(`no answer within ${timeoutMs} ms`)) })
      req.on('error', reject)
      req.end(JSON.stringify(body))
    })
  } catch (err) {
    throw new AgentUnreachableError(socketPath, err)
  }
  if (answer.status === 200) return answer.text
  let parsed: { error?: unknown, name?: unknown, exitCode?: unknown } = {}
  try { parsed = JSON.parse(answer.text) as typeof parsed } catch { /* not JSON: the text itself is the message */ }
  const message = typeof parsed.error === 'string' ? parsed.error : `HTTP ${answer.status}: ${answer.text}`
  throw new AgentRequestError(message, typeof parsed.name === 'string' ? parsed.name : 'Error', parsed.exitCode === 2 ? 2 : 1)
}
