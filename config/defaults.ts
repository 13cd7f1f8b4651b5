import type { InstallerConfig } from './types.ts'

/**
 * `p2p.minimum_nodes` when absent or 0: Kairos waits for 2 advertising nodes before it
 * assigns roles (provider-kairos treats 0 as unset), and so do we.
 */
export const DEFAULT_MINIMUM_NODES = 2

/**
 * `p2p.auto.ha.master_nodes` when HA is on but the count is absent: 2 extra servers, so
 * the control plane has 3 members and embedded etcd keeps quorum when one is lost.
 * (Kairos schedules no extra server in that case, which makes HA a no-op.)
 */
export const DEFAULT_HA_MASTER_NODES = 2

/** `p2p.vpn.cidr`. */
export const DEFAULT_VPN_CIDR = '10.88.0.0/16'
/** `p2p.vpn.interface`. */
export const DEFAULT_VPN_INTERFACE = 'kairos0'
/** `p2p.vpn.port`: WireGuard's registered port. */
export const DEFAULT_VPN_PORT = 51820
/** `p2p.vpn.mtu`: 1500 minus the 80 bytes of WireGuard-over-IPv6 overhead. */
export const DEFAULT_VPN_MTU = 1420
/** `p2p.listen`. */
export const DEFAULT_LISTEN: readonly string[] = Object.freeze(['/ip4/0.0.0.0/tcp/4001'])
/**
 * `p2p.forget_after`, ms: a member dead or gone this long has its state entries dropped
 * (and refused until it is seen again). A week outlasts a weekend's power cut.
 */
export const DEFAULT_FORGET_AFTER_MS = 7 * 24 * 60 * 60_000
/**
 * `p2p.state_dir`: under /var/lib/kairos, which Kairos keeps across reboots (other
 * /var/lib dirs are on a tmpfs overlay there), and an ordinary path elsewhere.
 */
export const DEFAULT_STATE_DIR = '/var/lib/kairos/p2p'
/** The default state dir before 0.1.0; the agent moves it to `DEFAULT_STATE_DIR` (box/state-dir.ts). */
export const LEGACY_STATE_DIR = '/var/lib/kairos-p2p'
/** `p2p.installer.root` for the `k3s` installer. */
export const DEFAULT_K3S_ROOT = '/'
/** `p2p.installer`. */
export const DEFAULT_INSTALLER: InstallerConfig = Object.freeze({ kind: 'k3s', root: DEFAULT_K3S_ROOT })
/** The port `p2p.metrics.listen` examples use (Prometheus's registry of exporter ports has no entry for us; 9469 is free there). */
export const EXAMPLE_METRICS_PORT = 9469
