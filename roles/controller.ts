import { readFile } from 'node:fs/promises'
import { networkInterfaces } from 'node:os'
import type { Config } from '../config/types.ts'
import type { ClusterState, StateEntry } from '../p2p/types.ts'
import type { Clock } from '../util/clock.ts'
import { systemClock } from '../util/clock.ts'
import type { RandomSource } from '../util/random.ts'
import { cryptoRandom } from '../util/random.ts'
import type { Logger } from '../util/log.ts'
import { silentLogger } from '../util/log.ts'
import { KairosError, errorMessage } from '../util/errors.ts'
import { sealKeyProblem, type ClusterSecrets, type CredentialRole, type JoinCredential, type SealKeys, type SealedCredential } from './credentials.ts'
import { buildInstallPlan, clusterCaFile, serverUrlFor, type InstallPlan, type InstallPlanInput } from './install-plan.ts'
import { trackView } from './election.ts'
import { applyDecision, credentialFor, credentialOf, issuersOf, type ApplyPorts, type HeldCredential } from './apply.ts'
import { configWarnings, decide, rolesConfigOf } from './plan.ts'
import { SECRETS_FILE, saveFacts, saveSecrets, type StoredSecrets } from './local-store.ts'
import { checkInitSecrets, loadLocalFiles, secretsFromState } from './local-recovery.ts'
import { CRED_PREFIX, ROLE_KEYS, type HandOffInput, type LocalFacts, type RolesDecision } from './types.ts'

/** The credential functions the controller uses (roles/credentials.ts). */
export interface CredentialsApi {
  /** The k3s server token and the separate agent token, from a CSPRNG in production. */
  generateClusterSecrets: (random: RandomSource) => ClusterSecrets
  /** This node's persisted X25519 sealing key pair. */
  createSealKeys: (stateDir?: string) => Promise<SealKeys>
  /** Seals the credential of one role to one recipient's public key. */
  sealCredential: (role: CredentialRole, secrets: ClusterSecrets, recipientPublicKey: string, random?: RandomSource) => SealedCredential
  /** Opens a credential sealed to this node's keys; throws `SealError` when it cannot. */
  openCredential: (keys: SealKeys, value: unknown) => JoinCredential
  /** The hash k3s pins a CA bundle by; throws when the bundle holds no certificate. */
  caHashOf: (pem: Uint8Array) => string
}

/** The hand-off backend (roles/installer/): idempotent, keeps its own record in the state dir. */
export interface Installer {
  /** Applies `plan` unless it was already applied; rejects on failure (retried later). */
  install: (plan: InstallPlan, signal: AbortSignal) => Promise<{ changed: boolean }>
}

/** What the roles controller needs. */
export interface RolesControllerInit {
  /** The validated configuration (`p2p.role`, `minimum_nodes`, HA, timing, k3s sections). */
  config: Config
  /** The replicated cluster state of this node (entries under `roles/` and `cred/`, members). */
  state: ClusterState
  /** Where the vote, the role and (on the init server) the k3s tokens are kept, mode 0600. */
  stateDir: string
  /** @default systemClock */
  clock?: Clock
  /** Source of the k3s tokens and of sealing randomness. @default cryptoRandom */
  random?: RandomSource
  /** @default silentLogger */
  logger?: Logger
  /** Token generation and sealing (roles/credentials.ts). */
  credentials: CredentialsApi
  /** The hand-off backend for `p2p.installer` (roles/installer/). */
  installer: Installer
  /** This node's overlay address and interface, once the VPN has them. */
  overlay: () => { address?: string | undefined, interface?: string | undefined }
  /** Called with each timeline event at its first occurrence ('discovered' … 'joined'). */
  onMilestone?: (event: string) => void
}

/** One formation milestone. */
export interface RolesTimelineEvent {
  /** 'discovered', 'elected', 'credential', 'installing' or 'joined'. */
  event: string
  /** Wall-clock ms of its first occurrence. */
  at: number
}

/** What `kairos-p2p status` shows of the roles layer: the last decision plus the timeline. */
export type RolesStatus = Pick<RolesDecision, 'phase' | 'awaiting' | 'role' | 'term' | 'leader' | 'clusterId' | 'reason' | 'issuing'> & {
  /** 'discovered', 'elected', 'credential', 'installing', 'joined', each at first occurrence. */
  timeline: RolesTimelineEvent[]
  warnings: string[]
  /** Decision steps run since start. */
  steps: number
}

/**
 * The ticker's period once this node has joined, ms (or `timing.rolesTickMs` when that
 * is longer). From then on its decision changes only with events that wake it at once:
 * entries, members, the hand-off ending, its own entries (the overlay address it reports
 * is read from its VPN advert). An entry it could not publish is retried at the usual
 * ticker. Otherwise the ticker is only a safety net; at the lab preset's
 * 200 ms, steps that found nothing to do were a sixth of an idle agent's CPU.
 */
export const JOINED_TICK_MS = 5_000

/** `clusterCaFile` of the config; undefined on bad `k3s.args`, which the hand-off refuses and logs itself. */
function caFileOf (config: Config): string | undefined {
  try {
    return clusterCaFile(config.p2p.installer, config.k3s)
  } catch {
    return undefined
  }
}

/** The running roles layer of one node. */
export interface RolesController {
  /** Loads the persisted facts and keys, then runs until `stop()`; a second call does nothing. */
  start: () => Promise<void>
  /** Stops promptly (aborting an install in progress); safe to call twice. */
  stop: () => Promise<void>
  /** The phase, role and timeline for `kairos-p2p status`. */
  status: () => RolesStatus
  /** The init server of the cluster record this node accepted (its certificate checked); undefined before. */
  acceptedInit: () => string | undefined
}

/** A hand-off that failed; retried when its plan changes or after the retry delay. */
export class HandOffError extends KairosError {
  constructor (message: string, options: { cause?: unknown } = {}) {
    super(message, options)
    this.name = 'HandOffError'
  }
}

/** Delay before a failed hand-off is tried again with the same plan, ms. @default 30000 */
export const HANDOFF_RETRY_MS = 30_000

/**
 * The roles controller: runs the pure decision (roles/plan.ts) on every state or
 * membership change, on a ticker and at start, and carries out its actions —
 * persisting facts before publishing them, generating and sealing credentials on
 * the init server, and handing off to the installer.
 */
export function createRolesController (init: RolesControllerInit): RolesController {
  const { config, state, stateDir } = init
  const clock = init.clock ?? systemClock
  const random = init.random ?? cryptoRandom
  const logger = init.logger ?? silentLogger
  const rolesConfig = rolesConfigOf(config)
  const tickMs = config.p2p.timing.rolesTickMs

  let facts: LocalFacts | undefined
  let secrets: StoredSecrets | undefined
  let sealKeys: SealKeys | undefined
  let opened: HeldCredential | undefined
  /** Credentials that did not open, by owner and version: each is logged once. */
  const unopened = new Set<string>()
  let tracker: { key: string, since: number } | undefined
  let last: RolesDecision | undefined
  let controller: AbortController | undefined
  let loop: Promise<void> | undefined
  let wake: (() => void) | undefined
  let dirty = true
  let installing: Promise<void> | undefined
  let failed: { planKey: string, at: number } | undefined
  let completed: { clusterId: string, planKey: string } | undefined
  let handOffWait: string | undefined
  let known = 1
  let steps = 0
  /** The init server's k3s CA file (undefined for dry-run), and its hash once read. */
  const caFile = caFileOf(config)
  let caHash: string | undefined
  let caWait: string | undefined
  const timeline = new Map<string, number>()

  const mark = (event: string): void => {
    if (!timeline.has(event)) {
      timeline.set(event, clock.now())
      logger.info(`timeline ${event}`)
      init.onMilestone?.(event)
    }
  }
  const poke = (): void => { dirty = true; wake?.() }
  const onChange = (evt: CustomEvent<{ entry: StateEntry }>): void => {
    const { key, owner } = evt.detail.entry
    if (key.startsWith('roles/') || key.startsWith(CRED_PREFIX) || owner === state.self) poke()
  }
  const onMember = (): void => { poke() }

  const ownAddress = (): string | undefined => {
    const o = init.overlay()
    if (o.address !== undefined) return o.address
    if (config.p2p.vpn.create && config.p2p.vpn.use) return undefined
    for (const list of Object.values(networkInterfaces())) {
      for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address
    }
    return undefined
  }

  const installInput = (h: HandOffInput): InstallPlanInput | string => {
    const o = init.overlay()
    const useOverlay = config.p2p.vpn.create && config.p2p.vpn.use
    if (useOverlay && o.address === undefined) return 'waiting for the overlay address'
    const overlay = useOverlay ? { nodeIp: o.address as string, ...(o.interface === undefined ? {} : { flannelIface: o.interface }) } : {}
    const sections = { k3s: config.k3s, k3sAgent: config.k3sAgent }
    if (h.clusterInit) {
      if (secrets === undefined) return 'waiting for the cluster secrets'
      return { role: 'init', token: secrets.serverToken, agentToken: secrets.agentToken, ...overlay, ...sections }
    }
    if (opened === undefined || h.serverAddress === undefined) return 'waiting for the credential'
    const serverUrl = serverUrlFor(h.serverAddress)
    const pin = h.caHash === undefined ? {} : { caHash: h.caHash }
    if (h.role === 'server') {
      return { role: 'server', serverUrl, token: opened.token, ...(opened.agentToken === undefined ? {} : { agentToken: opened.agentToken }), ...pin, ...overlay, ...sections }
    }
    return { role: 'agent', serverUrl, token: opened.token, ...pin, ...overlay, ...sections }
  }

  const startHandOff = (h: HandOffInput, planKey: string, signal: AbortSignal): void => {
    if (installing !== undefined) return
    if (failed?.planKey === planKey && clock.now() - failed.at < HANDOFF_RETRY_MS) return
    const input = installInput(h)
    handOffWait = typeof input === 'string' ? input : undefined
    if (typeof input === 'string') return
    let plan: InstallPlan
    try {
      plan = buildInstallPlan(input)
    } catch (err) {
      failed = { planKey, at: clock.now() }
      logger.error('install plan refused', { error: errorMessage(err) })
      return
    }
    mark('installing')
    logger.info('handing off', { role: plan.role, service: plan.service })
    installing = (async () => {
      try {
        await init.installer.install(plan, signal)
        // Recorded by the next step, the only writer of the facts file.
        completed = { clusterId: h.clusterId, planKey }
        failed = undefined
        mark('joined')
      } catch (err) {
        if (signal.aborted) return
        failed = { planKey, at: clock.now() }
        logger.error('hand-off failed', { error: errorMessage(err) })
      } finally {
        installing = undefined
        poke()
      }
    })()
  }

  // A refused put (for example the state's per-owner quota) skips that entry only:
  // it is retried on the next step, and the actions after it still run. A failed
  // persist, by contrast, ends the step: nothing unpersisted is ever published.
  const publishErrors = new Map<string, string>()

  const ports = (decision: RolesDecision, signal: AbortSignal): ApplyPorts => ({
    persist: async (next) => {
      await saveFacts(stateDir, next)
      logElection(facts, next)
      // A newly accepted record names the sealer whose credential may now be opened.
      if (facts?.cluster == null && next.cluster !== null) dirty = true
      facts = next
    },
    secrets: () => secrets,
    generateSecrets: async () => {
      const s = init.credentials.generateClusterSecrets(random)
      const next = { serverToken: s.serverToken, agentToken: s.agentToken, clusterId: decision.clusterId ?? '' }
      await saveSecrets(stateDir, next)
      secrets = next
      mark('credential')
    },
    put: async (key, value) => { await state.put(key, value) },
    seal: (kind, held, publicKey) => init.credentials.sealCredential(kind, held, publicKey, random),
    handOff: (h, planKey) => { startHandOff(h, planKey, signal) }
  })

  /** Debug log of each change of our part in the election: what to read when a site elects slowly. */
  const logElection = (before: LocalFacts | undefined, after: LocalFacts): void => {
    const ballot = (b: { n: number, by: string } | null | undefined): string | undefined => b == null ? undefined : `${b.n}/${b.by.slice(-6)}`
    const changes: Record<string, unknown> = {}
    if (ballot(before?.promised) !== ballot(after.promised)) changes.promised = ballot(after.promised)
    if (ballot(before?.accepted?.ballot) !== ballot(after.accepted?.ballot)) changes.accepted = `${ballot(after.accepted?.ballot) ?? ''} ${after.accepted?.candidate.slice(-6) ?? ''}`.trim()
    const p = after.proposal
    const q = before?.proposal
    if (p !== null && (ballot(q?.ballot) !== ballot(p.ballot) || q?.candidate !== p.candidate || q?.committed !== p.committed)) {
      changes.proposal = `${ballot(p.ballot) ?? ''} ${p.candidate?.slice(-6) ?? 'gathering promises'}${p.committed ? ' committed' : ''}`
    }
    if (Object.keys(changes).length > 0) logger.debug('election', { ...changes, members: state.members().length })
  }

  /** `roles/node` entries already reported for an unusable seal key, by owner and version. */
  const unusable = new Set<string>()
  /** Says once per entry why a node's `roles/node` is ignored (the election and the credential plan skip it). */
  const logUnusableSealKeys = (entries: readonly StateEntry[]): void => {
    for (const e of entries) {
      if (e.key !== ROLE_KEYS.node || e.owner === state.self) continue
      const key = (e.value as { sealKey?: unknown } | null)?.sealKey
      const problem = typeof key === 'string' ? sealKeyProblem(key) : undefined
      const id = `${e.owner}\u0000${e.version}`
      if (problem === undefined || unusable.has(id)) continue
      unusable.add(id)
      logger.warn('ignoring a node whose seal key is unusable: it takes no part in the election and gets no credential', { owner: e.owner, problem })
    }
  }

  /** Whether this node is the init server whose k3s hand-off started or completed and whose CA hash is not read yet. */
  const awaitingCa = (): boolean => caFile !== undefined && caHash === undefined &&
    facts?.role?.role === 'init' && (installing !== undefined || facts.joined?.clusterId === facts.role.clusterId)
  /** The hash of the CA file's last read, taken only once a second read finds the same. */
  let caRead: string | undefined

  /**
   * On the init server, once its hand-off started: reads the CA k3s created and
   * serves at /cacerts, and keeps its hash for `roles/ca`. Read until it is there
   * (k3s creates it at its first start, which may follow the hand-off) and the same on
   * two reads a tick apart (a file caught half written is never pinned); once taken it
   * is never read again while the agent runs. Joiners need not wait for k3s to be up:
   * they retry until it answers, and k3s keeps the CA it finds in its data dir.
   */
  const readClusterCa = async (): Promise<void> => {
    if (!awaitingCa()) return
    const file = caFile as string
    let why: string
    try {
      const read = init.credentials.caHashOf(await readFile(file))
      if (read !== caRead) { caRead = read; logger.debug('k3s cluster CA found; pinned once a second read finds the same', { file }); return }
      caHash = read
      logger.info('k3s cluster CA read; joiners pin its hash', { file, caHash })
      caWait = undefined
      return
    } catch (err) {
      why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not created yet' : errorMessage(err)
    }
    if (caWait !== why) logger.info('waiting for the k3s cluster CA; joiners wait for its hash', { file, why })
    caWait = why
  }

  /** Why cluster-secrets.json is not held: set for the one log line of its rebuild. */
  let secretsGone: string | undefined

  /** Takes the cluster secrets back when cluster-secrets.json is lost or was damaged (local-recovery.ts); never makes new ones. */
  const recoverSecrets = async (entries: readonly StateEntry[]): Promise<void> => {
    if (secrets !== undefined) return
    const found = secretsFromState(state.self, sealKeys as SealKeys, entries, opened, facts?.role?.role === 'init', init.credentials.openCredential, (id, err) => {
      if (!unopened.has(id)) logger.warn('cannot open the sealed copy of the cluster secrets', { error: errorMessage(err) })
      unopened.add(id)
    })
    if (found === undefined) return
    await saveSecrets(stateDir, found.next)
    secrets = found.next
    if (secretsGone === undefined) logger.info(`${SECRETS_FILE} written from ${found.from}: this server can issue credentials`)
    else logger.warn(`${SECRETS_FILE} ${secretsGone}; rebuilt from ${found.from}`)
    secretsGone = undefined
  }

  /** Loads the local files, rebuilding the damaged ones the state can (local-recovery.ts). */
  const loadLocal = async (): Promise<void> => {
    const entries = [...state.list('roles/'), ...state.list(CRED_PREFIX)]
    const files = await loadLocalFiles({ stateDir, self: state.self, networkId: config.p2p.networkId, createSealKeys: init.credentials.createSealKeys, logger, now: clock.now() }, entries)
    facts = files.facts
    sealKeys = files.sealKeys
    secrets = files.secrets
    secretsGone = files.secretsGone
    const role = files.facts.role?.role
    if (role !== 'init' && role !== 'server') return
    await recoverSecrets(entries)
    checkInitSecrets({ ...files, secrets, secretsGone }, state.self, stateDir, entries)
  }

  const step = async (signal: AbortSignal): Promise<void> => {
    if (completed !== undefined && facts?.joined?.planKey !== completed.planKey) {
      const next: LocalFacts = { ...(facts as LocalFacts), joined: completed }
      await saveFacts(stateDir, next)
      facts = next
    }
    completed = undefined
    const members = state.members()
    if (members.length > 0) mark('discovered')
    tracker = trackView(tracker, members, clock.now())
    const entries = [...state.list('roles/'), ...state.list(CRED_PREFIX)]
    const keys = sealKeys as SealKeys
    const before = opened
    opened = credentialFor({
      self: state.self,
      sealKey: keys.publicKey,
      entries,
      issuers: issuersOf(facts, entries),
      held: opened,
      open: (box) => init.credentials.openCredential(keys, box),
      onError: (owner, error) => {
        const e = entries.find((x) => x.owner === owner && x.key === `${CRED_PREFIX}${state.self}`)
        const id = `${owner}\u0000${e?.version ?? 0}`
        if (!unopened.has(id)) logger.warn('cannot open credential', { owner, error })
        unopened.add(id)
      }
    })
    if (opened !== undefined && opened !== before) mark('credential')
    logUnusableSealKeys(entries)
    await recoverSecrets(entries)
    await readClusterCa()
    const ids = new Set<string>([state.self, ...members.map((m) => m.peerId)])
    // Removed and long-dead identities are not nodes of the site for the size warning.
    const departed = state.departed?.()
    for (const e of entries) if (e.key === ROLE_KEYS.node && departed?.has(e.owner) !== true) ids.add(e.owner)
    known = ids.size
    const decision = decide({
      self: state.self,
      now: clock.now(),
      networkId: config.p2p.networkId,
      config: rolesConfig,
      members: members.map((m) => ({ peerId: m.peerId, liveness: m.liveness, lastSeen: m.lastSeen })),
      entries,
      local: facts as LocalFacts,
      viewSince: tracker.since,
      discovering: state.discovering?.() ?? [],
      sealKey: keys.publicKey,
      hasSecrets: secrets !== undefined,
      credential: credentialOf(opened),
      address: ownAddress(),
      caHash,
      departed
    })
    if (decision.clusterId !== undefined) mark('elected')
    if (last?.phase !== decision.phase || last.role !== decision.role) {
      logger.info('roles phase', { phase: decision.phase, role: decision.role, leader: decision.leader, term: decision.term, awaiting: decision.awaiting })
    }
    last = decision
    const applied = await applyDecision(decision, ports(decision, signal), { signal })
    for (const key of applied.published) publishErrors.delete(key)
    for (const { key, error } of applied.refused) {
      if (publishErrors.get(key) !== error) logger.warn('cannot publish state entry', { key, error })
      publishErrors.set(key, error)
    }
  }

  const run = async (signal: AbortSignal): Promise<void> => {
    while (!signal.aborted) {
      if (dirty) {
        dirty = false
        try {
          steps++
          await step(signal)
        } catch (err) {
          if (signal.aborted) break
          logger.error('roles step failed', { error: errorMessage(err) })
        }
      }
      const tick = new AbortController()
      const onAbort = (): void => { tick.abort() }
      signal.addEventListener('abort', onAbort, { once: true })
      await new Promise<void>((resolve) => {
        wake = () => { tick.abort() }
        // The ticker, or earlier when the last decision changes with time alone.
        const every = last?.phase === 'joined' && publishErrors.size === 0 && !awaitingCa() ? Math.max(tickMs, JOINED_TICK_MS) : tickMs
        const recheck = last?.recheckAt === undefined ? every : Math.max(1, last.recheckAt - clock.now())
        clock.sleep(Math.min(every, recheck), tick.signal).then(() => { dirty = true }, () => {}).finally(resolve)
        if (dirty) tick.abort()
      })
      wake = undefined
      signal.removeEventListener('abort', onAbort)
    }
  }

  return {
    start: async () => {
      if (controller !== undefined) return
      await loadLocal()
      controller = new AbortController()
      state.addEventListener('change', onChange)
      state.addEventListener('member:join', onMember)
      state.addEventListener('member:leave', onMember)
      dirty = true
      loop = run(controller.signal)
    },
    stop: async () => {
      if (controller === undefined) return
      controller.abort()
      state.removeEventListener('change', onChange)
      state.removeEventListener('member:join', onMember)
      state.removeEventListener('member:leave', onMember)
      await loop
      await installing
      controller = undefined
      loop = undefined
    },
    acceptedInit: () => facts?.cluster?.init,
    status: () => {
      const d = last
      return {
        phase: d?.phase ?? 'discovering',
        ...(d?.awaiting === undefined ? {} : { awaiting: d.awaiting }),
        ...(d?.role === undefined ? {} : { role: d.role }),
        term: d?.term ?? 0,
        ...(d?.leader === undefined ? {} : { leader: d.leader }),
        ...(d?.clusterId === undefined ? {} : { clusterId: d.clusterId }),
        ...(d?.issuing === undefined ? {} : { issuing: d.issuing }),
        ...(d?.phase === 'installing' && handOffWait !== undefined ? { reason: handOffWait } : d?.reason === undefined ? {} : { reason: d.reason }),
        timeline: [...timeline].map(([event, at]) => ({ event, at })).sort((a, b) => a.at - b.at),
        warnings: configWarnings(rolesConfig, known),
        steps
      }
    }
  }
}
