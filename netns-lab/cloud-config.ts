import { dump } from 'js-yaml'
import { parseConfig } from '../config/index.ts'
import { deepMerge, isMap, type YamlMap } from '../config/merge.ts'
import type { HostRecord } from './meta.ts'

/** libp2p TCP port every lab agent listens on (its own namespace, so no clash). */
export const LAB_P2P_PORT = 4001

/** Inputs of one host's cloud-config. */
export interface HostConfigInit {
  host: Pick<HostRecord, 'name' | 'address' | 'stateDir'>
  token: string
  minimumNodes: number
  /** `p2p.bootstrap_peers` (multiaddrs with /p2p/<id>); the host's own entry is left out. */
  bootstrapPeers: readonly string[]
  /** argv of the exec installer (the k3s stand-in). */
  installerCommand: readonly string[]
  /** The user's `--config` document, merged underneath the lab's keys. */
  base?: YamlMap
}

/** The host's own listen multiaddr: the concrete address (0.0.0.0 would advertise 127.0.0.1 over mDNS). */
export function listenAddr (address: string): string {
  return `/ip4/${address}/tcp/${LAB_P2P_PORT}`
}

/**
 * The cloud-config document of one lab host: the user's `--config` first, then the
 * lab's own keys (token, listen address, state dir, installer, preset `lab`, minimum
 * nodes, bootstrap peers), which win.
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
      state_dir: init.host.stateDir,
      installer: { kind: 'exec', command: [...init.installerCommand] },
      ...(peers.length > 0 ? { bootstrap_peers: peers } : {})
    }
  }
  return deepMerge(isMap(init.base) ? init.base : {}, lab)
}

/** The document as a cloud-config file, validated by the same loader the agent uses. */
export function renderCloudConfig (doc: YamlMap, name: string): string {
  const text = '#cloud-config\n' + dump(doc, { lineWidth: -1, noRefs: true })
  parseConfig([{ name, text }])
  return text
}
