import type { Server } from 'node:http'
import { KairosError, errorMessage } from '../util/errors.ts'

// Through `process.getBuiltinModule`, not an import: see agent/api.ts (importing node:http
// as a module loads undici at start).
const { createServer } = process.getBuiltinModule('node:http')

/** The metrics endpoint could not listen on `p2p.metrics.listen`. */
export class MetricsListenError extends KairosError {
  constructor (listen: string, cause: unknown) {
    super(`p2p.metrics.listen: cannot serve metrics on ${listen} (${errorMessage(cause)}); expected a free host:port this box owns, e.g. 127.0.0.1:9469`, { cause })
    this.name = 'MetricsListenError'
  }
}

/** A running metrics endpoint. */
export interface MetricsServer {
  /** `http://host:port/metrics`, with the port actually bound (for a listen port of 0). */
  readonly url: string
  close: () => Promise<void>
}

/** `host:port` or `[v6]:port` → its parts; the config loader has validated the form. */
export function splitHostPort (listen: string): { host: string, port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(listen) ?? /^([^:]+):(\d+)$/.exec(listen)
  if (m === null) throw new MetricsListenError(listen, new Error('not host:port'))
  return { host: m[1] as string, port: Number(m[2]) }
}

/**
 * Serves `GET /metrics` (Prometheus text format 0.0.4) over plain HTTP on `listen`, for a
 * Prometheus server to scrape: the same families as the agent socket's `/metrics`. Every
 * other path or method gets 404 / 405. Nothing else is served here: the status, which
 * names peers and addresses, stays on the 0600 socket.
 */
export async function startMetricsServer (listen: string, render: () => string): Promise<MetricsServer> {
  const { host, port } = splitHostPort(listen)
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`no route ${req.url ?? ''}; metrics are at /metrics\n`)
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' }).end(`method ${req.method ?? ''} not allowed; expected GET\n`)
      return
    }
    try {
      const body = render()
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(req.method === 'HEAD' ? undefined : body)
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`cannot render metrics: ${errorMessage(err)}\n`)
    }
  })
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => { server.off('error', reject); resolve() })
    })
  } catch (err) {
    throw new MetricsListenError(listen, err)
  }
  const addr = server.address()
  const bound = typeof addr === 'object' && addr !== null ? addr.port : port
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}/metrics`,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    }
  }
}
