import { dump } from 'js-yaml'
import { parseConfig } from '../config/index.ts'
import { deepMerge, isMap, type YamlMap } from '../config/merge.ts'
import type { HostRecord } from './meta.ts'

/** libp2p TCP port every lab agent listens on (its own namespace, so no clash). */
export const LAB_P2P_PORT = 4001

/**
 * `p2p.timing` every lab host gets beneath the user's own: the `lab` preset's quick
 * election, roles steps and anti-entropy (it repairs a lost credential delta), with
 * the `lan` preset's failure detector and other periodic rounds. A lab runs N agents
 * on a couple of cores, where booting ten of them stalls each event loop for seconds:
 * with the `lab` preset's 100 ms heartbeats and 600 ms dead-after, members flapped
 * hundreds of times during a 10-node formation, every flap restarted the election's
 * settle period, and the 1–2 s mDNS, redial, rendezvous and WireGuard rounds kept the
 * machine busy (7–11 % of a core per idle agent at N=10).
 */
export const LAB_SITE_TIMING: Readonly<Record<string, number>> = Object.freeze({
  heartbeat_interval_ms: 500,
  suspect_after_ms: 1_500,
  dead_after_ms: 3_000,
  mdns_interval_ms: 5_000,
  redial_interval_ms: 5_000,
  rendezvous_interval_ms: 10_000,
  // The lan preset's hour-long epoch: once a site is quiet the DHT rounds back off to half
  // an epoch, and with the lab preset's minute-long epoch they ran every 30 s on every host.
  rendezvous_epoch_ms: 3_600_000,
  vpn_reconcile_ms: 5_000
})

/** Inputs of one host's cloud-config. */
export interface HostConfigInit {
  host: Pick<HostRecord, 'name' | 'address' | 'stateDir'>
  token: string
  minimumNodes: number
  /** `p2p.bootstrap_peers` (multiaddrs with /p2p/<id>); the host's own entry is left out. */
  bootstrapPeers: readonly string[]
  /** argv of the exec installer (the k3s stand-in). */
  installerCommand: readonly string[]
  /**
   * The host's k3s data dir (`--data-dir` appended to `k3s.args`): where its stand-in
   * keeps the cluster CA and the agent reads it. @default none
   */
  k3sDataDir?: string
  /** The user's `--config` document, merged underneath the lab's keys. */
  base?: YamlMap
  /**
   * Leave `p2p.state_dir` out, so the agent uses the default (the host's own, bind-mounted
   * there: see `LabInit.artefact`). @default false
   */
  defaultStateDir?: boolean
}

/** The host's own listen multiaddr: the concrete address (0.0.0.0 would advertise 127.0.0.1 over mDNS). */
export function listenAddr (address: string): string {
  return `/ip4/${address}/tcp/${LAB_P2P_PORT}`
}

/**
 * The cloud-config document of one lab host: LAB_SITE_TIMING, then the user's
 * `--config` (its `p2p.timing` wins), then the lab's own keys (token, listen address,
 * state dir, installer, preset `lab`, minimum nodes, bootstrap peers, and the k3s
 * data dir after the user's `k3s.args`), which win.
 */
export function hostCloudConfig (init: HostConfigInit): YamlMap {
  const own = listenAddr(init.host.address)
  const peers = init.bootstrapPeers.filter((p) => !p.startsWith(`${own}/`))
  const lab: YamlMap = {
    p2p: {
      network_token: init.token,
      minimum_nodes: init.minimumNodes,
      preset: 'lab',
      listen: [own],
      ...(init.defaultStateDir === true ? {} : { state_dir: init.host.stateDir }),
      installer: { kind: 'exec', command: [...init.installerCommand] },
      ...(peers.length > 0 ? { bootstrap_peers: peers } : {})
    }
  }
  const base = deepMerge({ p2p: { timing: { ...LAB_SITE_TIMING } } }, isMap(init.base) ? init.base : {})
  if (init.k3sDataDir !== undefined) {
    const k3s = isMap(base.k3s) ? base.k3s : {}
    const args: unknown[] = Array.isArray(k3s.args) ? k3s.args : []
    // The user's own data dir wins (each host then shares it: their choice).
    const own = args.some((a) => typeof a === 'string' && /^(--data-dir|-d)(=|\s|$)/.test(a.trim()))
    if (!own) lab.k3s = { args: [...args, '--data-dir', init.k3sDataDir] }
  }
  return deepMerge(base, lab)
}

/** The document as a cloud-config file, validated by the same loader the agent uses. */
export function renderCloudConfig (doc: YamlMap, name: string): string {
  const text = '#cloud-config\n' + dump(doc, { lineWidth: -1, noRefs: true })
  parseConfig([{ name, text }])
  return text
}
