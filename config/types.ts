/**
 * The validated configuration every component reads. Produced only by the loader
 * in `config/` (which owns validation, Kairos defaults and presets); nothing else
 * reads raw cloud-config YAML.
 */

/** Intervals and timeouts. Named presets live in `config/presets.ts`. */
export interface Timing {
  /** Anti-entropy digest exchange with a random peer, ms. */
  antiEntropyIntervalMs: number
  /** Liveness probe (heartbeat) interval, ms. */
  heartbeatIntervalMs: number
  /** Silence after which a member is suspect, ms. */
  suspectAfterMs: number
  /** Silence after which a member is dead, ms. */
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

export type PresetName = 'lan' | 'lab'

/** `p2p.role`: Kairos's static role, or `auto` for the empty string / absent key. */
export type StaticRole = 'auto' | 'master' | 'worker' | 'none'

export type InstallerConfig =
  | { kind: 'k3s', /** Filesystem root for `/etc/rancher/k3s/config.yaml`. @default '/' */ root: string }
  | { kind: 'exec', /** argv of the command run with the plan in its environment. */ command: string[] }
  | { kind: 'dry-run' }

export interface VpnConfig {
  /** `p2p.vpn.create` (Kairos): build the overlay. @default true */
  create: boolean
  /** `p2p.vpn.use` (Kairos): give k3s the overlay address and interface. @default true */
  use: boolean
  /** `p2p.vpn.cidr`. @default '10.88.0.0/16' */
  cidr: string
  /** `p2p.vpn.interface` (≤ 15 characters). @default 'kairos0' */
  interface: string
  /** `p2p.vpn.port` (WireGuard UDP listen port). @default 51820 */
  port: number
  /** `p2p.vpn.mtu`. @default 1420 */
  mtu: number
}

export interface K3sSection {
  /** `k3s.enabled` / `k3s-agent.enabled` as written by the user (Kairos keys). */
  enabled: boolean
  /** Extra CLI arguments, e.g. `--disable=traefik,servicelb`. */
  args: string[]
  /** Extra environment for the service. */
  env: Record<string, string>
}

export interface P2PConfig {
  /** `p2p.network_token` (ours or a Kairos/edgevpn token), as written. Empty when absent. */
  networkToken: string
  /** `p2p.network_id`: several clusters may share one token with different ids. @default '' */
  networkId: string
  /** `p2p.role`. @default 'auto' */
  role: StaticRole
  /** `p2p.minimum_nodes`: nodes that must be seen before the cluster forms. */
  minimumNodes: number
  /** `p2p.disable_dht`. @default false */
  disableDht: boolean
  /** `p2p.auto.enable`: automatic role assignment. @default true */
  autoEnable: boolean
  /** `p2p.auto.ha.enable`. @default false */
  haEnable: boolean
  /** `p2p.auto.ha.master_nodes`: extra servers besides the init server. */
  haMasterNodes: number
  vpn: VpnConfig
  /** `p2p.bootstrap_peers`: multiaddrs with `/p2p/<id>`. @default [] */
  bootstrapPeers: string[]
  /** `p2p.listen`: libp2p listen multiaddrs. @default ['/ip4/0.0.0.0/tcp/4001'] */
  listen: string[]
  /** `p2p.mdns`: LAN discovery. @default true */
  mdns: boolean
  /** `p2p.state_dir`. @default '/var/lib/kairos-p2p' */
  stateDir: string
  /** `p2p.installer`. @default { kind: 'k3s', root: '/' } */
  installer: InstallerConfig
  /** `p2p.preset`. @default 'lan' */
  preset: PresetName
  /** The preset's timing with any `p2p.timing` overrides applied. */
  timing: Timing
}

export interface Config {
  p2p: P2PConfig
  /** `k3s` section (servers). */
  k3s: K3sSection
  /** `k3s-agent` section (agents). */
  k3sAgent: K3sSection
}

/** A non-fatal finding of the loader, e.g. an unknown key. */
export interface ConfigWarning {
  path: string
  message: string
}
