import { hkdfSync } from 'node:crypto'
import type { NetworkToken } from './types.ts'
import { bytesToFive } from './bech32m.ts'

// Every value is HKDF-SHA256 over the token's secret with its own label, so
// learning one derived value (a printed fingerprint, an mDNS tag heard on the LAN,
// a rendezvous key seen in the DHT) tells nothing about the others or the token.
// The salt names the token kind and version: an imported Kairos token and one of
// ours never share keys. Values scoped to a network id carry it after a NUL byte
// in the info, so two clusters that share a token with different
// `p2p.network_id` share discovery but not state, topic or admission.
//
// Changing a label, the salt or an encoding changes every node's keys: the
// vectors in test/token/derive.test.ts pin them.

/** The pnet swarm.key header lines (@libp2p/pnet's v1 PSK format, base16 body). */
const PNET_HEADER = '/key/swarm/psk/1.0.0/\n/base16/\n'

const LABELS = {
  pnet: 'pnet-psk',
  mdns: 'mdns-tag',
  dht: 'dht-protocol',
  rendezvous: 'rendezvous',
  fingerprint: 'fingerprint',
  gossip: 'gossip-topic',
  sync: 'sync-protocol',
  state: 'state-key',
  admission: 'admission-key'
} as const

/** DHT rendezvous keys for an epoch and the one before it (both are honoured). */
export interface RendezvousKeys {
  /** `floor(now / epochMs)`. */
  epoch: number
  /** 32 bytes for `epoch`, e.g. the digest of a sha2-256 multihash / CID. */
  current: Uint8Array
  /** 32 bytes for `epoch - 1`. */
  previous: Uint8Array
}

/** Everything a node derives from the token (and the network id where noted). */
export interface DerivedKeys {
  /** The network id the per-network values are scoped to. @default '' */
  networkId: string
  /** @libp2p/pnet `preSharedKey`: swarm.key text bytes (`/key/swarm/psk/1.0.0/`, `/base16/`, 64 hex). Per token. */
  pnetKey: Uint8Array
  /** mDNS service label, `kp-` and 16 base32 characters (a single DNS label). Per token. */
  mdnsTag: string
  /** `_<mdnsTag>._udp.local`, the DNS-SD service name our mDNS discovery uses. Per token. */
  mdnsServiceName: string
  /** kad-dht `protocol`: `/kairos-p2p/<id>/kad/1.0.0`, never the public IPFS one. Per token. */
  dhtProtocol: string
  /** Gossipsub topic for state deltas: `/kairos-p2p/<id>/state/1.0.0`. Per token and network id. */
  gossipTopic: string
  /** Protocol id prefix for anti-entropy and admission: `/kairos-p2p/<id>`; append `/<name>/<version>`. Per token and network id. */
  syncProtocol: string
  /** 32 bytes, state encryption key. Per token and network id. */
  stateKey: Uint8Array
  /** 32 bytes, MAC key of the admission proof. Per token and network id. */
  admissionKey: Uint8Array
  /** Public and safe to print: `xxxx-xxxx-xxxx-xxxx` (80 bits). Per token. */
  fingerprint: string
  /** Rendezvous keys for the epoch containing `now` (ms since the Unix epoch) and the one before. Per token. */
  rendezvousKey: (now: number, epochMs: number) => RendezvousKeys
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567'

/** RFC 4648 base32, lowercase, no padding. */
export function base32Lower (bytes: Uint8Array): string {
  return bytesToFive(bytes).map((group) => BASE32[group]).join('')
}

/**
 * Derives the network's keys and identifiers from a parsed token. `networkId`
 * (`p2p.network_id`) scopes the gossip topic, sync protocol, state key and
 * admission key; discovery values depend on the token only.
 */
export function deriveKeys (token: NetworkToken, networkId = ''): DerivedKeys {
  const salt = Buffer.from(`kairos-p2p/${token.kind}/v${token.version}`, 'utf8')
  const derive = (label: string, length: number, scope?: string): Uint8Array => {
    const info = scope === undefined ? label : `${label}\0${scope}`
    return new Uint8Array(hkdfSync('sha256', token.secret, salt, Buffer.from(info, 'utf8'), length))
  }
  const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

  const dhtId = base32Lower(derive(LABELS.dht, 10))
  const networkScopedId = (label: string): string => base32Lower(derive(label, 10, networkId))
  const mdnsTag = `kp-${base32Lower(derive(LABELS.mdns, 10))}`
  const fp = base32Lower(derive(LABELS.fingerprint, 10))

  return {
    networkId,
    pnetKey: new Uint8Array(Buffer.from(PNET_HEADER + hex(derive(LABELS.pnet, 32)), 'utf8')),
    mdnsTag,
    mdnsServiceName: `_${mdnsTag}._udp.local`,
    dhtProtocol: `/kairos-p2p/${dhtId}/kad/1.0.0`,
    gossipTopic: `/kairos-p2p/${networkScopedId(LABELS.gossip)}/state/1.0.0`,
    syncProtocol: `/kairos-p2p/${networkScopedId(LABELS.sync)}`,
    stateKey: derive(LABELS.state, 32, networkId),
    admissionKey: derive(LABELS.admission, 32, networkId),
    fingerprint: fp.match(/.{4}/g)?.join('-') ?? fp,
    rendezvousKey: (now, epochMs) => {
      if (!Number.isFinite(now) || now < 0) throw new RangeError(`rendezvousKey: now must be a non-negative number of ms, got ${now}`)
      if (!Number.isSafeInteger(epochMs) || epochMs <= 0) throw new RangeError(`rendezvousKey: epochMs must be a positive integer, got ${epochMs}`)
      const epoch = Math.floor(now / epochMs)
      return {
        epoch,
        current: derive(LABELS.rendezvous, 32, String(epoch)),
        previous: derive(LABELS.rendezvous, 32, String(epoch - 1))
      }
    }
  }
}
