import type { Liveness, ClusterState, StateChange, StateEntry } from '../p2p/types.ts'
import type { Timing, VpnConfig } from '../config/types.ts'
import { systemClock, type Clock } from '../util/clock.ts'
import { errorMessage } from '../util/errors.ts'
import { silentLogger, type Logger } from '../util/log.ts'
import { isValidClaim, overlayAddress, parseOverlayCidr, type AddressClaim, type ClaimHolder, type OverlayNetwork } from './address.ts'
import { loadClaim, saveClaim } from './claim-file.ts'
import { isInterfaceName, type InterfaceDump, type InterfaceKind, type InterfaceSpec, type PeerConfig, type PeerDump, type WireGuardDriver } from './driver.ts'
import { hostEndpoints, systemHostAddresses, type HostAddress } from './endpoints.ts'
import { InterfaceNameError } from './errors.ts'
import { DEFAULT_NUDGE_ATTEMPTS, DEFAULT_NUDGE_DELAY_MS, planNudges, type NudgePeer, type NudgeTrack } from './handshake-nudge.ts'
import { loadOrCreateKeyPair, type WireGuardKeyPair } from './keys.ts'
import {
  advertValue, chooseEndpoint, claimKey, DEFAULT_ESTABLISH_MS, MAX_ADVERT_VOUCHES, DEFAULT_KEEPALIVE_SECONDS, desiredPeers, parseAdvert, standings, trackEstablished, VPN_ADVERT_KEY,
  type DesiredPeer, type DuplicateKey, type EstablishedTrack, type IgnoredReason, type LocalAddress, type VpnAdvert
} from './peers.ts'

export interface VpnControllerInit {
  /** `p2p.vpn`. With `create: false` the controller configures and publishes nothing. */
  vpn: VpnConfig
  /** Reconcile ticker and handshake staleness. */
  timing: Pick<Timing, 'vpnReconcileMs' | 'vpnHandshakeStaleMs'>
  /** The replicated state: adverts are read from and published to it. */
  state: ClusterState
  /** The caller's driver; `stop()` leaves it open and the interface up. */
  driver: WireGuardDriver
  /** `p2p.state_dir`: the key (`vpn/wireguard.key`) and the claim (`vpn/claim.json`) live here. */
  stateDir: string
  /** @default systemClock */
  clock?: Clock
  /** @default silentLogger */
  logger?: Logger
  /** The host's addresses, for the advertised endpoints. @default systemHostAddresses */
  hostAddresses?: () => HostAddress[]
  /** WireGuard persistent keepalive, seconds. @default DEFAULT_KEEPALIVE_SECONDS */
  keepaliveSeconds?: number
  /** Age after which `status()` starts a background `wg show`, ms. @default DEFAULT_STATUS_MAX_AGE_MS */
  statusMaxAgeMs?: number
  /**
   * How often the full interface check (link, MTU, address, key, port) runs when
   * nothing changed, ms. In between, a pass reads only `wg show`, which already tells
   * a vanished interface, a dead wireguard-go or another key or port.
   * @default DEFAULT_INTERFACE_CHECK_MS
   */
  interfaceCheckMs?: number
  /** Delay before the first handshake nudge of a newly configured peer, ms. @default DEFAULT_NUDGE_DELAY_MS */
  nudgeDelayMs?: number
  /** Handshake nudges per configured peer at most; 0 turns them off. @default DEFAULT_NUDGE_ATTEMPTS */
  nudgeAttempts?: number
  /**
   * How long a pass woken by a change waits for more changes before it runs, ms: a
   * site that boots together delivers its members and adverts one by one, and each
   * pass reads the interface and often reconfigures it (a `wg` process each, where the
   * driver uses `wg`). @default DEFAULT_COALESCE_MS
   */
  coalesceMs?: number
  /**
   * How long an advert must be held uncontested before this node holds its address
   * and key established against later contenders, ms (first claim wins; see peers.ts).
   * @default DEFAULT_ESTABLISH_MS
   */
  establishMs?: number
}

/** How often the full interface check runs when nothing changed, ms. */
export const DEFAULT_INTERFACE_CHECK_MS = 60_000

/** How old the `wg show` reading behind `status()` may get before it is refreshed, ms. */
export const DEFAULT_STATUS_MAX_AGE_MS = 1_000

/** How long a woken pass waits for more changes, ms. */
export const DEFAULT_COALESCE_MS = 250

/**
 * How long a vouch stays in the advert after its contest ended, ms. A contender that
 * withdraws and claims again would otherwise make every node that knew the holder
 * write its advert twice per round.
 */
export const VOUCH_LINGER_MS = 10 * 60_000

/** The interface was configured for the first time since start. */
export interface OverlayUp {
  interface: string
  /** Overlay address (no prefix). */
  address: string
  publicKey: string
  kind: InterfaceKind
  /** Clock time, ms. */
  at: number
}

/** What one reconcile pass did. */
export interface ReconcileResult {
  /** Peers in the desired set. */
  peers: number
  added: number
  updated: number
  removed: number
  /** Peers nudged to start a handshake. */
  nudged: number
  /** The full interface check ran (start, a change, drift, or `interfaceCheckMs` elapsed). */
  ensured: boolean
  /** The node's own address moved (it lost a conflict). */
  moved: boolean
  /** The advert was (re)published. */
  published: boolean
  /** Clock time at the end of the pass, ms. */
  at: number
  /** Duration of the pass on the controller's clock, ms. */
  durationMs: number
}

export interface VpnPeerStatus {
  peerId: string
  publicKey: string
  /** The endpoint WireGuard uses now. */
  endpoint: string | undefined
  allowedIps: string[]
  /** Latest handshake, ms since the epoch; 0 = never. */
  latestHandshake: number
  rxBytes: number
  txBytes: number
  /** A handshake within `timing.vpnHandshakeStaleMs` and the owner not dead in the member view. */
  up: boolean
  /** The owner's liveness in the member view; `unknown` when not a member. */
  liveness: Liveness | 'unknown'
}

export interface VpnStatus {
  /** Overlay address, once claimed. */
  address: string | undefined
  cidr: string
  interface: string
  publicKey: string | undefined
  kind: InterfaceKind | undefined
  peers: VpnPeerStatus[]
  /** Adverts left out of the peer set and why. */
  ignored: Array<{ peerId: string, reason: IgnoredReason }>
  /** WireGuard keys advertised by several peer ids, and who keeps each. */
  duplicateKeys: DuplicateKey[]
  /** Contested adverts this node vouches for (it held them established first). */
  vouching: string[]
  lastReconcile: ReconcileResult | undefined
  /** The last reconcile failure, cleared by a successful pass. */
  lastError: string | undefined
}

export interface VpnControllerEvents {
  'overlay:up': CustomEvent<OverlayUp>
  'address:moved': CustomEvent<{ from: AddressClaim, to: AddressClaim }>
  reconcile: CustomEvent<ReconcileResult>
  'reconcile:error': CustomEvent<{ error: unknown }>
}

export interface VpnController {
  /**
   * Loads (or creates) the key and the claim, configures the interface, publishes
   * the advert and runs the first reconcile, then keeps reconciling on state and
   * member changes, on the ticker (a single `wg show` while nothing changed) and when
   * a handshake nudge is due. A driver failure does not fail start: it is
   * reported in `status().lastError` and retried.
   * @throws InputError for a bad `vpn` config; VpnStateFileError for an unusable key or claim file.
   */
  start(): Promise<void>
  /** Stops reconciling. Prompt and idempotent; the interface stays up. */
  stop(): Promise<void>
  /** Runs one reconcile pass now (serialized with the loop). */
  reconcile(signal?: AbortSignal): Promise<ReconcileResult>
  /**
   * The status from the latest `wg show` the controller made (synchronous, for status
   * APIs). When that reading is older than `statusMaxAgeMs`, a fresh one is started in
   * the background for the next call; `refresh()` waits for one.
   */
  status(): VpnStatus
  /** Reads `wg show` now and returns the status. */
  refresh(signal?: AbortSignal): Promise<VpnStatus>
  /** Resolves once the interface is configured (at once if it already is); rejects when `signal` aborts. */
  whenUp(signal?: AbortSignal): Promise<OverlayUp>
  addEventListener<K extends keyof VpnControllerEvents>(type: K, listener: (evt: VpnControllerEvents[K]) => void): void
  removeEventListener<K extends keyof VpnControllerEvents>(type: K, listener: (evt: VpnControllerEvents[K]) => void): void
}

interface EndpointTrack {
  rotation: number
  since: number
}

function sameList (a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false
  const sa = [...a].sort()
  const sb = [...b].sort()
  return sa.every((x, i) => x === sb[i])
}

function sameAdvert (a: VpnAdvert, b: VpnAdvert | undefined): boolean {
  return b !== undefined && a.publicKey === b.publicKey && a.port === b.port && a.address === b.address &&
    a.attempt === b.attempt && a.endpoints.length === b.endpoints.length && a.endpoints.every((e, i) => e === b.endpoints[i]) &&
    (a.vouch ?? []).join(' ') === (b.vouch ?? []).join(' ')
}

/** The VPN controller: keys, address claim, advert, and the WireGuard peer set kept in line with the cluster state. */
export function createVpnController (init: VpnControllerInit): VpnController {
  const { vpn, timing, state, driver, stateDir } = init
  const clock = init.clock ?? systemClock
  const log = (init.logger ?? silentLogger).child('vpn')
  const hostAddresses = init.hostAddresses ?? systemHostAddresses
  const keepalive = init.keepaliveSeconds ?? DEFAULT_KEEPALIVE_SECONDS
  const events = new EventTarget()
  const tracks = new Map<string, EndpointTrack>()

  let network: OverlayNetwork | undefined
  let keys: WireGuardKeyPair | undefined
  let claim: AddressClaim | undefined
  let kind: InterfaceKind | undefined
  let up: OverlayUp | undefined
  let desired: DesiredPeer[] = []
  let ignored: VpnStatus['ignored'] = []
  let duplicateKeys: DuplicateKey[] = []
  let vouching: string[] = []
  /** Peer → until when we keep vouching for it (its contest ended before that). */
  const vouchUntil = new Map<string, number>()
  let establishedTrack: EstablishedTrack = new Map()
  /** The own claim is established and the claim file says so. */
  let claimEstablished = false
  const warned = new Set<string>()
  const establishMs = init.establishMs ?? DEFAULT_ESTABLISH_MS
  let lastReconcile: ReconcileResult | undefined
  let lastError: string | undefined
  let needsEnsure = true
  let dirty = false
  let wakeUp: (() => void) | undefined
  let lifetime: AbortController | undefined
  let loopDone: Promise<void> | undefined
  let exclusive: Promise<unknown> = Promise.resolve()
  let lastDump: InterfaceDump | undefined
  let lastDumpAt = -Infinity
  let refreshing: Promise<void> | undefined
  const statusMaxAge = init.statusMaxAgeMs ?? DEFAULT_STATUS_MAX_AGE_MS
  const interfaceCheckMs = init.interfaceCheckMs ?? DEFAULT_INTERFACE_CHECK_MS
  const coalesceMs = init.coalesceMs ?? DEFAULT_COALESCE_MS
  const nudgePolicy = { delayMs: init.nudgeDelayMs ?? DEFAULT_NUDGE_DELAY_MS, attempts: init.nudgeAttempts ?? DEFAULT_NUDGE_ATTEMPTS }
  /** The spec of the last successful full check (public key, not the private one). */
  let ensuredSpec: string | undefined
  let ensuredAt = -Infinity
  let nudges: ReadonlyMap<string, NudgeTrack> = new Map()
  let nextNudgeAt: number | undefined

  const wake = (): void => {
    dirty = true
    wakeUp?.()
  }
  const onChange = (evt: CustomEvent<StateChange>): void => {
    const { entry, origin } = evt.detail
    if (entry.key !== VPN_ADVERT_KEY) return
    if (entry.owner === state.self && origin === 'local') return
    wake()
  }
  const onMember = (): void => { wake() }
  const onProcessExit = (): void => { needsEnsure = true; wake() }

  const localAddresses = (hosts: HostAddress[]): LocalAddress[] =>
    hosts.filter((h) => h.family === 'IPv4' && !h.internal).map((h) => ({ address: h.address, prefixLength: h.prefixLength }))

  const pass = async (signal?: AbortSignal): Promise<ReconcileResult> => {
    if (network === undefined || keys === undefined) throw new Error('vpn controller is not started')
    const started = clock.now()
    const net = network
    const entries = state.list(VPN_ADVERT_KEY).filter((e) => e.key === VPN_ADVERT_KEY)
    const others = entries.filter((e) => e.owner !== state.self)
    const adverts = new Map<string, VpnAdvert>()
    for (const e of others) {
      const a = e.value === null ? undefined : parseAdvert(e.value)
      if (a !== undefined) adverts.set(e.owner, a)
    }
    // First claim wins: which adverts (ours included) were held uncontested long enough here.
    if (claim !== undefined) adverts.set(state.self, { publicKey: keys.publicKey, port: vpn.port, endpoints: [], address: claim.address, attempt: claim.attempt, vouch: vouching })
    const tracked = trackEstablished(establishedTrack, adverts, net, started, establishMs)
    establishedTrack = tracked.track
    const standing = standings(adverts, tracked.established)
    const otherClaims: ClaimHolder[] = []
    for (const [peerId, a] of adverts) if (peerId !== state.self) otherClaims.push({ peerId, address: a.address, attempt: a.attempt, ...standing.get(peerId) })

    // Own claim: kept unless it lost a conflict.
    const next = overlayAddress(net, state.self, claim, otherClaims, standing.get(state.self))
    let moved = false
    if (claim === undefined || next.address !== claim.address || next.attempt !== claim.attempt) {
      await saveClaim(stateDir, { cidr: net.cidr, ...next })
      claimEstablished = false
      if (claim !== undefined) {
        moved = true
        log.warn('overlay address lost a conflict; moving', { from: claim.address, to: next.address, attempt: next.attempt })
        events.dispatchEvent(new CustomEvent('address:moved', { detail: { from: claim, to: next } }))
      }
      claim = next
      needsEnsure = true
    } else if (!claimEstablished && tracked.established.has(state.self)) {
      // Remembered across restarts: a contender that appears while we are down still finds us first.
      await saveClaim(stateDir, { cidr: net.cidr, ...claim, established: true })
      claimEstablished = true
    }

    const hosts = hostAddresses()
    const advert: VpnAdvert = {
      publicKey: keys.publicKey,
      port: vpn.port,
      endpoints: hostEndpoints(hosts, { port: vpn.port, network: net, interface: vpn.interface }),
      address: claim.address,
      attempt: claim.attempt,
      ...(vouching.length === 0 ? {} : { vouch: vouching })
    }
    const selfEntry: StateEntry = { owner: state.self, key: VPN_ADVERT_KEY, version: 0, writtenAt: 0, value: advertValue(advert) }
    const set = desiredPeers([...others, selfEntry], { self: state.self, network: net, keepalive, established: tracked.established })
    // Vouch for the contested adverts we knew first; the advert carries them while the contest lasts.
    const passAt = clock.now()
    for (const p of set.vouchFor) vouchUntil.set(p, passAt + VOUCH_LINGER_MS)
    const stillHeld = new Set(set.claims.map((c) => c.peerId))
    for (const [p, until] of vouchUntil) if (until <= passAt || !tracked.established.has(p) || !stillHeld.has(p)) vouchUntil.delete(p)
    const nextVouching = [...vouchUntil.keys()].sort().slice(0, MAX_ADVERT_VOUCHES)
    if (nextVouching.join(' ') !== vouching.join(' ')) {
      vouching = nextVouching
      if (vouching.length === 0) delete advert.vouch
      else advert.vouch = vouching
    }
    for (const d of set.duplicateKeys) {
      const note = `${d.publicKey} ${d.holders.join(' ')}`
      if (warned.has(note)) continue
      warned.add(note)
      const ours = d.publicKey === keys.publicKey
      log.warn(ours ? 'another node advertises our WireGuard public key; it is not configured as a peer' : 'a WireGuard public key is advertised by several nodes; only one keeps it',
        { holders: d.holders, kept: d.kept })
    }
    for (const i of set.ignored) {
      if (i.reason !== 'lost-claim') continue
      const note = `lost ${i.peerId}`
      if (warned.has(note)) continue
      warned.add(note)
      // A boot race ends this way too (the loser moves), so this is no alarm.
      log.info('an overlay address claim lost a conflict; it is not configured as a peer', { peer: i.peerId })
    }
    if (warned.size > 4096) warned.clear()

    // The full check (several commands) runs only when something changed; otherwise the
    // single `wg show` below is the pass's only look at the interface.
    const spec: InterfaceSpec = { name: vpn.interface, privateKey: keys.privateKey, listenPort: vpn.port, address: `${claim.address}/${net.prefix}`, mtu: vpn.mtu }
    const specKey = [spec.name, keys.publicKey, spec.listenPort, spec.address, spec.mtu].join(' ')
    let ensured = false
    const ensure = async (): Promise<void> => {
      needsEnsure = false // set again by a process exit during the call, or by a failure
      ensured = true
      ensuredSpec = undefined
      const result = await driver.ensureInterface(spec, signal)
      kind = result.kind
      ensuredSpec = specKey
      ensuredAt = clock.now()
      if (result.created && up !== undefined) log.warn('interface was recreated', { interface: vpn.interface, kind: result.kind })
    }
    if (needsEnsure || ensuredSpec !== specKey || clock.now() - ensuredAt >= interfaceCheckMs) await ensure()

    const held = state.get(state.self, VPN_ADVERT_KEY)
    let published = false
    if (!sameAdvert(advert, held?.value == null ? undefined : parseAdvert(held.value))) {
      await state.put(VPN_ADVERT_KEY, advertValue(advert))
      published = true
    }

    if (up === undefined && kind !== undefined) {
      up = { interface: vpn.interface, address: claim.address, publicKey: keys.publicKey, kind, at: clock.now() }
      log.info('overlay up', { ...up })
      events.dispatchEvent(new CustomEvent('overlay:up', { detail: up }))
    }

    // Peers: full recompute, apply the difference, prune what left the state.
    let dump = await driver.show(vpn.interface, signal)
    if (!ensured && (dump === undefined || dump.publicKey !== keys.publicKey || dump.listenPort !== vpn.port)) {
      log.warn('interface drifted; checking it in full', { interface: vpn.interface, present: dump !== undefined })
      await ensure()
      dump = await driver.show(vpn.interface, signal)
    }
    if (dump === undefined) {
      needsEnsure = true
      throw new Error(`interface ${vpn.interface} disappeared during reconcile`)
    }
    const now = clock.now()
    lastDump = dump
    lastDumpAt = now
    const locals = localAddresses(hosts)
    const current = new Map<string, PeerDump>(dump.peers.map((p) => [p.publicKey, p]))
    const changes: PeerConfig[] = []
    const seen: NudgePeer[] = []
    let added = 0
    let updated = 0
    for (const peer of set.peers) {
      const have = current.get(peer.publicKey)
      let track = tracks.get(peer.publicKey)
      if (track === undefined) { track = { rotation: 0, since: now }; tracks.set(peer.publicKey, track) }
      if (have === undefined) {
        const endpoint = chooseEndpoint(peer.endpoints, locals, track.rotation)
        changes.push({ publicKey: peer.publicKey, allowedIps: peer.allowedIps, keepalive: peer.keepalive, ...(endpoint === undefined ? {} : { endpoint }) })
        track.since = now
        added++
        seen.push({ publicKey: peer.publicKey, latestHandshake: 0, configured: true })
        continue
      }
      const handshakeMs = have.latestHandshake * 1000
      const fresh = handshakeMs > 0 && now - handshakeMs <= timing.vpnHandshakeStaleMs
      if (!fresh && peer.endpoints.length > 1 && now - track.since >= timing.vpnHandshakeStaleMs) {
        track.rotation++
        track.since = now
      }
      const want = fresh ? undefined : chooseEndpoint(peer.endpoints, locals, track.rotation)
      const endpointChange = want !== undefined && have.endpoint !== want
      seen.push({ publicKey: peer.publicKey, latestHandshake: have.latestHandshake, configured: endpointChange })
      if (endpointChange || !sameList(have.allowedIps, peer.allowedIps) || have.keepalive !== peer.keepalive) {
        changes.push({ publicKey: peer.publicKey, allowedIps: peer.allowedIps, keepalive: peer.keepalive, ...(endpointChange ? { endpoint: want } : {}) })
        updated++
      }
    }
    const wanted = new Set(set.peers.map((p) => p.publicKey))
    const removals = dump.peers.filter((p) => !wanted.has(p.publicKey)).map((p) => p.publicKey).sort()
    for (const key of [...tracks.keys()]) if (!wanted.has(key)) tracks.delete(key)
    await driver.setPeers(vpn.interface, changes, removals, signal)
    if (changes.length + removals.length > 0) lastDumpAt = -Infinity

    // Peers still without a handshake a while after we configured them: ask for one.
    const plan = planNudges(nudges, seen, now, nudgePolicy)
    nudges = plan.tracks
    nextNudgeAt = plan.nextAt
    if (plan.due.length > 0) {
      const keepaliveOf = new Map(set.peers.map((p) => [p.publicKey, p.keepalive]))
      await driver.nudge(vpn.interface, plan.due.map((publicKey) => ({ publicKey, keepalive: keepaliveOf.get(publicKey) ?? 0 })), signal)
      log.debug('nudged peers without a handshake', { peers: plan.due.length })
    }

    desired = set.peers
    ignored = set.ignored
    duplicateKeys = set.duplicateKeys
    const end = clock.now()
    const result: ReconcileResult = {
      peers: set.peers.length, added, updated, removed: removals.length, nudged: plan.due.length, ensured, moved, published, at: end, durationMs: end - started
    }
    lastReconcile = result
    lastError = undefined
    if (added + updated + removals.length > 0 || moved || published) log.debug('reconciled', { ...result })
    events.dispatchEvent(new CustomEvent('reconcile', { detail: result }))
    return result
  }

  const runExclusive = async <T>(fn: () => Promise<T>): Promise<T> => {
    const run = exclusive.then(fn, fn)
    exclusive = run.catch(() => {})
    return await run
  }

  const reconcile = async (signal?: AbortSignal): Promise<ReconcileResult> => await runExclusive(async () => await pass(signal))

  const attempt = async (signal: AbortSignal): Promise<boolean> => {
    try {
      await reconcile(signal)
      return true
    } catch (err) {
      if (signal.aborted) return false
      lastError = errorMessage(err)
      needsEnsure = true
      log.warn('reconcile failed', { error: lastError })
      events.dispatchEvent(new CustomEvent('reconcile:error', { detail: { error: err } }))
      return false
    }
  }

  /** Waits for a wake-up, the ticker or abort; true when the ticker fired. */
  const waitForWork = async (ms: number, signal: AbortSignal): Promise<boolean> => {
    if (dirty) return false
    const sleeper = new AbortController()
    const onAbort = (): void => { sleeper.abort() }
    signal.addEventListener('abort', onAbort, { once: true })
    try {
      return await new Promise<boolean>((resolve) => {
        wakeUp = () => { resolve(false) }
        clock.sleep(ms, sleeper.signal).then(() => { resolve(true) }, () => { resolve(false) })
      })
    } finally {
      wakeUp = undefined
      sleeper.abort()
      signal.removeEventListener('abort', onAbort)
    }
  }

  const loop = async (signal: AbortSignal, initialBackoff: number): Promise<void> => {
    let backoff = initialBackoff
    while (!signal.aborted) {
      const nudgeIn = nextNudgeAt === undefined ? Infinity : Math.max(0, nextNudgeAt - clock.now())
      const ticked = await waitForWork(backoff > 0 ? backoff : Math.min(timing.vpnReconcileMs, nudgeIn), signal)
      if (signal.aborted) break
      if (!ticked && coalesceMs > 0) await clock.sleep(coalesceMs, signal).catch(() => {})
      if (signal.aborted) break
      dirty = false
      const ok = await attempt(signal)
      backoff = ok ? 0 : Math.min(Math.max(backoff * 2, 100), timing.vpnReconcileMs)
    }
  }

  const whenUp = async (signal?: AbortSignal): Promise<OverlayUp> => {
    if (up !== undefined) return up
    signal?.throwIfAborted()
    return await new Promise<OverlayUp>((resolve, reject) => {
      const onUp = (evt: Event): void => { signal?.removeEventListener('abort', onAbort); resolve((evt as CustomEvent<OverlayUp>).detail) }
      const onAbort = (): void => { events.removeEventListener('overlay:up', onUp); reject(signal?.reason) }
      events.addEventListener('overlay:up', onUp, { once: true })
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  const readDump = async (signal?: AbortSignal): Promise<void> => {
    const at = clock.now()
    lastDump = await driver.show(vpn.interface, signal)
    lastDumpAt = at
  }

  const snapshot = (): VpnStatus => {
    const byKey = new Map<string, PeerDump>((lastDump?.peers ?? []).map((p) => [p.publicKey, p]))
    const liveness = new Map(state.members().map((m) => [m.peerId, m.liveness]))
    const now = clock.now()
    const peers = desired.map((d): VpnPeerStatus => {
      const p = byKey.get(d.publicKey)
      const latestHandshake = (p?.latestHandshake ?? 0) * 1000
      const memberLiveness = liveness.get(d.peerId) ?? 'unknown'
      return {
        peerId: d.peerId,
        publicKey: d.publicKey,
        endpoint: p?.endpoint,
        allowedIps: p?.allowedIps ?? [],
        latestHandshake,
        rxBytes: p?.rxBytes ?? 0,
        txBytes: p?.txBytes ?? 0,
        up: memberLiveness !== 'dead' && latestHandshake > 0 && now - latestHandshake <= timing.vpnHandshakeStaleMs,
        liveness: memberLiveness
      }
    })
    return {
      address: claim?.address,
      cidr: network?.cidr ?? vpn.cidr,
      interface: vpn.interface,
      publicKey: keys?.publicKey,
      kind,
      peers,
      ignored,
      duplicateKeys,
      vouching,
      lastReconcile,
      lastError
    }
  }

  return {
    start: async () => {
      if (lifetime !== undefined || !vpn.create) return
      if (!isInterfaceName(vpn.interface)) {
        throw new InterfaceNameError(`vpn.interface: got '${vpn.interface}', expected 1–15 characters of letters, digits, '_', '.', '-'`)
      }
      network = parseOverlayCidr(vpn.cidr)
      keys = await loadOrCreateKeyPair(stateDir)
      const persisted = await loadClaim(stateDir)
      if (persisted !== undefined && persisted.cidr !== network.cidr) {
        log.warn('vpn.cidr changed; claiming a new overlay address', { was: persisted.cidr, now: network.cidr })
      }
      claim = persisted?.cidr === network.cidr ? { address: persisted.address, attempt: persisted.attempt } : undefined
      claimEstablished = claim !== undefined && persisted?.established === true
      establishedTrack = new Map()
      vouching = []
      vouchUntil.clear()
      const seeded = new Map<string, 'established'>()
      if (claim !== undefined && claimEstablished) seeded.set(claimKey(state.self, { ...claim, publicKey: keys.publicKey }), 'established')
      // What we vouched for before a restart we still hold established (our advert in the state says so).
      const ownBefore = state.get(state.self, VPN_ADVERT_KEY)
      const before = ownBefore?.value == null ? undefined : parseAdvert(ownBefore.value)
      for (const p of before?.vouch ?? []) {
        const e = state.get(p, VPN_ADVERT_KEY)
        const theirs = e?.value == null ? undefined : parseAdvert(e.value)
        if (theirs !== undefined) { seeded.set(claimKey(p, theirs), 'established'); vouching.push(p); vouchUntil.set(p, clock.now() + VOUCH_LINGER_MS) }
      }
      establishedTrack = seeded
      if (claim === undefined) {
        // No claim file (a wiped state dir): the replicated state may still carry our advert.
        const own = state.get(state.self, VPN_ADVERT_KEY)
        const advert = own?.value == null ? undefined : parseAdvert(own.value)
        if (advert !== undefined && isValidClaim(network, state.self, advert)) claim = { address: advert.address, attempt: advert.attempt }
      }
      const life = new AbortController()
      lifetime = life
      up = undefined
      state.addEventListener('change', onChange)
      state.addEventListener('member:join', onMember)
      state.addEventListener('member:leave', onMember)
      driver.addEventListener('process:exit', onProcessExit)
      needsEnsure = true
      const ok = await attempt(life.signal)
      loopDone = loop(life.signal, ok ? 0 : Math.min(100, timing.vpnReconcileMs))
    },
    stop: async () => {
      const life = lifetime
      if (life === undefined) return
      life.abort(new Error('vpn controller stopped'))
      wakeUp?.()
      state.removeEventListener('change', onChange)
      state.removeEventListener('member:join', onMember)
      state.removeEventListener('member:leave', onMember)
      driver.removeEventListener('process:exit', onProcessExit)
      await loopDone
      await exclusive
      await refreshing
      lifetime = undefined
      loopDone = undefined
    },
    reconcile,
    status: () => {
      if (lifetime?.signal.aborted === false && refreshing === undefined && clock.now() - lastDumpAt > statusMaxAge) {
        refreshing = readDump().catch((err: unknown) => { log.debug('wg show failed', { error: errorMessage(err) }) })
          .finally(() => { refreshing = undefined })
      }
      return snapshot()
    },
    refresh: async (signal) => {
      await readDump(signal)
      return snapshot()
    },
    whenUp,
    addEventListener: (type, listener) => { events.addEventListener(type, listener as (evt: Event) => void) },
    removeEventListener: (type, listener) => { events.removeEventListener(type, listener as (evt: Event) => void) }
  }
}
