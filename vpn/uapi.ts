/**
 * The WireGuard cross-platform userspace API ("UAPI"): the line protocol that
 * wireguard-go serves on `/var/run/wireguard/<interface>.sock` and that `wg` itself
 * speaks to it (https://www.wireguard.com/xplatform/).
 *
 * Why we speak it ourselves: every `wg show` or `wg set` is a process spawned from
 * the agent, and an agent asks for one on every reconcile pass and every status
 * read. On a box that boots a whole site, those spawns queued behind each other and
 * the overlay came up late (docs/decisions.md, VPN-4). A request on the socket costs
 * no process at all.
 *
 * Keys travel as hex on this protocol and as base64 everywhere else in this project.
 */
import { createConnection } from 'node:net'
import { join } from 'node:path'
import type { InterfaceDump, NudgeTarget, PeerConfig, PeerDump } from './driver.ts'
import { publicKeyOf } from './keys.ts'

/** Where wireguard-go (and `wg`) keep the control sockets. */
export const DEFAULT_UAPI_DIR = '/var/run/wireguard'

/** How long one request may take before it is abandoned, ms. */
export const DEFAULT_UAPI_TIMEOUT_MS = 5_000

/** The socket of interface `name` under `dir`. */
export function uapiSocketPath (name: string, dir = DEFAULT_UAPI_DIR): string {
  return join(dir, `${name}.sock`)
}

/** A request the daemon refused (`errno` ≠ 0), or an answer that does not follow the protocol. */
export class UapiError extends Error {
  /** The daemon's errno; undefined when the answer itself was wrong. */
  readonly errno: number | undefined
  constructor (message: string, errno?: number, options: { cause?: unknown } = {}) {
    super(message, options)
    this.name = 'UapiError'
    this.errno = errno
  }
}

const hexOf = (base64: string): string => Buffer.from(base64, 'base64').toString('hex')
const base64Of = (hex: string): string => Buffer.from(hex, 'hex').toString('base64')

/** The `set` lines that give the interface `privateKey` (base64) and `listenPort`. */
export function keyLines (privateKey: string, listenPort: number): string[] {
  return [`private_key=${hexOf(privateKey)}`, `listen_port=${listenPort}`]
}

/**
 * The `set` lines that remove the peers `remove` (public keys) and add or update
 * `peers`, replacing their allowed IPs — what `wg set <if> peer … remove` and
 * `wg set <if> peer … endpoint … persistent-keepalive … allowed-ips …` send.
 */
export function peerLines (peers: readonly PeerConfig[], remove: readonly string[]): string[] {
  const lines: string[] = []
  for (const key of remove) lines.push(`public_key=${hexOf(key)}`, 'remove=true')
  for (const p of peers) {
    lines.push(`public_key=${hexOf(p.publicKey)}`)
    if (p.endpoint !== undefined) lines.push(`endpoint=${p.endpoint}`)
    lines.push(`persistent_keepalive_interval=${p.keepalive}`, 'replace_allowed_ips=true')
    for (const ip of p.allowedIps) lines.push(`allowed_ip=${ip}`)
  }
  return lines
}

/**
 * The `set` lines of a handshake nudge: persistent keepalive off and back on sends a
 * keepalive now (`update_only`: a peer removed meanwhile is not brought back); a peer
 * with `recreate` is first removed and added back with its config (a new peer has no
 * initiation behind it, so its own is not held back), its keepalive then set from off.
 */
export function nudgeLines (peers: readonly NudgeTarget[]): string[] {
  const lines: string[] = []
  for (const p of peers) {
    const key = `public_key=${hexOf(p.publicKey)}`
    if (p.recreate) {
      lines.push(key, 'remove=true', key)
      if (p.endpoint !== undefined) lines.push(`endpoint=${p.endpoint}`)
      lines.push('replace_allowed_ips=true')
      for (const ip of p.allowedIps) lines.push(`allowed_ip=${ip}`)
      lines.push(`persistent_keepalive_interval=${p.keepalive > 0 ? p.keepalive : 1}`)
      if (p.keepalive <= 0) lines.push(key, 'update_only=true', 'persistent_keepalive_interval=0')
      continue
    }
    const steps = p.keepalive > 0 ? [0, p.keepalive] : [0, 1, 0]
    for (const step of steps) lines.push(key, 'update_only=true', `persistent_keepalive_interval=${step}`)
  }
  return lines
}

const int = (text: string, key: string): number => {
  if (!/^\d+$/.test(text)) throw new UapiError(`UAPI answer: ${key}=${text}: expected a non-negative integer`)
  return Number(text)
}

/**
 * Parses the answer to `get=1` (without its final empty line) into the shape of
 * `wg show <if> dump`. The private key is read only to derive the public key.
 */
export function parseGet (text: string): InterfaceDump {
  const dump: InterfaceDump = { publicKey: '(none)', listenPort: 0, peers: [] }
  let peer: PeerDump | undefined
  let errno: number | undefined
  for (const line of text.split('\n')) {
    if (line === '') continue
    const eq = line.indexOf('=')
    if (eq <= 0) throw new UapiError(`UAPI answer: line ${JSON.stringify(line.slice(0, 40))}: expected key=value`)
    const key = line.slice(0, eq)
    const value = line.slice(eq + 1)
    switch (key) {
      case 'private_key': dump.publicKey = publicKeyOf(base64Of(value)); break
      case 'listen_port': dump.listenPort = int(value, key); break
      case 'public_key':
        peer = { publicKey: base64Of(value), allowedIps: [], latestHandshake: 0, rxBytes: 0, txBytes: 0, keepalive: 0 }
        dump.peers.push(peer)
        break
      case 'errno': errno = int(value, key); break
      default:
        if (peer === undefined) break // fwmark and whatever a newer daemon adds
        switch (key) {
          case 'endpoint': peer.endpoint = value; break
          case 'allowed_ip': peer.allowedIps.push(value); break
          case 'last_handshake_time_sec': peer.latestHandshake = int(value, key); break
          case 'rx_bytes': peer.rxBytes = int(value, key); break
          case 'tx_bytes': peer.txBytes = int(value, key); break
          case 'persistent_keepalive_interval': peer.keepalive = int(value, key); break
        }
    }
  }
  if (errno === undefined) throw new UapiError('UAPI answer ended without errno=')
  if (errno !== 0) throw new UapiError(`UAPI get refused with errno ${errno}`, errno)
  return dump
}

/** Sends one request and resolves with the answer up to (not including) its final empty line. */
async function request (path: string, body: string, timeoutMs: number, signal?: AbortSignal): Promise<string> {
  signal?.throwIfAborted()
  return await new Promise<string>((resolve, reject) => {
    const socket = createConnection({ path })
    let text = ''
    let done = false
    const finish = (err: Error | undefined, answer?: string): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      socket.destroy()
      if (err !== undefined) reject(err)
      else resolve(answer ?? '')
    }
    const onAbort = (): void => { finish(signal?.reason instanceof Error ? signal.reason : new Error('aborted')) }
    const timer = setTimeout(() => { finish(new UapiError(`UAPI ${path}: no answer after ${timeoutMs} ms`)) }, timeoutMs)
    signal?.addEventListener('abort', onAbort, { once: true })
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      text += chunk
      const end = text.indexOf('\n\n')
      if (end >= 0) finish(undefined, text.slice(0, end + 1))
    })
    socket.on('error', (err) => { finish(err) })
    socket.on('close', () => { finish(new UapiError(`UAPI ${path}: closed before a complete answer`)) })
    socket.write(body)
  })
}

/** Reads the interface behind the socket at `path`. */
export async function uapiGet (path: string, options: { timeoutMs?: number, signal?: AbortSignal } = {}): Promise<InterfaceDump> {
  return parseGet(await request(path, 'get=1\n\n', options.timeoutMs ?? DEFAULT_UAPI_TIMEOUT_MS, options.signal))
}

/** Applies `set` lines in one request; rejects with UapiError when the daemon refuses them. */
export async function uapiSet (path: string, lines: readonly string[], options: { timeoutMs?: number, signal?: AbortSignal } = {}): Promise<void> {
  for (const line of lines) {
    if (line.includes('\n') || !line.includes('=')) throw new UapiError(`UAPI set line ${JSON.stringify(line.slice(0, 40))}: expected one key=value line`)
  }
  const answer = await request(path, `set=1\n${lines.map((l) => `${l}\n`).join('')}\n`, options.timeoutMs ?? DEFAULT_UAPI_TIMEOUT_MS, options.signal)
  const m = /^errno=(\d+)\n$/.exec(answer)
  if (m === null) throw new UapiError(`UAPI set: unexpected answer ${JSON.stringify(answer.slice(0, 60))}; expected errno=N`)
  const errno = Number(m[1])
  if (errno !== 0) throw new UapiError(`UAPI set refused with errno ${errno}`, errno)
}
