/**
 * The validated configuration every component reads. Produced only by the loader
 * in `config/` (which owns validation, Kairos defaults and presets); nothing else
 * reads raw cloud-config YAML.
 */

/** Intervals and timeouts. Named presets live in `config/presets.ts`. */
export interface Timing {
  /** Anti-entropy digest exchange with a random peer, ms. */
  antiEntropyIntervalMs: number
  /**
   * Liveness probe (heartbeat) interval, ms. Once a node's member view has not changed for
   * five `deadAfterMs`, it heartbeats up to four times more slowly (see p2p/heartbeat.ts).
   */
  heartbeatIntervalMs: number
  /** Silence after which a member is suspect, ms; longer for a peer whose heartbeats come slowly (a starved box, a quiet site). */
  suspectAfterMs: number
  /** Silence after which a member is dead, ms; stretched like `suspectAfterMs`, up to four times on a quiet site. */
  deadAfterMs: number
  /** Re-dial of known but unconnected peers, ms. */
  redialIntervalMs: number
  /** How long the member view must be unchanged before a node stands for election, ms. */
  electionSettleMs: number
  /** How long a term may last without a result before a new term may start, ms. */
  electionTermTimeoutMs: number
  /** Roles controller ticker, ms. */
  rolesTickMs: number
  /** VPN reconcile ticker, ms. */
  vpnReconcileMs: number
  /** A WireGuard peer with no handshake for this long is reported down, ms. */
  vpnHandshakeStaleMs: number
  /** DHT rendezvous epoch length, ms (current and previous epoch are honoured). */
  rendezvousEpochMs: number
  /** DHT rendezvous re-publish / lookup interval, ms. */
  rendezvousIntervalMs: number
  /** mDNS query interval, ms. */
  mdnsIntervalMs: number
}

/** Timing presets: `lan` (production) and `lab` (tests, simulation, netns lab). */
export type PresetName = 'lan' | 'lab'

/** `p2p.role`: Kairos's static role, or `auto` for the empty string / absent key. */
export type StaticRole = 'auto' | 'master' | 'worker' | 'none'

/** `p2p.installer`: how the hand-off installs k3s. */
export type InstallerConfig =
  | { kind: 'k3s', /** Filesystem root for `/etc/rancher/k3s/config.yaml`. @default '/' */ root: string }
  | { kind: 'exec', /** argv of the command run with the plan in its environment. */ command: string[] }
  | { kind: 'dry-run' }

/** `p2p.vpn`: the WireGuard overlay. */
export interface VpnConfig {
  /** `p2p.vpn.create` (Kairos): build the overlay. @default true */
  create: boolean
  /**
   * `p2p.vpn.use` (Kairos): give k3s the overlay address and interface. Always false
   * when `create` is false, as in Kairos. @default true
   */
  use: boolean
  /** `p2p.vpn.cidr`, canonical (host bits cleared), prefix length ≤ 30. @default '10.88.0.0/16' */
  cidr: string
  /** `p2p.vpn.interface` (≤ 15 characters). @default 'kairos0' */
  interface: string
  /** `p2p.vpn.port` (WireGuard UDP listen port, 1–65535). @default 51820 */
  port: number
  /** `p2p.vpn.mtu` (1280–9000). @default 1420 */
  mtu: number
}

/** `p2p.metrics`: the Prometheus endpoint. */
export interface MetricsConfig {
  /**
   * `p2p.metrics.listen`: `host:port` (IPv6 as `[addr]:port`) where `GET /metrics` is
   * served over HTTP, e.g. `127.0.0.1:9469` or the overlay address. Absent: not served
   * (the metrics stay on the agent's 0600 socket). @default undefined
   */
  listen?: string
}

/** A `k3s` or `k3s-agent` block (Kairos keys). */
export interface K3sSection {
  /** `k3s.enabled` / `k3s-agent.enabled` as written by the user (Kairos keys). @default false */
  enabled: boolean
  /** Extra CLI arguments, e.g. `--disable=traefik,servicelb`. @default [] */
  args: string[]
  /** Extra environment for the service (scalars read as text). @default {} */
  env: Record<string, string>
}

/** The resolved `p2p` block. */
export interface P2PConfig {
  /** `p2p.network_token` (ours or a Kairos/edgevpn token), as written. Empty when absent. */
  networkToken: string
  /**
   * `p2p.network_id`: several clusters may share one token with different ids. An
   * integer is read as its decimal text. (Kairos itself falls back to "kairos".) @default ''
   */
  networkId: string
  /** `p2p.role`. @default 'auto' */
  role: StaticRole
  /**
   * `p2p.minimum_nodes`: nodes that must be seen before the cluster forms. Absent or 0
   * means 2, as in Kairos. @default 2
   */
  minimumNodes: number
  /** `p2p.disable_dht`. @default false */
  disableDht: boolean
  /** `p2p.auto.enable`: automatic role assignment; false leaves only a static `p2p.role`. @default true */
  autoEnable: boolean
  /**
   * `p2p.auto.ha.enable`: several servers. As in Kairos, setting `ha.master_nodes`
   * without `ha.enable` turns HA on. @default false
   */
  haEnable: boolean
  /**
   * `p2p.auto.ha.master_nodes`: extra servers besides the init server. 0 when HA is off;
   * 2 when HA is on and the key is absent (three etcd members). @default 0
   */
  haMasterNodes: number
  /** `p2p.vpn`: the WireGuard overlay. */
  vpn: VpnConfig
  /** `p2p.bootstrap_peers`: multiaddrs with `/p2p/<id>`. @default [] */
  bootstrapPeers: string[]
  /** `p2p.listen`: libp2p listen multiaddrs. @default ['/ip4/0.0.0.0/tcp/4001'] */
  listen: string[]
  /** `p2p.mdns`: LAN discovery. @default true */
  mdns: boolean
  /** `p2p.state_dir`. @default '/var/lib/kairos/p2p' */
  stateDir: string
  /**
   * `p2p.forget_after`: how long after a node was last seen (dead or gone) its entries
   * are dropped from the cluster state, in ms; written as `7d`, `36h`, `90m`, `600s` or
   * a number of seconds. `resolveConfig` always sets it; optional so that configs built
   * in code may leave it out (the state store then uses the same default).
   * @default 604800000 (7 days)
   */
  forgetAfterMs?: number
  /** `p2p.installer`. @default { kind: 'k3s', root: '/' } */
  installer: InstallerConfig
  /** `p2p.preset`, or the loader's `preset` override when given. @default 'lan' */
  preset: PresetName
  /**
   * The preset's timing with any `p2p.timing` overrides applied (keys are the
   * snake_case field names, e.g. `p2p.timing.dead_after_ms`).
   */
  timing: Timing
  /** `p2p.metrics`. @default {} (no HTTP endpoint) */
  metrics?: MetricsConfig
}

/** The whole validated configuration. */
export interface Config {
  /** The `p2p` block: Kairos's keys and ours. */
  p2p: P2PConfig
  /** `k3s` section (servers). */
  k3s: K3sSection
  /** `k3s-agent` section (agents). */
  k3sAgent: K3sSection
}

/** A non-fatal finding of the loader, e.g. an unknown key. */
export interface ConfigWarning {
  /** Dotted key path the warning is about, e.g. `p2p.minimun_nodes`. */
  path: string
  /** What is wrong and what happens instead, e.g. `unknown key (did you mean p2p.minimum_nodes?)`. */
  message: string
}
