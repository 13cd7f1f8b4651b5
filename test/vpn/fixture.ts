import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach } from 'vitest'
import type { VpnConfig } from '../../config/types.ts'
import { createFakeSite, type FakeSite } from '../../sim/cluster-state.ts'
import { randomPeerId } from '../../sim/random-ids.ts'
import { ManualClock } from '../../util/clock.ts'
import type { RandomSource } from '../../util/random.ts'
import { overlayCandidate, type OverlayNetwork } from '../../vpn/address.ts'
import { createVpnController, type VpnController, type VpnControllerInit } from '../../vpn/controller.ts'
import { createFakeWireGuardDriver, type FakeWireGuardDriver } from '../../vpn/fake-driver.ts'

/** The overlay the controller tests run on. */
export const VPN: VpnConfig = { create: true, use: true, cidr: '10.88.7.0/24', interface: 'kairos0', port: 51820, mtu: 1420 }
/** Reconcile rarely on its own: the tests drive the passes. */
export const TIMING = { vpnReconcileMs: 60_000, vpnHandshakeStaleMs: 10_000 }

/** A VPN controller of the fixture's site, with its state dir and fake driver. */
export interface VpnTestNode {
  id: string
  dir: string
  driver: FakeWireGuardDriver
  controller: VpnController
}

export interface VpnNodeOptions {
  /** A state dir to use again (a restart); otherwise a new one the fixture removes. */
  dir?: string
  /** A driver to use again (the interface survives a restart); otherwise a new fake. */
  driver?: FakeWireGuardDriver
  /** Last byte of the host's `eth0` address. @default 10 + the number of state dirs made so far */
  host?: number
  extra?: Partial<VpnControllerInit>
}

/**
 * VPN controllers on an in-memory site (sim/cluster-state.ts) and a manual clock,
 * fresh for every test: registers the hooks that make the site and stop every
 * controller and remove every state dir after each test.
 */
export interface VpnFixture {
  readonly site: FakeSite
  readonly clock: ManualClock
  /** Controllers stopped after the test. */
  readonly controllers: VpnController[]
  /** State dirs removed after the test. */
  readonly dirs: string[]
  /** A controller of node `id`, not started. */
  node: (id: string, opts?: VpnNodeOptions) => Promise<VpnTestNode>
}

export function vpnFixture (): VpnFixture {
  let site: FakeSite | undefined
  let clock: ManualClock | undefined
  const controllers: VpnController[] = []
  const dirs: string[] = []
  const made = <T>(x: T | undefined): T => {
    if (x === undefined) throw new Error('the VPN fixture is used outside a test')
    return x
  }
  beforeEach(() => {
    site = createFakeSite()
    clock = new ManualClock(1_700_000_000_000)
    controllers.length = 0
    dirs.length = 0
  })
  afterEach(async () => {
    for (const c of controllers) await c.stop()
    for (const d of dirs) await rm(d, { recursive: true, force: true })
  })
  const fx: VpnFixture = {
    get site () { return made(site) },
    get clock () { return made(clock) },
    controllers,
    dirs,
    node: async (id, opts = {}) => {
      const dir = opts.dir ?? await mkdtemp(join(tmpdir(), 'kairos-vpn-ctl-'))
      if (opts.dir === undefined) dirs.push(dir)
      const driver = opts.driver ?? createFakeWireGuardDriver()
      const host = opts.host ?? (dirs.length + 10)
      const controller = createVpnController({
        vpn: VPN,
        timing: TIMING,
        state: fx.site.node(id),
        driver,
        stateDir: dir,
        clock: fx.clock,
        // The manual clock stands still: a woken pass runs at once.
        coalesceMs: 0,
        hostAddresses: () => [
          { interface: 'lo', address: '127.0.0.1', family: 'IPv4', prefixLength: 8, internal: true },
          { interface: 'eth0', address: `192.168.1.${host}`, family: 'IPv4', prefixLength: 24, internal: false }
        ],
        ...opts.extra
      })
      controllers.push(controller)
      return { id, dir, driver, controller }
    }
  }
  return fx
}

/** The WireGuard peers a node's fake interface holds: public key → allowed IPs. */
export function peersOf (n: VpnTestNode): Map<string, string[]> {
  return new Map([...(n.driver.interfaces.get(VPN.interface)?.peers.values() ?? [])].map((p) => [p.publicKey, p.allowedIps]))
}

/** The first two peer ids drawn from `rng` whose first overlay candidates collide, earlier first. */
export function collidingPeerIds (net: OverlayNetwork, rng: RandomSource): [string, string] {
  const seen = new Map<string, string>()
  for (;;) {
    const id = randomPeerId(rng)
    const a = overlayCandidate(net, id, 0)
    const prior = seen.get(a)
    if (prior !== undefined) return [prior, id]
    seen.set(a, id)
  }
}
