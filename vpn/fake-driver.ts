import { isInterfaceName, type EnsureResult, type InterfaceDump, type InterfaceSpec, type PeerConfig, type PeerDump, type ProcessExit, type WireGuardDriver } from './driver.ts'
import { InterfaceNameError } from './errors.ts'
import { publicKeyOf } from './keys.ts'

/** One recorded driver call (no key material: `ensureInterface` records the public key). */
export type FakeDriverCall =
  | { op: 'ensureInterface', name: string, publicKey: string, listenPort: number, address: string, mtu: number }
  | { op: 'setPeers', name: string, peers: PeerConfig[], remove: string[] }
  | { op: 'nudge', name: string, peers: string[] }
  | { op: 'remove', name: string }

export interface FakeInterface {
  spec: Omit<InterfaceSpec, 'privateKey'> & { publicKey: string }
  peers: Map<string, PeerDump>
}

/** An in-memory `WireGuardDriver` with hooks to play the kernel's part. */
export interface FakeWireGuardDriver extends WireGuardDriver {
  /** Every call, in order. */
  readonly calls: FakeDriverCall[]
  /** The interfaces that exist. */
  readonly interfaces: Map<string, FakeInterface>
  /** Records a handshake (unix seconds) and traffic for a peer. */
  handshake(name: string, publicKey: string, unixSeconds: number, bytes?: { rx: number, tx: number }): void
  /** Makes the interface vanish as if its wireguard-go died, and emits `process:exit`. */
  crash(name: string): void
  /** Makes the next call of `op` throw `error`. */
  failNext(op: FakeDriverCall['op'], error: Error): void
}

/** An in-memory driver for unit tests and benchmarks. */
export function createFakeWireGuardDriver (): FakeWireGuardDriver {
  const events = new EventTarget()
  const calls: FakeDriverCall[] = []
  const interfaces = new Map<string, FakeInterface>()
  const failures = new Map<FakeDriverCall['op'], Error>()
  const maybeFail = (op: FakeDriverCall['op']): void => {
    const err = failures.get(op)
    if (err !== undefined) { failures.delete(op); throw err }
  }
  const checkName = (name: string): void => {
    if (!isInterfaceName(name)) throw new InterfaceNameError(`vpn.interface: got '${name}', expected 1–15 characters`)
  }
  return {
    calls,
    interfaces,
    ensureInterface: async (spec, signal): Promise<EnsureResult> => {
      signal?.throwIfAborted()
      checkName(spec.name)
      const publicKey = publicKeyOf(spec.privateKey)
      calls.push({ op: 'ensureInterface', name: spec.name, publicKey, listenPort: spec.listenPort, address: spec.address, mtu: spec.mtu })
      maybeFail('ensureInterface')
      const want = { name: spec.name, publicKey, listenPort: spec.listenPort, address: spec.address, mtu: spec.mtu }
      const current = interfaces.get(spec.name)
      if (current === undefined) {
        interfaces.set(spec.name, { spec: want, peers: new Map() })
        return { kind: 'wireguard-go', created: true, changed: true }
      }
      const changed = JSON.stringify(current.spec) !== JSON.stringify(want)
      current.spec = want
      return { kind: 'wireguard-go', created: false, changed }
    },
    setPeers: async (name, peers, remove, signal) => {
      signal?.throwIfAborted()
      calls.push({ op: 'setPeers', name, peers: peers.map((p) => ({ ...p, allowedIps: [...p.allowedIps] })), remove: [...remove] })
      maybeFail('setPeers')
      const iface = interfaces.get(name)
      if (iface === undefined) throw new Error(`fake wg: no interface ${name}`)
      for (const key of remove) iface.peers.delete(key)
      for (const p of peers) {
        const old = iface.peers.get(p.publicKey)
        const endpoint = p.endpoint ?? old?.endpoint
        iface.peers.set(p.publicKey, {
          publicKey: p.publicKey,
          ...(endpoint === undefined ? {} : { endpoint }),
          allowedIps: [...p.allowedIps],
          latestHandshake: old?.latestHandshake ?? 0,
          rxBytes: old?.rxBytes ?? 0,
          txBytes: old?.txBytes ?? 0,
          keepalive: p.keepalive
        })
      }
    },
    nudge: async (name, peers, signal) => {
      signal?.throwIfAborted()
      calls.push({ op: 'nudge', name, peers: peers.map((p) => p.publicKey) })
      maybeFail('nudge')
      if (!interfaces.has(name)) throw new Error(`fake wg: no interface ${name}`)
    },
    show: async (name, signal): Promise<InterfaceDump | undefined> => {
      signal?.throwIfAborted()
      const iface = interfaces.get(name)
      if (iface === undefined) return undefined
      return {
        publicKey: iface.spec.publicKey,
        listenPort: iface.spec.listenPort,
        peers: [...iface.peers.values()].map((p) => ({ ...p, allowedIps: [...p.allowedIps] }))
      }
    },
    remove: async (name, signal) => {
      signal?.throwIfAborted()
      calls.push({ op: 'remove', name })
      maybeFail('remove')
      return interfaces.delete(name)
    },
    close: async () => {},
    handshake: (name, publicKey, unixSeconds, bytes) => {
      const peer = interfaces.get(name)?.peers.get(publicKey)
      if (peer === undefined) throw new Error(`fake wg: no peer ${publicKey} on ${name}`)
      peer.latestHandshake = unixSeconds
      if (bytes !== undefined) { peer.rxBytes = bytes.rx; peer.txBytes = bytes.tx }
    },
    crash: (name) => {
      interfaces.delete(name)
      const detail: ProcessExit = { interface: name, pid: 0, code: 2, signal: undefined }
      events.dispatchEvent(new CustomEvent('process:exit', { detail }))
    },
    failNext: (op, error) => { failures.set(op, error) },
    addEventListener: (type, listener) => { events.addEventListener(type, listener as (evt: Event) => void) },
    removeEventListener: (type, listener) => { events.removeEventListener(type, listener as (evt: Event) => void) }
  }
}
