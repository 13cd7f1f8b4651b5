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
      } else {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `no route ${req.method ?? ''} ${req.url ?? ''}; expected GET /status or GET /metrics` }))
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
export async function queryAgent (stateDir: string, route: '/status' | '/metrics', timeoutMs = 3000): Promise<string> {
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
