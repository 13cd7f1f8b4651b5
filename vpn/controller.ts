/**
 * The VPN controller: loads the WireGuard key and the address claim, publishes the
 * advert (with its vouches), and keeps the interface's peer set in line with the
 * cluster state in a reconcile loop. Contract in `controller-contract.ts`, status in
 * `controller-status.ts`.
 */
import type { StateChange, StateEntry } from '../p2p/types.ts'
import { systemClock } from '../util/clock.ts'
import { errorMessage } from '../util/errors.ts'
import { silentLogger } from '../util/log.ts'
import { setAsideCorrupt } from '../util/set-aside.ts'
import { join } from 'node:path'
import { isValidClaim, overlayAddress, parseOverlayCidr, type AddressClaim, type ClaimHolder, type OverlayNetwork } from './address.ts'
import { CLAIM_FILE, loadClaim, saveClaim } from './claim-file.ts'
import { isInterfaceName, type InterfaceDump, type InterfaceKind, type InterfaceSpec, type NudgeTarget, type PeerConfig, type PeerDump } from './driver.ts'
import { hostEndpoints, systemHostAddresses, type HostAddress } from './endpoints.ts'
import { InterfaceNameError, VpnStateFileError } from './errors.ts'
import { DEFAULT_CONFIRM_NUDGES, DEFAULT_NUDGE_ATTEMPTS, DEFAULT_NUDGE_DELAY_MS, DEFAULT_NUDGE_MAX_DELAY_MS, planNudges, type NudgePeer, type NudgeTrack } from './handshake-nudge.ts'
import { PRIVATE_KEY_FILE, loadOrCreateKeyPair, type WireGuardKeyPair } from './keys.ts'
import {
  advertValue, chooseEndpoint, claimKey, DEFAULT_ESTABLISH_MS, MAX_ADVERT_VOUCHES, DEFAULT_KEEPALIVE_SECONDS, desiredPeers, keepaliveFor, parseAdvert, standings, trackEstablished, VPN_ADVERT_KEY,
  type DesiredPeer, type DuplicateKey, type EstablishedTrack, type LocalAddress, type VpnAdvert
} from './peers.ts'
import {
  DEFAULT_COALESCE_MS, DEFAULT_INTERFACE_CHECK_MS, DEFAULT_NO_HANDSHAKE_WARN_MS, DEFAULT_STATUS_MAX_AGE_MS, VOUCH_LINGER_MS,
  type OverlayUp, type ReconcileResult, type VpnController, type VpnControllerInit, type VpnStatus
} from './controller-contract.ts'
import { sessionSettled, trackWaiting, vpnStatus, type WaitTrack } from './controller-status.ts'

export {
  DEFAULT_COALESCE_MS, DEFAULT_INTERFACE_CHECK_MS, DEFAULT_NO_HANDSHAKE_WARN_MS, DEFAULT_STATUS_MAX_AGE_MS, VOUCH_LINGER_MS,
  type OverlayUp, type ReconcileResult, type VpnController, type VpnControllerEvents, type VpnControllerInit, type VpnPeerStatus, type VpnStatus
} from './controller-contract.ts'

interface EndpointTrack extends WaitTrack {
  rotation: number
  since: number
  /** When the peer was first configured (kept across endpoint rotations), clock ms. */
  configuredAt: number
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
  const noHandshakeWarnMs = init.noHandshakeWarnMs ?? DEFAULT_NO_HANDSHAKE_WARN_MS

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
  const nudgePolicy = { delayMs: init.nudgeDelayMs ?? DEFAULT_NUDGE_DELAY_MS, maxDelayMs: init.nudgeMaxDelayMs ?? DEFAULT_NUDGE_MAX_DELAY_MS, attempts: init.nudgeAttempts ?? DEFAULT_NUDGE_ATTEMPTS, confirms: init.nudgeConfirms ?? DEFAULT_CONFIRM_NUDGES }
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
    // Removed and long-dead identities: no peer, no claim (see desiredPeers).
    const departed = new Set(state.departed?.().keys() ?? [])
    const others = entries.filter((e) => e.owner !== state.self && !departed.has(e.owner))
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
    const set = desiredPeers([...others, selfEntry], { self: state.self, network: net, keepalive, established: tracked.established, departed })
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
    /** Each desired peer as configured after this pass, and whether nothing was ever received from it (see `nudge`). */
    const configs = new Map<string, NudgeTarget>()
    let added = 0
    let updated = 0
    for (const peer of set.peers) {
      const have = current.get(peer.publicKey)
      let track = tracks.get(peer.publicKey)
      if (track === undefined) { track = { rotation: 0, since: now, configuredAt: now }; tracks.set(peer.publicKey, track) }
      if (have === undefined) {
        const endpoint = chooseEndpoint(peer.endpoints, locals, track.rotation)
        const config = { publicKey: peer.publicKey, allowedIps: peer.allowedIps, keepalive: peer.keepalive, ...(endpoint === undefined ? {} : { endpoint }) }
        changes.push(config)
        configs.set(peer.publicKey, { ...config, recreate: true })
        track.since = now
        added++
        seen.push({ publicKey: peer.publicKey, latestHandshake: 0, configured: true })
        continue
      }
      const handshakeMs = have.latestHandshake * 1000
      trackWaiting(track, { latestHandshake: handshakeMs, txBytes: have.txBytes, rxBytes: have.rxBytes }, now, timing.vpnHandshakeStaleMs)
      // An idle session is left alone; one that never handshook, or whose sends go unanswered, is repaired.
      const settled = sessionSettled(handshakeMs, track.waitingSince, now, timing.vpnHandshakeStaleMs)
      if (!settled && peer.endpoints.length > 1 && now - track.since >= timing.vpnHandshakeStaleMs) {
        track.rotation++
        track.since = now
      }
      const want = settled ? undefined : chooseEndpoint(peer.endpoints, locals, track.rotation)
      const endpointChange = want !== undefined && have.endpoint !== want
      seen.push({ publicKey: peer.publicKey, latestHandshake: have.latestHandshake, configured: endpointChange })
      const endpoint = endpointChange ? want : have.endpoint
      const keepaliveNow = keepaliveFor(endpoint, peer.endpoints, locals, settled, peer.keepalive)
      configs.set(peer.publicKey, { publicKey: peer.publicKey, allowedIps: peer.allowedIps, keepalive: keepaliveNow, ...(endpoint === undefined ? {} : { endpoint }), recreate: have.rxBytes === 0 && have.latestHandshake === 0 })
      if (endpointChange || !sameList(have.allowedIps, peer.allowedIps) || have.keepalive !== keepaliveNow) {
        changes.push({ publicKey: peer.publicKey, allowedIps: peer.allowedIps, keepalive: keepaliveNow, ...(endpointChange ? { endpoint: want } : {}) })
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
      await driver.nudge(vpn.interface, plan.due.flatMap((publicKey) => configs.get(publicKey) ?? []), signal)
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

  const snapshot = (): VpnStatus => vpnStatus({
    lastDump,
    members: state.members(),
    now: clock.now(),
    handshakeStaleMs: timing.vpnHandshakeStaleMs,
    configuredAt: new Map([...tracks].map(([key, t]) => [key, t.configuredAt])),
    waitingSince: new Map([...tracks].flatMap(([key, t]) => t.waitingSince === undefined ? [] : [[key, t.waitingSince] as const])),
    noHandshakeWarnMs,
    desired,
    claim,
    network,
    configuredCidr: vpn.cidr,
    interfaceName: vpn.interface,
    keys,
    kind,
    ignored,
    duplicateKeys,
    vouching,
    lastReconcile,
    lastError
  })

  return {
    start: async () => {
      if (lifetime !== undefined || !vpn.create) return
      if (!isInterfaceName(vpn.interface)) {
        throw new InterfaceNameError(`vpn.interface: got '${vpn.interface}', expected 1–15 characters of letters, digits, '_', '.', '-'`)
      }
      network = parseOverlayCidr(vpn.cidr)
      // A damaged key or claim is set aside (never deleted) and made again: peers learn
      // the new public key from this node's advert, and the claim comes back from that
      // advert in the state, else a new one is made.
      const damaged = async <T>(file: string, load: () => Promise<T>, rebuilt: string): Promise<T> => {
        try {
          return await load()
        } catch (err) {
          if (!(err instanceof VpnStateFileError) || err.exitCode !== 2) throw err
          const aside = setAsideCorrupt(join(stateDir, file), clock.now())
          log.warn(`${file} is damaged (${errorMessage(err)}): set aside as ${aside}; ${rebuilt}`)
          return await load()
        }
      }
      keys = await damaged(PRIVATE_KEY_FILE, async () => await loadOrCreateKeyPair(stateDir), 'a new WireGuard key is made and published')
      const persisted = await damaged(CLAIM_FILE, async () => await loadClaim(stateDir), 'the overlay address is claimed again, from this node\'s advert in the state when it has one')
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
