import { mkdir } from 'node:fs/promises'
import type { Config } from '../config/types.ts'
import type { Clock } from '../util/clock.ts'
import { systemClock } from '../util/clock.ts'
import type { RandomSource } from '../util/random.ts'
import { cryptoRandom } from '../util/random.ts'
import type { Logger } from '../util/log.ts'
import { silentLogger } from '../util/log.ts'
import { concurrently, createLifecycle, type NamedComponent } from '../util/lifecycle.ts'
import { parseConfiguredToken, deriveKeys } from '../token/index.ts'
import { createP2PNode, type P2PNode } from '../p2p/index.ts'
import { createVpnController, createWireGuardDriver, VPN_ADVERT_KEY, type OverlayUp, type VpnController, type WireGuardDriver } from '../vpn/index.ts'
import { parseAdvert } from '../vpn/peers.ts'
import { createRolesController, type RolesController } from '../roles/controller.ts'
import * as credentials from '../roles/credentials.ts'
import { createInstaller } from '../roles/installer/index.ts'
import { startApiServer, type ApiServer } from './api.ts'
import { Timeline } from './timeline.ts'
import { persistCompileCache } from '../util/compile-cache.ts'
import { renderMetrics } from './metrics.ts'
import type { AgentStatus, SiteMember } from './status.ts'
import { InputError, errorMessage } from '../util/errors.ts'
import { duration, explain, type InstallerFailure } from './reason.ts'
import { startMetricsServer, type MetricsServer } from './metrics-server.ts'
import { HANDOFF_RETRY_MS, type Installer } from '../roles/controller.ts'
import { createRemovals } from './removals.ts'
import { createRotation } from './rotation.ts'
import { chooseToken, loadTokenState, saveTokenState, TOKEN_FILE } from './token-state.ts'
import { shortPeer } from './reason.ts'

export interface AgentInit {
  config: Config
  clock?: Clock
  random?: RandomSource
  logger?: Logger
  /** WireGuard driver; @default the real one (kernel or wireguard-go). */
  vpnDriver?: WireGuardDriver
  /** Serve the local API socket in the state dir. @default true */
  api?: boolean
  /**
   * The agent asks to be stopped and created again (it followed a token rotation, or a
   * rotation's grace ended): the runner (cli/agent.ts) does so. @default logs a warning
   */
  onRestart?: (reason: string) => void
}

export interface Agent {
  readonly peerId: string
  start: () => Promise<void>
  stop: () => Promise<void>
  status: () => AgentStatus
}

/**
 * Composes one node: p2p (discovery, admission, state, membership), then the roles
 * controller (election, credentials, hand-off), the local API and the VPN controller
 * side by side. Stopped in reverse: VPN, API, roles, p2p.
 *
 * Nothing after p2p waits for another: the VPN's first pass (starting wireguard-go,
 * keys, address, peers) takes seconds on a busy box, the election and the credentials
 * run over p2p, and the hand-off is held back until the overlay is up (see `overlay`
 * below), so the interface and the election proceed side by side instead of one after
 * the other.
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
  const configured = parseConfiguredToken(p2pConfig.networkToken)
  await mkdir(p2pConfig.stateDir, { recursive: true, mode: 0o700 })
  // The token a rotation gave this node, when the cloud-config carries an older one (agent/token-state.ts).
  const persisted = loadTokenState(p2pConfig.stateDir, clock.now(), (aside, problem) => {
    logger.warn(`${TOKEN_FILE} is damaged (${problem}): set aside as ${aside}; running with the cloud-config's token, which rejoins the site if it is current or within a rotation's grace`)
  })
  const chosen = chooseToken(configured, persisted, clock.now())
  const token = chosen.token
  if (chosen.source === 'state' && persisted !== undefined && persisted.previous !== undefined && chosen.previous === undefined) {
    const { previous: _, ...rest } = persisted
    saveTokenState(p2pConfig.stateDir, rest)
  }
  const keys = deriveKeys(token, p2pConfig.networkId)
  const timeline = new Timeline(clock)
  const startedAt = clock.now()

  const node: P2PNode = await createP2PNode({ p2p: p2pConfig, token, ...(chosen.previous === undefined ? {} : { previousToken: chosen.previous }), stateDir: p2pConfig.stateDir, clock, logger: logger.child('p2p') })
  // When each member last came or went, as this node saw it: the "since when" of a reason.
  const livenessSince = new Map<string, number>()
  let viewChangedAt = startedAt
  node.state.addEventListener('member:join', (evt) => { timeline.record('discovered'); livenessSince.set(evt.detail.peerId, clock.now()); viewChangedAt = clock.now() })
  node.state.addEventListener('member:leave', (evt) => { livenessSince.set(evt.detail.peerId, clock.now()); viewChangedAt = clock.now() })

  // The installer's failures, for status: the roles controller logs them and tries the
  // same plan again after HANDOFF_RETRY_MS; an operator must see both without the log.
  let installerFailure: InstallerFailure | undefined
  let installerFailures = 0
  const backend = createInstaller(p2pConfig.installer, { stateDir: p2pConfig.stateDir, logger: logger.child('installer') })
  const installer: Installer = {
    install: async (plan, signal) => {
      try {
        const r = await backend.install(plan, signal)
        installerFailure = undefined
        return r
      } catch (err) {
        if (!signal.aborted) {
          const at = clock.now()
          installerFailures++
          installerFailure = { count: (installerFailure?.count ?? 0) + 1, message: installerMessage(err), at, retryAt: at + HANDOFF_RETRY_MS }
        }
        throw err
      }
    }
  }

  let vpn: VpnController | undefined
  let overlayUp: OverlayUp | undefined
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
    vpn.addEventListener('overlay:up', (evt) => { overlayUp = evt.detail; timeline.record('overlay-up') })
  }

  const roles: RolesController = createRolesController({
    config,
    state: node.state,
    stateDir: p2pConfig.stateDir,
    clock,
    random,
    logger: logger.child('roles'),
    credentials,
    installer,
    // Keeps the compile cache for the next boot, which may follow a power cut (see persistCompileCache).
    onMilestone: (event) => { if (event === 'joined' && persistCompileCache()) logger.debug('compile cache written') },
    // Only once the interface carries the address (the installer binds to it). The
    // roles controller asks on every step, so this reads our own advert (the current
    // claim, which moves after an address collision) instead of `vpn.status()`, whose
    // freshness check would run `wg show` every second for as long as the node lives.
    overlay: () => {
      if (overlayUp === undefined || !p2pConfig.vpn.use) return {}
      const own = node.state.get(node.state.self, VPN_ADVERT_KEY)?.value
      const advert = own == null ? undefined : parseAdvert(own)
      return { address: advert?.address ?? overlayUp.address, interface: overlayUp.interface }
    }
  })

  const removals = createRemovals({ node, acceptedInit: () => roles.acceptedInit(), clock, logger: logger.child('removal'), ...(p2pConfig.forgetAfterMs === undefined ? {} : { forgetAfterMs: p2pConfig.forgetAfterMs }) })
  const rotation = createRotation({
    node,
    current: chosen,
    acceptedInit: () => roles.acceptedInit(),
    sealKeys: async () => await credentials.createSealKeys(p2pConfig.stateDir),
    save: (s) => { saveTokenState(p2pConfig.stateDir, s) },
    restart: init.onRestart ?? ((reason) => { logger.warn('the agent should restart to take up its new token; restart it', { reason }) }),
    clock,
    random,
    logger: logger.child('token')
  })

  const status = (): AgentStatus => {
    const p = node.status()
    const r = roles.status()
    timeline.merge(r.timeline)
    const now = clock.now()
    const failure = r.phase === 'installing' ? installerFailure : undefined
    const reason = explain({
      now,
      startedAt,
      phase: r.phase,
      awaiting: r.awaiting,
      role: r.role,
      leader: r.leader,
      clusterId: r.clusterId,
      rolesReason: r.reason,
      issuing: r.issuing,
      minimumNodes: p2pConfig.minimumNodes,
      deadAfterMs: p2pConfig.timing.deadAfterMs,
      peers: p.peers,
      livenessSince,
      viewChangedAt,
      milestones: new Map(timeline.list().map((e) => [e.event, e.at])),
      installer: failure,
      discovery: { mdns: p2pConfig.mdns, dht: !p2pConfig.disableDht, bootstrapPeers: p2pConfig.bootstrapPeers.length }
    })
    const warnings = [...r.warnings]
    const removed = removals.applied()
    const selfRemoval = removed.find((a) => a.peer === node.peerId)
    const tokenProblem = rotation.status().problem
    if (tokenProblem !== undefined) warnings.push(tokenProblem)
    if (selfRemoval !== undefined) warnings.push(`this node was removed from the site by ${selfRemoval.by.map(shortPeer).join(', ')}: its peers refuse it; wipe its state dir to join again as a new node`)
    const overlay = vpn?.status()
    warnings.push(...(overlay?.warnings ?? []))
    if (failure !== undefined) warnings.push(`installer failed ${failure.count === 1 ? 'once' : `${failure.count} times`}, last ${duration(now - failure.at)} ago: ${failure.message}; next try ${failure.retryAt > now ? `in ${duration(failure.retryAt - now)}` : 'at the next step'}`)
    return {
      peerId: node.peerId,
      fingerprint: keys.fingerprint,
      token: rotation.status(),
      networkId: p2pConfig.networkId,
      startedAt,
      now,
      phase: r.phase,
      ...(reason === undefined ? {} : { reason }),
      awaiting: r.awaiting,
      role: r.role,
      leader: r.leader,
      clusterId: r.clusterId,
      warnings,
      installer: { failures: installerFailures, ...(installerFailure === undefined ? {} : { last: { ...installerFailure } }) },
      addresses: p.addresses,
      peers: p.peers,
      state: p.state,
      rejections: p.rejections,
      admissionFailures: p.admissionFailures,
      admissionFailuresByReason: p.admissionFailuresByReason,
      // Every open connection: two to one peer when both dialled at once.
      mesh: { connections: p.peers.reduce((sum, x) => sum + x.connections, 0), dials: p.dials, connectionsSinceStart: p.connections, stalls: p.stalls, refutations: p.refutations, heartbeatMs: p.heartbeatMs, loopErrors: p.loopErrors },
      overlay,
      term: r.term,
      site: siteView(node, p.peers.map((x) => x.id), new Set(p.departed.map((d) => d.id))),
      removed: removed.map((a) => ({ peerId: a.peer, basis: a.basis, by: a.by, at: a.at })),
      forgotten: p.departed.filter((d) => d.reason === 'forgotten').map((d) => ({ peerId: d.id, lastSeen: d.lastSeen })),
      timeline: timeline.list()
    }
  }

  let api: ApiServer | undefined
  let metricsServer: MetricsServer | undefined
  const metricsListen = p2pConfig.metrics?.listen
  // After p2p, the rest starts side by side: each start reads its files and the VPN's
  // also brings the interface up (seconds on a busy box), and none waits for another.
  const components: NamedComponent[] = [
    { name: 'p2p', start: async () => { timeline.record('started'); await node.start() }, stop: async () => { await node.stop() } },
    concurrently('roles, api, vpn', [
      { name: 'roles', start: async () => { await roles.start(); removals.start(); rotation.start() }, stop: async () => { rotation.stop(); removals.stop(); await roles.stop() } },
      ...(init.api === false
        ? []
        : [{
            name: 'api',
            start: async () => {
              api = await startApiServer(p2pConfig.stateDir, {
                status,
                metrics: () => renderMetrics(status()),
                nodes: () => ({ now: clock.now(), nodes: removals.nodes() }),
                remove: async (query, force) => await removals.remove(query, force),
                rotate: { run: async (graceMs) => await rotation.rotate(graceMs), after: rotation.release }
              })
            },
            stop: async () => { await api?.close() }
          }]),
      ...(vpn === undefined ? [] : [{ name: 'vpn', start: async () => { await vpn.start() }, stop: async () => { await vpn.stop() } }]),
      ...(metricsListen === undefined
        ? []
        : [{
            name: 'metrics',
            start: async () => {
              metricsServer = await startMetricsServer(metricsListen, () => renderMetrics(status()))
              logger.info('metrics served', { url: metricsServer.url })
            },
            stop: async () => { await metricsServer?.close() }
          }])
    ])
  ]
  const lifecycle = createLifecycle(components, (name, err) => { logger.warn('stop failed', { component: name, error: String(err) }) })
  return {
    // Read when asked: the identity is loaded by `start()`.
    get peerId () { return node.peerId },
    start: lifecycle.start,
    stop: lifecycle.stop,
    status
  }
}

/** Every node's role, phase and k3s address as it published them (`roles/status`), self first. */
function siteView (node: P2PNode, peers: readonly string[], departed: ReadonlySet<string>): SiteMember[] {
  const published = new Map<string, { role?: string, phase?: string, address?: string }>()
  for (const e of node.state.list('roles/status')) {
    const v = e.value
    if (e.key !== 'roles/status' || v === null || typeof v !== 'object' || Array.isArray(v)) continue
    const text = (k: string): string | undefined => typeof v[k] === 'string' ? v[k] : undefined
    const role = text('role')
    const phase = text('phase')
    const address = text('address')
    published.set(e.owner, { ...(role === undefined ? {} : { role }), ...(phase === undefined ? {} : { phase }), ...(address === undefined ? {} : { address }) })
  }
  const ids = [node.peerId, ...peers.filter((p) => p !== node.peerId)]
  for (const owner of published.keys()) if (!ids.includes(owner) && !departed.has(owner)) ids.push(owner)
  return ids.map((peerId) => ({ peerId, ...published.get(peerId) }))
}

/** The installer's own words: the last line of its stderr when it ran, else the error's message. */
function installerMessage (err: unknown): string {
  const e = err as { name?: unknown, stderrTail?: unknown, commandExitCode?: unknown }
  const last = typeof e.stderrTail === 'string' ? e.stderrTail.trimEnd().split('\n').at(-1) ?? '' : ''
  if (last === '') return errorMessage(err)
  return typeof e.commandExitCode === 'number' ? `${last} (exit code ${e.commandExitCode})` : last
}
