/**
 * The k3s stand-in's HTTP server: `GET /ping`, `GET /cacerts`, `GET /nodes`, `POST
 * /register`, the registry kept in its file, and the server record written once it listens.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { systemClock, type Clock } from '../util/clock.ts'
import { errorMessage } from '../util/errors.ts'
import {
  backoffDelay, CACERTS_PATH, decideRegistration, MAX_BODY_BYTES, readRegistry, STANDIN_PORT, StandinInputError, tokenEquals, writeJsonAtomic,
  type ServerRecord, type StandinRegistry, type StandinTokens
} from './standin-protocol.ts'

// Not an import: importing node:http as a module loads undici behind its lazy exports,
// 40 ms of CPU for every install and serve process (see agent/api.ts).
const { createServer } = process.getBuiltinModule('node:http')

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
  /** The cluster CA bundle served at `/cacerts`, byte for byte (see standin-ca.ts). @default none: 404 */
  cacerts?: Buffer
  /** The k3s data dir it came from, kept in the server record. */
  dataDir?: string
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
 * The stand-in server: `GET /ping` (no auth; 503 until the server record is written), `GET /cacerts` (no auth), `GET /nodes` (server token),
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
        if (req.method === 'GET' && req.url === CACERTS_PATH && init.cacerts !== undefined) {
          // Unauthenticated, as k3s serves it: joiners hash it before they send a token.
          res.writeHead(200, { 'content-type': 'text/plain' }).end(init.cacerts); return
        }
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
    const rec: ServerRecord = { pid: process.pid, name: init.name, address: init.address, port: boundPort, startedAt: clock.now(), ...(init.dataDir === undefined ? {} : { dataDir: init.dataDir }) }
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
