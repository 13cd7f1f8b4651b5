/**
 * The side-effect boundary of the overlay: everything that touches a WireGuard
 * interface goes through a `WireGuardDriver`. One real implementation
 * (`createWireGuardDriver`, `ip` / `wg` / `wireguard-go` through execa) and one
 * in-memory fake (`createFakeWireGuardDriver`) for unit tests and benchmarks.
 */

/** What the interface must look like. */
export interface InterfaceSpec {
  /** Interface name (1–15 characters). */
  name: string
  /** WireGuard private key, base64. Written to a 0600 file for `wg`; never on a command line. */
  privateKey: string
  /** UDP listen port. */
  listenPort: number
  /** Overlay address with the network's prefix, e.g. `10.88.3.7/16`. */
  address: string
  /** Link MTU. */
  mtu: number
}

/** One peer as it should be configured. */
export interface PeerConfig {
  publicKey: string
  /** `ip:port`; omitted = keep whatever WireGuard learned. */
  endpoint?: string
  /** CIDRs routed to this peer, e.g. `10.88.3.7/32`. */
  allowedIps: string[]
  /** Persistent keepalive, seconds (0 = off). */
  keepalive: number
}

/** A peer to nudge (see `WireGuardDriver.nudge`). */
export interface NudgeTarget extends PeerConfig {
  /**
   * Re-create the peer so its initiation goes out at once. Only for a peer nothing was
   * ever received from: one we answered may hold a session the other side already uses.
   */
  recreate: boolean
}

/** One peer as `wg show <if> dump` reports it. */
export interface PeerDump {
  publicKey: string
  /** Current endpoint, undefined when none is known. */
  endpoint?: string
  allowedIps: string[]
  /** Unix seconds of the latest handshake; 0 = never. */
  latestHandshake: number
  rxBytes: number
  txBytes: number
  /** Persistent keepalive, seconds (0 = off). */
  keepalive: number
}

/** The interface as `wg show <if> dump` reports it (private key left out). */
export interface InterfaceDump {
  publicKey: string
  listenPort: number
  peers: PeerDump[]
}

/** How the interface is implemented. */
export type InterfaceKind = 'kernel' | 'wireguard-go'

/** What `ensureInterface` did. */
export interface EnsureResult {
  kind: InterfaceKind
  /** The interface did not exist (or was dead) and was created. */
  created: boolean
  /** Something was changed (creation, key, port, MTU, link state, address). */
  changed: boolean
}

/** A supervised wireguard-go process ended without being asked to. */
export interface ProcessExit {
  interface: string
  pid: number
  code: number | undefined
  signal: string | undefined
}

export interface WireGuardDriverEvents {
  'process:exit': CustomEvent<ProcessExit>
}

export interface WireGuardDriver {
  /**
   * Creates the interface if needed (kernel WireGuard, else wireguard-go) and brings
   * key, port, MTU, link state and address to `spec`. Idempotent: changes only what
   * differs. Recreates an interface whose wireguard-go died.
   */
  ensureInterface(spec: InterfaceSpec, signal?: AbortSignal): Promise<EnsureResult>
  /** Adds or updates `peers` and removes the peers with the public keys in `remove`, in one step. */
  setPeers(name: string, peers: PeerConfig[], remove: string[], signal?: AbortSignal): Promise<void>
  /**
   * Makes WireGuard send a keepalive to each peer now, which starts a handshake when none
   * is current: persistent keepalive goes from off to `keepalive` (or to 1 s and back off),
   * in one step. Kernel and wireguard-go both allow one initiation per peer per 5 s, so a
   * plain nudge within 5 s of the last initiation (which a lossy link may have lost) does
   * nothing; a peer with `recreate` is removed and added back with its config in the same
   * step, and a peer added anew has no initiation behind it, so its nudge sends one at once.
   */
  nudge(name: string, peers: NudgeTarget[], signal?: AbortSignal): Promise<void>
  /** The interface's public state, or undefined when it does not exist. */
  show(name: string, signal?: AbortSignal): Promise<InterfaceDump | undefined>
  /** Takes the interface down and stops its wireguard-go. Resolves false when there was nothing to remove. */
  remove(name: string, signal?: AbortSignal): Promise<boolean>
  /**
   * Stops supervising and releases the driver. Interfaces and their wireguard-go
   * processes stay up (k3s depends on them); `remove()` takes them down.
   */
  close(): Promise<void>
  addEventListener<K extends keyof WireGuardDriverEvents>(type: K, listener: (evt: WireGuardDriverEvents[K]) => void): void
  removeEventListener<K extends keyof WireGuardDriverEvents>(type: K, listener: (evt: WireGuardDriverEvents[K]) => void): void
}

/** Linux interface names: 1–15 characters, no `/`, `:`, whitespace; not `.` or `..`. */
export function isInterfaceName (name: string): boolean {
  return /^[A-Za-z0-9_.-]{1,15}$/.test(name) && name !== '.' && name !== '..'
}

function num (text: string | undefined): number {
  const n = Number(text)
  return Number.isFinite(n) ? n : 0
}

/**
 * Parses `wg show <if> dump`. The first line (interface) carries the private key:
 * it is read past and never returned.
 */
export function parseDump (text: string): InterfaceDump {
  const lines = text.split('\n').filter((l) => l.length > 0)
  const head = (lines[0] ?? '').split('\t')
  const dump: InterfaceDump = { publicKey: head[1] ?? '', listenPort: num(head[2]), peers: [] }
  for (const line of lines.slice(1)) {
    const f = line.split('\t')
    if (f.length < 8) continue
    const endpoint = f[2] === '(none)' ? undefined : f[2]
    const allowed = f[3] === '(none)' || f[3] === '' ? [] : (f[3] ?? '').split(',')
    dump.peers.push({
      publicKey: f[0] ?? '',
      ...(endpoint === undefined ? {} : { endpoint }),
      allowedIps: allowed,
      latestHandshake: num(f[4]),
      rxBytes: num(f[5]),
      txBytes: num(f[6]),
      keepalive: f[7] === 'off' ? 0 : num(f[7])
    })
  }
  return dump
}
