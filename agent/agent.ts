import { mkdir } from 'node:fs/promises'
import type { Config } from '../config/types.ts'
import type { Clock } from '../util/clock.ts'
import { systemClock } from '../util/clock.ts'
import type { RandomSource } from '../util/random.ts'
import { cryptoRandom } from '../util/random.ts'
import type { Logger } from '../util/log.ts'
import { silentLogger } from '../util/log.ts'
import { createLifecycle, type NamedComponent } from '../util/lifecycle.ts'
import { parseConfiguredToken, deriveKeys } from '../token/index.ts'
import { createP2PNode, type P2PNode } from '../p2p/index.ts'
import { createVpnController, createWireGuardDriver, type VpnController, type WireGuardDriver } from '../vpn/index.ts'
import { createRolesController, type RolesController } from '../roles/controller.ts'
import * as credentials from '../roles/credentials.ts'
import { createInstaller } from '../roles/installer/index.ts'
import { startApiServer, type ApiServer } from './api.ts'
import { Timeline } from './timeline.ts'
import { renderMetrics } from './metrics.ts'
import type { AgentStatus } from './status.ts'
import { InputError } from '../util/errors.ts'

export interface AgentInit {
  config: Config
  clock?: Clock
  random?: RandomSource
  logger?: Logger
  /** WireGuard driver; @default the real one (kernel or wireguard-go). */
  vpnDriver?: WireGuardDriver
  /** Serve the local API socket in the state dir. @default true */
  api?: boolean
}

export interface Agent {
  readonly peerId: string
  start: () => Promise<void>
  stop: () => Promise<void>
  status: () => AgentStatus
}

/**
 * Composes one node: p2p (discovery, admission, state, membership) → VPN
 * controller → roles controller (election, credentials, hand-off) → local API.
 * Started in that order and stopped in reverse.
 */
export async function createAgent (init: AgentInit): Promise<Agent> {
  const { config } = init
  const clock = init.clock ?? systemClock
  const random = init.random ?? cryptoRandom
  const logger = init.logger ?? silentLogger
  const p2pConfig = config.p2p
  if (p2pConfig.networkToken === '') {
    throw new InputError('p2p.network_token: missing; expected the network token every box of the site shares (kairos-p2p token generate)')
  }
  const token = parseConfiguredToken(p2pConfig.networkToken)
  const keys = deriveKeys(token, p2pConfig.networkId)
  await mkdir(p2pConfig.stateDir, { recursive: true, mode: 0o700 })
  const timeline = new Timeline(clock)
  const startedAt = clock.now()

  const node: P2PNode = await createP2PNode({ p2p: p2pConfig, token, stateDir: p2pConfig.stateDir, clock, logger: logger.child('p2p') })
  node.state.addEventListener('member:join', () => { timeline.record('discovered') })

  let vpn: VpnController | undefined
  if (p2pConfig.vpn.create) {
    vpn = createVpnController({
      vpn: p2pConfig.vpn,
      timing: p2pConfig.timing,
      state: node.state,
      driver: init.vpnDriver ?? createWireGuardDriver({ logger: logger.child('wg') }),
      stateDir: p2pConfig.stateDir,
      clock,
      logger: logger.child('vpn')
    })
    vpn.addEventListener('overlay:up', () => { timeline.record('overlay-up') })
  }

  const roles: RolesController = createRolesController({
    config,
    state: node.state,
    stateDir: p2pConfig.stateDir,
    clock,
    random,
    logger: logger.child('roles'),
    credentials,
    installer: createInstaller(p2pConfig.installer, { stateDir: p2pConfig.stateDir, logger: logger.child('installer') }),
    overlay: () => {
      if (vpn === undefined || !p2pConfig.vpn.use) return {}
      const s = vpn.status()
      return { address: s.address, interface: s.interface }
    }
  })

  const status = (): AgentStatus => {
    const p = node.status()
    const r = roles.status()
    timeline.merge(r.timeline)
    return {
      peerId: node.peerId,
      fingerprint: keys.fingerprint,
      networkId: p2pConfig.networkId,
      startedAt,
      now: clock.now(),
      phase: r.phase,
      awaiting: r.awaiting,
      role: r.role,
      leader: r.leader,
      clusterId: r.clusterId,
      warnings: r.warnings,
      addresses: p.addresses,
      peers: p.peers,
      state: p.state,
      rejections: p.rejections,
      admissionFailures: p.admissionFailures,
      overlay: vpn?.status(),
      timeline: timeline.list()
    }
  }

  let api: ApiServer | undefined
  const components: NamedComponent[] = [
    { name: 'p2p', start: async () => { timeline.record('started'); await node.start() }, stop: async () => { await node.stop() } },
    ...(vpn === undefined ? [] : [{ name: 'vpn', start: async () => { await vpn.start() }, stop: async () => { await vpn.stop() } }]),
    { name: 'roles', start: async () => { await roles.start() }, stop: async () => { await roles.stop() } },
    ...(init.api === false
      ? []
      : [{
          name: 'api',
          start: async () => { api = await startApiServer(p2pConfig.stateDir, { status, metrics: () => renderMetrics(status()) }) },
          stop: async () => { await api?.close() }
        }])
  ]
  const lifecycle = createLifecycle(components, (name, err) => { logger.warn('stop failed', { component: name, error: String(err) }) })
  return { peerId: node.peerId, start: lifecycle.start, stop: lifecycle.stop, status }
}
