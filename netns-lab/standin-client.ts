/**
 * The k3s stand-in's client side: the URL contacted for a k3s server URL, registration
 * with retries, and waiting for a server to answer.
 */
import { caHashOf } from '../roles/credentials.ts'
import { systemClock, type Clock } from '../util/clock.ts'
import { errorMessage } from '../util/errors.ts'
import {
  backoffDelay, CACERTS_PATH, parseJoinToken, StandinCaError, StandinCaMismatchError, StandinInputError, StandinRefusedError, StandinTimeoutError,
  type RegisteredNode, type RegistrationRequest
} from './standin-protocol.ts'

// Not an import: importing node:http as a module loads undici behind its lazy exports,
// 40 ms of CPU for every install and serve process (see agent/api.ts).
const { request } = process.getBuiltinModule('node:http')

/** One HTTP exchange with the stand-in. */
async function httpJson (url: string, method: 'GET' | 'POST', token: string, body: unknown, timeoutMs: number, signal?: AbortSignal): Promise<{ status: number, body: unknown, raw: Buffer }> {
  return await new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const req = request(url, {
      method,
      timeout: timeoutMs,
      headers: { ...(token === '' ? {} : { authorization: `Bearer ${token}` }), ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }) },
      ...(signal === undefined ? {} : { signal })
    }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', reject)
      res.on('end', () => {
        const raw = Buffer.concat(chunks)
        const text = raw.toString('utf8')
        let parsed: unknown = text
        try { parsed = JSON.parse(text) } catch { /* keep the text */ }
        resolve({ status: res.statusCode ?? 0, body: parsed, raw })
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
 *
 * With a secure token (`K10<ca hash>::<user>:<secret>`) it first fetches `/cacerts`
 * and hashes it as k3s does: a server whose CA does not match gets nothing, and the
 * call fails at once with StandinCaMismatchError; only then is the secret sent. A
 * short token is sent to whatever answers at the URL.
 */
export async function registerNode (init: RegisterInit): Promise<RegisteredNode> {
  const clock = init.clock ?? systemClock
  const timeoutMs = init.timeoutMs ?? 120_000
  const base = standinUrl(init.serverUrl)
  const token = parseJoinToken(init.token)
  const deadline = clock.now() + timeoutMs
  let verified = token.caHash === undefined
  let last = 'none'
  for (let attempt = 0; ; attempt++) {
    init.signal?.throwIfAborted()
    try {
      if (!verified) {
        const ca = await httpJson(`${base}${CACERTS_PATH}`, 'GET', '', undefined, Math.min(5000, timeoutMs), init.signal)
        if (ca.status !== 200) throw new Error(`${CACERTS_PATH}: HTTP ${ca.status}`)
        let served: string
        try { served = caHashOf(ca.raw) } catch { served = '' }
        if (served !== token.caHash) throw new StandinCaMismatchError(base, token.caHash as string, served)
        verified = true
      }
      const r = await httpJson(`${base}/register`, 'POST', token.secret, init.node, Math.min(5000, timeoutMs), init.signal)
      if (r.status === 200 || r.status === 201) return r.body as RegisteredNode
      const reason = typeof r.body === 'object' && r.body !== null ? String((r.body as { error?: unknown }).error ?? '') : String(r.body)
      if (r.status >= 400 && r.status < 500) throw new StandinRefusedError(base, r.status, reason)
      last = `HTTP ${r.status} ${reason}`
    } catch (err) {
      if (err instanceof StandinRefusedError || err instanceof StandinCaMismatchError) throw err
      if (init.signal?.aborted === true) throw err
      last = errorMessage(err)
    }
    const wait = backoffDelay(attempt, 100, init.retryMaxMs ?? DEFAULT_REGISTER_RETRY_MAX_MS)
    if (clock.now() + wait > deadline) throw new StandinTimeoutError(base, timeoutMs, last)
    await clock.sleep(wait, init.signal)
  }
}

/** The cluster CA bundle a stand-in serves at `/cacerts` (no auth), as a k3s server joining the cluster takes it. */
export async function fetchClusterCa (serverUrl: string, timeoutMs: number, signal?: AbortSignal): Promise<Buffer> {
  const url = `${standinUrl(serverUrl)}${CACERTS_PATH}`
  const r = await httpJson(url, 'GET', '', undefined, timeoutMs, signal)
  if (r.status !== 200) throw new StandinCaError(`cannot take the cluster CA from ${url}: HTTP ${r.status}, expected 200 and a PEM bundle`)
  return r.raw
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
