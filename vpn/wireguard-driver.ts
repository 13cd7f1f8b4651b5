import { statSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa, type ResultPromise } from 'execa'
import { systemClock, type Clock } from '../util/clock.ts'
import { errorMessage } from '../util/errors.ts'
import { silentLogger, type Logger } from '../util/log.ts'
import { WireGuardCommandError, WireGuardInterfaceError, InterfaceNameError } from './errors.ts'
import { isInterfaceName, parseDump, type EnsureResult, type InterfaceDump, type InterfaceKind, type InterfaceSpec, type NudgeTarget, type PeerConfig, type ProcessExit, type WireGuardDriver, type WireGuardDriverEvents } from './driver.ts'
import { publicKeyOf } from './keys.ts'
import { DEFAULT_UAPI_DIR, keyLines, nudgeLines, peerLines, uapiGet, uapiSet, uapiSocketPath } from './uapi.ts'

/** How long one `ip` / `wg` command may run, ms. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 10_000
/** How long a fresh wireguard-go may take to open its control socket, ms. */
export const DEFAULT_USERSPACE_START_TIMEOUT_MS = 5_000
/** How long `remove()` waits for wireguard-go to exit before signalling it, ms. */
export const DEFAULT_PROCESS_STOP_TIMEOUT_MS = 2_000

export interface WireGuardDriverInit {
  /**
   * Prepended to every command, e.g. `['nsenter', '--net=/run/netns/a',
   * '--mount=/proc/123/ns/mnt']` to drive an interface in another namespace.
   * @default []
   */
  commandPrefix?: string[]
  /** `auto` tries kernel WireGuard and falls back to wireguard-go. @default 'auto' */
  mode?: 'auto' | 'kernel' | 'wireguard-go'
  /** The `ip` program. @default 'ip' */
  ip?: string
  /** The `wg` program. @default 'wg' */
  wg?: string
  /** The `wireguard-go` program. @default 'wireguard-go' */
  wireguardGo?: string
  /** Directory for the short-lived 0600 private-key file handed to `wg set`. @default os.tmpdir() */
  keyFileDir?: string
  /**
   * Where wireguard-go keeps its control sockets: a wireguard-go interface is read and
   * configured through its socket (see `uapi.ts`) instead of a `wg` process per
   * request. The default applies only without a `commandPrefix` (which may point at
   * another mount namespace; `/proc/<pid>/root/run/wireguard` reaches one); `false`
   * always uses `wg`. @default DEFAULT_UAPI_DIR
   */
  uapiDir?: string | false
  /** @default DEFAULT_COMMAND_TIMEOUT_MS */
  commandTimeoutMs?: number
  /** @default DEFAULT_USERSPACE_START_TIMEOUT_MS */
  userspaceStartTimeoutMs?: number
  /** @default DEFAULT_PROCESS_STOP_TIMEOUT_MS */
  processStopTimeoutMs?: number
  /** @default systemClock */
  clock?: Clock
  /** @default silentLogger */
  logger?: Logger
}

/** A wireguard-go process this driver started. */
export interface SupervisedProcess {
  interface: string
  pid: number
}

/** The real driver, with the PIDs of the wireguard-go processes it started (tests, `vpn down`). */
export interface ExecWireGuardDriver extends WireGuardDriver {
  /** wireguard-go processes started by this driver that are still running. */
  processes(): SupervisedProcess[]
}

interface Child {
  pid: number
  exited: Promise<void>
  running: boolean
  /** Set when the driver itself stops the process (no `process:exit` event). */
  expected: boolean
  subprocess: ResultPromise
}

interface LinkInfo {
  mtu: number
  up: boolean
  kind: string | undefined
  /** Its IPv4 addresses, `a.b.c.d/prefix`. */
  addresses: string[]
}

function checkName (name: string): void {
  if (!isInterfaceName(name)) throw new InterfaceNameError(`vpn.interface: got '${name}', expected 1–15 characters of letters, digits, '_', '.', '-'`)
}

/**
 * The real `WireGuardDriver`: `ip`, `wg` and `wireguard-go` through execa with argument
 * arrays, and wireguard-go's control socket in place of `wg` where it can be reached.
 */
export function createWireGuardDriver (init: WireGuardDriverInit = {}): ExecWireGuardDriver {
  const prefix = init.commandPrefix ?? []
  const mode = init.mode ?? 'auto'
  const ipBin = init.ip ?? 'ip'
  const wgBin = init.wg ?? 'wg'
  const goBin = init.wireguardGo ?? 'wireguard-go'
  const uapiDir = init.uapiDir ?? DEFAULT_UAPI_DIR
  /** Whether wireguard-go's socket may be used at all (see `uapiDir`). */
  const uapiUsable = uapiDir !== false && (prefix.length === 0 || init.uapiDir !== undefined)
  const timeout = init.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS
  const startTimeout = init.userspaceStartTimeoutMs ?? DEFAULT_USERSPACE_START_TIMEOUT_MS
  const stopTimeout = init.processStopTimeoutMs ?? DEFAULT_PROCESS_STOP_TIMEOUT_MS
  const clock = init.clock ?? systemClock
  const log = init.logger ?? silentLogger
  const events = new EventTarget()
  const children = new Map<string, Child>()
  let kernelSupported: boolean | undefined = mode === 'wireguard-go' ? false : undefined
  let closed = false

  const argvOf = (args: string[]): [string, string[]] => {
    const all = [...prefix, ...args]
    return [all[0] as string, all.slice(1)]
  }

  /** Runs a command; resolves with its result, failed or not. Throws only on abort or spawn trouble. */
  const exec = async (args: string[], signal?: AbortSignal): Promise<{ ok: boolean, stdout: string, stderr: string }> => {
    signal?.throwIfAborted()
    const [file, rest] = argvOf(args)
    const r = await execa(file, rest, { reject: false, timeout, stdin: 'ignore', ...(signal === undefined ? {} : { cancelSignal: signal }) })
    if (r.isCanceled) signal?.throwIfAborted()
    if (r.failed && r.exitCode === undefined && !r.timedOut) {
      throw new WireGuardCommandError([file, ...rest], r.stderr.trim() !== '' ? r.stderr.trim() : (r.shortMessage ?? 'could not run'))
    }
    return { ok: !r.failed, stdout: r.stdout, stderr: r.stderr }
  }

  /** Runs a command that must succeed. */
  const must = async (args: string[], signal?: AbortSignal): Promise<string> => {
    const r = await exec(args, signal)
    if (!r.ok) throw new WireGuardCommandError([...prefix, ...args], r.stderr.trim() === '' ? 'failed' : r.stderr.trim())
    return r.stdout
  }

  /** The link and its IPv4 addresses, in one `ip` run (each is a process). */
  const linkInfo = async (name: string, signal?: AbortSignal): Promise<LinkInfo | undefined> => {
    const args = [ipBin, '-d', '-j', '-4', 'address', 'show', 'dev', name]
    const r = await exec(args, signal)
    if (!r.ok) return undefined
    try {
      const parsed = JSON.parse(r.stdout) as Array<{ mtu?: number, flags?: string[], linkinfo?: { info_kind?: string }, addr_info?: Array<{ local?: string, prefixlen?: number }> }>
      const link = parsed[0]
      if (link === undefined) return undefined
      const addresses = (link.addr_info ?? []).map((a) => `${a.local ?? ''}/${a.prefixlen ?? ''}`)
      return { mtu: link.mtu ?? 0, up: (link.flags ?? []).includes('UP'), kind: link.linkinfo?.info_kind, addresses }
    } catch (err) {
      throw new WireGuardCommandError([...prefix, ...args], `unreadable output: ${errorMessage(err)}`)
    }
  }

  /**
   * The control socket of wireguard-go interface `name` when this process can reach
   * it (see `uapiDir`); undefined for a kernel interface or when the socket is
   * missing: `wg` then.
   */
  const uapiPath = (name: string): string | undefined => {
    if (!uapiUsable) return undefined
    const path = uapiSocketPath(name, uapiDir)
    try {
      return statSync(path).isSocket() ? path : undefined
    } catch {
      return undefined
    }
  }

  /** Applies UAPI `set` lines; a refusal becomes a WireGuardCommandError naming the request. */
  const uapiApply = async (path: string, what: string, lines: string[], signal?: AbortSignal): Promise<void> => {
    try {
      await uapiSet(path, lines, { timeoutMs: timeout, ...(signal === undefined ? {} : { signal }) })
    } catch (err) {
      signal?.throwIfAborted()
      throw new WireGuardCommandError(['uapi', path, 'set', what], errorMessage(err), { cause: err })
    }
  }

  const show = async (name: string, signal?: AbortSignal): Promise<InterfaceDump | undefined> => {
    checkName(name)
    const path = uapiPath(name)
    if (path !== undefined) {
      try {
        return await uapiGet(path, { timeoutMs: timeout, ...(signal === undefined ? {} : { signal }) })
      } catch (err) {
        signal?.throwIfAborted()
        // A socket nobody answers on: a wireguard-go that died, as `wg show` would find.
        log.debug('uapi get failed', { interface: name, error: errorMessage(err) })
        return undefined
      }
    }
    const r = await exec([wgBin, 'show', name, 'dump'], signal)
    if (!r.ok) return undefined
    return parseDump(r.stdout)
  }

  const startUserspace = async (name: string, signal?: AbortSignal): Promise<void> => {
    const [file, rest] = argvOf([goBin, name])
    const subprocess = execa(file, rest, {
      env: { WG_PROCESS_FOREGROUND: '1' },
      detached: true,
      cleanup: false,
      stdio: 'ignore',
      reject: false
    })
    const pid = subprocess.pid
    if (pid === undefined) {
      const r = await subprocess
      throw new WireGuardInterfaceError(`${[file, ...rest].join(' ')}: could not start: ${r.shortMessage}`)
    }
    const child: Child = { pid, running: true, expected: false, subprocess, exited: Promise.resolve() }
    child.exited = subprocess.then((r) => {
      child.running = false
      if (children.get(name) === child) children.delete(name)
      if (!child.expected && !closed) {
        const detail: ProcessExit = { interface: name, pid, code: r.exitCode, signal: r.signal }
        log.warn('wireguard-go exited', { ...detail })
        events.dispatchEvent(new CustomEvent('process:exit', { detail }))
      }
    })
    children.set(name, child)
    log.info('wireguard-go started', { interface: name, pid })
    // wireguard-go gives no readiness signal we can wait on across namespaces: poll its
    // control socket through `wg show` with a short back-off, until a deadline.
    const deadline = clock.now() + startTimeout
    let wait = 5
    for (;;) {
      if (!child.running) {
        throw new WireGuardInterfaceError(`${[file, ...rest].join(' ')}: exited before the interface came up`)
      }
      // With the socket in reach, wait for the socket itself: asking `wg` before it exists costs a process each time.
      if ((!uapiUsable || uapiPath(name) !== undefined) && await show(name, signal) !== undefined) return
      if (clock.now() >= deadline) {
        await stopChild(name, child)
        throw new WireGuardInterfaceError(`${[file, ...rest].join(' ')}: interface ${name} not up after ${startTimeout} ms`)
      }
      await clock.sleep(wait, signal)
      wait = Math.min(wait * 2, 100)
    }
  }

  const stopChild = async (name: string, child: Child): Promise<void> => {
    child.expected = true
    if (!child.running) return
    const timedOut = new AbortController()
    const exited = child.exited.then(() => true)
    const waitStop = clock.sleep(stopTimeout, timedOut.signal).then(() => false, () => false)
    let done = await Promise.race([exited, waitStop])
    if (!done) {
      log.warn('wireguard-go did not exit after its interface was removed; sending SIGTERM', { interface: name, pid: child.pid })
      child.subprocess.kill('SIGTERM')
      done = await Promise.race([exited, clock.sleep(stopTimeout, timedOut.signal).then(() => false, () => false)])
      if (!done) child.subprocess.kill('SIGKILL')
      await child.exited
    }
    timedOut.abort()
  }

  const createLink = async (name: string, signal?: AbortSignal): Promise<InterfaceKind> => {
    if (kernelSupported !== false) {
      const r = await exec([ipBin, 'link', 'add', 'dev', name, 'type', 'wireguard'], signal)
      if (r.ok) { kernelSupported = true; return 'kernel' }
      if (mode === 'kernel') throw new WireGuardInterfaceError(`ip link add dev ${name} type wireguard: ${r.stderr.trim()} (vpn mode 'kernel' needs the wireguard kernel module)`)
      kernelSupported = false
      log.info('no kernel WireGuard; using wireguard-go', { interface: name, detail: r.stderr.trim() })
    }
    await startUserspace(name, signal)
    return 'wireguard-go'
  }

  const setKey = async (spec: InterfaceSpec, signal?: AbortSignal): Promise<void> => {
    const path = uapiPath(spec.name)
    if (path !== undefined) { await uapiApply(path, 'private_key listen_port', keyLines(spec.privateKey, spec.listenPort), signal); return }
    const dir = await mkdtemp(join(init.keyFileDir ?? tmpdir(), 'kairos-wg-'))
    try {
      const file = join(dir, 'private.key')
      await writeFile(file, spec.privateKey + '\n', { mode: 0o600 })
      await must([wgBin, 'set', spec.name, 'listen-port', String(spec.listenPort), 'private-key', file], signal)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }

  /** Gives the link exactly `spec.address`, given the IPv4 addresses it has (none when just created). */
  const ensureAddress = async (spec: InterfaceSpec, current: string[], signal?: AbortSignal): Promise<boolean> => {
    let changed = false
    for (const a of current) {
      if (a === spec.address) continue
      await must([ipBin, 'address', 'del', a, 'dev', spec.name], signal)
      changed = true
    }
    if (!current.includes(spec.address)) {
      await must([ipBin, 'address', 'add', spec.address, 'dev', spec.name], signal)
      changed = true
    }
    return changed
  }

  const ensureInterface = async (spec: InterfaceSpec, signal?: AbortSignal): Promise<EnsureResult> => {
    checkName(spec.name)
    let link = await linkInfo(spec.name, signal)
    let created = false
    let kind: InterfaceKind = link?.kind === 'wireguard' ? 'kernel' : 'wireguard-go'
    let dump = link === undefined ? undefined : await show(spec.name, signal)
    if (link !== undefined && dump === undefined) {
      // A tun link whose wireguard-go is gone: take it down and start over.
      log.warn('interface exists but answers no WireGuard request; recreating it', { interface: spec.name })
      await must([ipBin, 'link', 'del', 'dev', spec.name], signal)
      link = undefined
    }
    if (link === undefined) {
      kind = await createLink(spec.name, signal)
      created = true
      dump = await show(spec.name, signal)
      if (dump === undefined) throw new WireGuardInterfaceError(`interface ${spec.name} vanished right after it was created`)
      // A new link is down, without an address, at its default MTU: no need to ask `ip` (each ask is a process).
      link = { mtu: 0, up: false, kind: kind === 'kernel' ? 'wireguard' : undefined, addresses: [] }
    }
    let changed = created
    if (dump?.publicKey !== publicKeyOf(spec.privateKey) || dump.listenPort !== spec.listenPort) {
      await setKey(spec, signal)
      changed = true
    }
    if (link.mtu !== spec.mtu || !link.up) {
      await must([ipBin, 'link', 'set', 'dev', spec.name, 'mtu', String(spec.mtu), 'up'], signal)
      changed = true
    }
    if (await ensureAddress(spec, link.addresses, signal)) changed = true
    return { kind, created, changed }
  }

  const setPeers = async (name: string, peers: PeerConfig[], remove: string[], signal?: AbortSignal): Promise<void> => {
    checkName(name)
    if (peers.length === 0 && remove.length === 0) return
    const path = uapiPath(name)
    if (path !== undefined) { await uapiApply(path, 'peers', peerLines(peers, remove), signal); return }
    const args = [wgBin, 'set', name]
    for (const key of remove) args.push('peer', key, 'remove')
    for (const p of peers) {
      args.push('peer', p.publicKey)
      if (p.endpoint !== undefined) args.push('endpoint', p.endpoint)
      args.push('persistent-keepalive', p.keepalive > 0 ? String(p.keepalive) : 'off', 'allowed-ips', p.allowedIps.join(','))
    }
    await must(args, signal)
  }

  const nudge = async (name: string, peers: NudgeTarget[], signal?: AbortSignal): Promise<void> => {
    checkName(name)
    if (peers.length === 0) return
    const path = uapiPath(name)
    if (path !== undefined) { await uapiApply(path, 'peers', nudgeLines(peers), signal); return }
    const args = [wgBin, 'set', name]
    for (const p of peers) {
      if (p.recreate) {
        // Removed and added anew, with keepalive from off: the new peer sends a keepalive, so an initiation, now.
        args.push('peer', p.publicKey, 'remove', 'peer', p.publicKey)
        if (p.endpoint !== undefined) args.push('endpoint', p.endpoint)
        args.push('persistent-keepalive', String(p.keepalive > 0 ? p.keepalive : 1), 'allowed-ips', p.allowedIps.join(','))
        if (p.keepalive <= 0) args.push('peer', p.publicKey, 'persistent-keepalive', 'off')
        continue
      }
      // off -> on sends the keepalive; a peer without keepalive is put back to off.
      const steps = p.keepalive > 0 ? ['off', String(p.keepalive)] : ['off', '1', 'off']
      for (const step of steps) args.push('peer', p.publicKey, 'persistent-keepalive', step)
    }
    await must(args, signal)
  }

  const remove = async (name: string, signal?: AbortSignal): Promise<boolean> => {
    checkName(name)
    const child = children.get(name)
    if (child !== undefined) child.expected = true
    const link = await linkInfo(name, signal)
    if (link !== undefined) await must([ipBin, 'link', 'del', 'dev', name], signal)
    if (child !== undefined) await stopChild(name, child)
    return link !== undefined || child !== undefined
  }

  return {
    ensureInterface,
    setPeers,
    nudge,
    show,
    remove,
    processes: () => [...children].filter(([, c]) => c.running).map(([name, c]) => ({ interface: name, pid: c.pid })),
    close: async () => {
      closed = true
      // Leave wireguard-go running for the interface; only stop holding the event loop.
      for (const c of children.values()) c.subprocess.unref()
    },
    addEventListener: (type, listener) => { events.addEventListener(type, listener as (evt: Event) => void) },
    removeEventListener: (type, listener) => { events.removeEventListener(type, listener as (evt: Event) => void) }
  }
}
