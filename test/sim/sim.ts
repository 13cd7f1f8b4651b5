/**
 * Deterministic simulation of a site: many nodes run the real roles decision
 * (roles/plan.ts → roles/election.ts → credential plan) on an in-memory network of
 * replicated entries and one manual clock, under a seeded fault mix. The same seed
 * always gives the same run, so a failing seed is replayed exactly.
 *
 * The network mirrors the real state: each node holds a replica keyed by
 * (owner, key) where the higher version wins; a put is gossiped to every reachable
 * node (lost, delayed and reordered at random) and anti-entropy exchanges whole
 * replicas with a random reachable peer, so a lost message is repaired. A node's
 * replica and persisted facts survive a crash; its member view does not.
 */
import type { StaticRole, Timing } from '../../config/types.ts'
import type { JsonValue, Liveness, StateEntry } from '../../p2p/types.ts'
import { ManualClock } from '../../util/clock.ts'
import { seededRandom } from '../../util/random.ts'
import { clusterIdFor, compareBallots, indexEntries, justifiedCandidate, preferenceKey, quorumSize, refOf, sameBallot, trackView, voteHash } from '../../roles/election.ts'
import { credentialDigest, credentialEntry, decide, parseCredential } from '../../roles/plan.ts'
import {
  CRED_PREFIX, EMPTY_FACTS, ROLE_KEYS, type LocalFacts, type MemberView, type PromiseRef, type ProposalValue, type RoleName, type RolesConfig, type RolesDecision
} from '../../roles/types.ts'

/** The join timeout of an HA server in the simulation, ms (shorter than a run's settle deadline). */
const SERVER_JOIN_TIMEOUT_SIM_MS = 60_000

/** Which faults a run draws from its seed. */
export type FaultMix = 'none' | 'full' | 'clean-split'

export interface SimOptions {
  seed: number
  /** Fleet size. @default drawn from the seed in [5, 60] */
  nodes?: number
  /** `p2p.minimum_nodes`. @default drawn from the seed, above half the fleet */
  minimumNodes?: number
  /** @default 'full' */
  faults?: FaultMix
  /** Timing preset values. */
  timing: Timing
  /** Simulated time allowed for formation after the last fault, ms. @default 180000 */
  settleDeadlineMs?: number
  /** Spread of boot times, ms. @default drawn from the seed, up to 3 minutes */
  bootSpreadMs?: number
  /**
   * Adds a hostile member (see `hostileStep`) with 0–2 minted identities. Unless
   * `minimumNodes` is given, minimum_nodes is drawn so that the promise rule
   * tolerates every hostile identity (`liarsTolerated`). @default false
   */
  adversary?: boolean
  /** Identities the hostile member mints, overriding the drawn 0–2 (to measure past the tolerated count). */
  sybils?: number
}

export interface SimResult {
  seed: number
  nodes: number
  minimumNodes: number
  faults: FaultMix
  violations: string[]
  /** Distinct nodes that ran cluster-init. */
  inits: string[]
  /** Hostile identities (the member and the ones it minted); empty without an adversary. */
  hostile: string[]
  /** Entries the hostile member wrote or replayed. */
  attacks: number
  /** The hostile member won a real vote (it was the preferred eligible node in the voters' view): the documented limit. */
  hostileElected: boolean
  /** Simulated ms from the last boot to every live node joined (undefined if never). */
  formationMs?: number
  /** Simulated ms from the first boot to the first cluster record. */
  electionMs?: number
  /** Simulated end time, ms. */
  endedAt: number
  /** Decisions run. */
  decisions: number
  description: string
}

interface SimNode {
  id: string
  /** The hostile member: runs `hostileStep`, not the decision. */
  hostile?: boolean
  index: number
  staticRole: StaticRole
  sealKey: string
  address: string
  up: boolean
  booted: boolean
  epoch: number
  replica: Map<string, StateEntry>
  /** Order-independent fingerprint of the replica (sum of key hash × version), to skip equal exchanges. */
  fp: number
  /** The replica as an array, rebuilt only after a change. */
  entries?: StateEntry[]
  /** `cred/<self>` entries by sealer. */
  credsForSelf: Map<string, StateEntry>
  facts: LocalFacts
  secrets?: { serverToken: string, agentToken: string }
  /** Last time each node (by index) was heard from; -1 never. Lost on a crash. */
  heard: Float64Array
  tracker?: { key: string, since: number }
  lastSignature: string
  lastPhase: RolesDecision['phase'] | ''
  recheckAt?: number
  wakePending: boolean
  dirty: boolean
  installing: boolean
  firstRole?: RoleName
  held?: { owner: string, kind: 'server' | 'agent', token: string, agentToken?: string }
}

type SimEvent =
  | { type: 'boot', node: number }
  | { type: 'crash', node: number }
  | { type: 'restart', node: number }
  | { type: 'partition', groups: number[] }
  | { type: 'heal' }
  | { type: 'deliver', to: number, from: number, entry: StateEntry }
  | { type: 'tick', node: number, epoch: number, once?: boolean }
  | { type: 'wake', node: number, epoch: number }
  | { type: 'anti-entropy', node: number, epoch: number }
  | { type: 'installed', node: number, epoch: number, clusterId: string, planKey: string }

interface Queued { at: number, seq: number, ev: SimEvent }

/** A binary heap ordered by (time, insertion). */
class EventQueue {
  private readonly heap: Queued[] = []
  private seq = 0
  get size (): number { return this.heap.length }
  push (at: number, ev: SimEvent): void {
    const h = this.heap
    h.push({ at, seq: this.seq++, ev })
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!less(h[i] as Queued, h[p] as Queued)) break
      ;[h[i], h[p]] = [h[p] as Queued, h[i] as Queued]
      i = p
    }
  }

  pop (): Queued | undefined {
    const h = this.heap
    const top = h[0]
    const last = h.pop()
    if (h.length > 0 && last !== undefined) {
      h[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1; const r = l + 1
        let m = i
        if (l < h.length && less(h[l] as Queued, h[m] as Queued)) m = l
        if (r < h.length && less(h[r] as Queued, h[m] as Queued)) m = r
        if (m === i) break
        ;[h[i], h[m]] = [h[m] as Queued, h[i] as Queued]
        i = m
      }
    }
    return top
  }
}
const less = (a: Queued, b: Queued): boolean => a.at < b.at || (a.at === b.at && a.seq < b.seq)

/** The command that replays one seed. */
export function replayCommand (r: Pick<SimResult, 'seed' | 'nodes' | 'minimumNodes' | 'faults' | 'hostile'>): string {
  return `npm run sim -- --seed ${r.seed} --nodes ${r.nodes} --minimum-nodes ${r.minimumNodes} --faults ${r.faults}${r.hostile.length > 0 ? ` --adversary --sybils ${r.hostile.length - 1}` : ''}`
}

/** Runs one seeded simulation and returns its invariant violations and figures. */
export function runSimulation (opts: SimOptions): SimResult {
  const rng = seededRandom(opts.seed)
  const timing = opts.timing
  const faults = opts.faults ?? 'full'
  // Mostly small sites, some large ones: the cost of a run grows with the square of its size.
  // Draws happen whether or not an option overrides them, so a replay with the
  // values printed for a seed follows the very same random sequence.
  const drawnNodes = 5 + Math.floor(56 * rng.float() ** 3)
  const n = opts.nodes ?? drawnNodes
  const extra = rng.int(Math.max(1, Math.floor(n / 4)))
  // With an adversary: s minted identities (the member is one more), and a quorum
  // large enough that any two share 2·(s+1)+1 voters, so the promise rule tolerates them.
  const drawnSybils = opts.adversary === true ? Math.min(rng.int(3), Math.max(0, Math.floor((n - 4) / 3))) : 0
  const sybilCount = opts.adversary === true ? (opts.sybils ?? drawnSybils) : 0
  const hostileCount = opts.adversary === true ? 1 + sybilCount : 0
  const tolerant = Math.ceil((n + hostileCount + 2 * hostileCount + 1) / 2)
  const minimumNodes = opts.minimumNodes ?? (opts.adversary === true ? Math.min(n, tolerant + rng.int(2)) : Math.min(n, Math.floor(n / 2) + 1 + extra))
  const clock = new ManualClock(1_000_000)
  const t0 = clock.now()
  const queue = new EventQueue()
  const violations: string[] = []
  const inits = new Set<string>()
  const clusterIds = new Set<string>()
  const desc: string[] = []
  let decisions = 0
  let firstRecordAt: number | undefined

  // ---- fleet and configuration drawn from the seed ----
  const autoEnable = faults === 'full' ? rng.float() < 0.9 : true
  const haEnable = faults === 'full' ? rng.float() < 0.4 : false
  const haMasterNodes = haEnable ? rng.int(4) : 0
  const roleOf = (i: number): StaticRole => {
    if (faults !== 'full') return 'auto'
    const x = rng.float()
    if (!autoEnable) return x < 0.25 || i === 0 ? 'master' : x < 0.8 ? 'worker' : 'auto'
    return x < 0.05 ? 'master' : x < 0.2 ? 'worker' : x < 0.25 ? 'none' : 'auto'
  }
  const config: RolesConfig = {
    staticRole: 'auto', autoEnable, minimumNodes, haEnable, haMasterNodes,
    settleMs: timing.electionSettleMs, termTimeoutMs: timing.electionTermTimeoutMs, serverJoinTimeoutMs: SERVER_JOIN_TIMEOUT_SIM_MS, rumourGraceMs: timing.deadAfterMs
  }
  const nodes: SimNode[] = []
  for (let i = 0; i < n; i++) {
    const id = `12D3Koo${opts.seed.toString(36)}x${i.toString(36).padStart(2, '0')}`
    nodes.push({
      id, index: i, staticRole: roleOf(i), sealKey: `seal-${id}`, address: `10.88.${i >> 8}.${(i & 255) + 1}`,
      up: false, booted: false, epoch: 0, replica: new Map(), fp: 0, credsForSelf: new Map(), facts: { ...EMPTY_FACTS }, heard: new Float64Array(0),
      lastSignature: '', lastPhase: '', wakePending: false, dirty: true, installing: false
    })
  }
  // At least one eligible node, or nothing can form (a configuration error, not a fault).
  if (!nodes.some((x) => x.staticRole === 'master' || (x.staticRole === 'auto' && autoEnable))) (nodes[0] as SimNode).staticRole = 'master'
  desc.push(`nodes=${n} minimum=${minimumNodes} auto=${autoEnable} ha=${haEnable ? haMasterNodes : 'off'} roles=${summarizeRoles(nodes)}`)

  // ---- the hostile member and the identities it minted ----
  // Their ids come after every honest eligible node in the preference order: a member
  // that grinds its id ahead of them is elected by a real vote whenever they are down
  // (the documented Sybil limit), which is not what this run measures.
  const lastHonest = nodes.filter((x) => x.staticRole === 'master' || (x.staticRole === 'auto' && autoEnable)).map((x) => preferenceKey(x.id, 'sim')).sort().at(-1) ?? ''
  const mintId = (tag: string): string => {
    for (let k = 0; ; k++) {
      const id = `12D3Koo${opts.seed.toString(36)}${tag}${k.toString(36)}`
      if (preferenceKey(id, 'sim') > lastHonest) return id
    }
  }
  const hostileIds: string[] = []
  let mallory: SimNode | undefined
  if (opts.adversary === true) {
    const id = mintId('mal')
    mallory = {
      id, index: n, hostile: true, staticRole: 'master', sealKey: `seal-${id}`, address: `10.88.255.254`,
      up: false, booted: false, epoch: 0, replica: new Map(), fp: 0, credsForSelf: new Map(), facts: { ...EMPTY_FACTS }, heard: new Float64Array(0),
      lastSignature: '', lastPhase: '', wakePending: false, dirty: true, installing: false
    }
    nodes.push(mallory)
    hostileIds.push(id)
    for (let k = 0; k < sybilCount; k++) hostileIds.push(mintId(`syb${k}x`))
    desc.push(`adversary with ${sybilCount} minted identities`)
  }
  const isHostile = (id: string): boolean => hostileIds.includes(id)
  const hostileElected = new Set<string>()
  /** Whether honest voters' accepts for `candidate`, with every hostile identity's, make a quorum. */
  const electedByHonestVotes = (node: SimNode, candidate: string): boolean => {
    let honestVotes = 0
    for (const x of honest) {
      const v = node.replica.get(storeKey(x.id, ROLE_KEYS.vote))?.value as { accepted?: { candidate?: string } | null } | null | undefined
      if (v?.accepted?.candidate === candidate) honestVotes++
    }
    return honestVotes + hostileIds.length >= quorumSize(minimumNodes, nodes.length + hostileIds.length - 1)
  }
  const honest = nodes.filter((x) => x.hostile !== true)
  let attacks = 0

  // ---- fault plan ----
  const loss = faults === 'full' ? rng.float() * 0.3 : 0
  const maxDelay = faults === 'full' ? 2 + rng.int(800) : 5
  const shortBoot = rng.float() < 0.5
  const drawnSpread = rng.int(shortBoot ? 10_000 : 180_000)
  const bootSpread = opts.bootSpreadMs ?? (faults === 'full' ? drawnSpread : 0)
  let lastFault = t0
  for (const node of nodes) {
    const at = t0 + rng.int(bootSpread + 1)
    queue.push(at, { type: 'boot', node: node.index })
    lastFault = Math.max(lastFault, at)
  }
  desc.push(`loss=${loss.toFixed(2)} delay<=${maxDelay}ms boots over ${bootSpread}ms`)
  let group: number[] = nodes.map(() => 0)
  if (faults === 'clean-split') {
    const groups = nodes.map((_, i) => (i < Math.ceil(n / 2) ? 0 : 1))
    queue.push(t0, { type: 'partition', groups })
    queue.push(t0 + 60_000, { type: 'heal' })
    lastFault = Math.max(lastFault, t0 + 60_000)
    desc.push('clean split in halves for 60s from the start')
  } else if (faults === 'full') {
    const horizon = bootSpread + 20_000
    const partitions = rng.int(4)
    for (let p = 0; p < partitions; p++) {
      const at = t0 + rng.int(horizon)
      const k = 2 + rng.int(2)
      const groups = nodes.map(() => rng.int(k))
      const dur = 500 + rng.int(40_000)
      queue.push(at, { type: 'partition', groups })
      queue.push(at + dur, { type: 'heal' })
      lastFault = Math.max(lastFault, at + dur)
      desc.push(`partition into ${k} at +${at - t0}ms for ${dur}ms`)
    }
    const crashes = rng.int(Math.max(1, Math.floor(n / 3)))
    for (let c = 0; c < crashes; c++) {
      const node = rng.int(n)
      const at = t0 + rng.int(horizon)
      const down = 200 + rng.int(30_000)
      queue.push(at, { type: 'crash', node })
      queue.push(at + down, { type: 'restart', node })
      lastFault = Math.max(lastFault, at + down)
    }
    if (crashes > 0) desc.push(`${crashes} crash/restart`)
    if (rng.float() < 0.3) {
      const at = t0 + rng.int(horizon + 20_000)
      let maxBack = at
      for (const node of nodes) {
        queue.push(at, { type: 'crash', node: node.index })
        const back = at + 1_000 + rng.int(20_000)
        queue.push(back, { type: 'restart', node: node.index })
        maxBack = Math.max(maxBack, back)
      }
      lastFault = Math.max(lastFault, maxBack)
      desc.push(`site power cycle at +${at - t0}ms`)
    }
  }
  const midStepCrash = faults === 'full' ? 0.002 : 0
  const settleDeadline = opts.settleDeadlineMs ?? 180_000
  let deadline = lastFault + settleDeadline

  // ---- helpers ----
  const reachable = (a: SimNode, b: SimNode): boolean => a.up && b.up && group[a.index] === group[b.index]
  const storeKey = (owner: string, key: string): string => `${owner}\u0000${key}`
  const keyHashes = new Map<string, number>()
  const keyHash = (k: string): number => {
    let h = keyHashes.get(k)
    if (h === undefined) {
      h = 0x811c9dc5
      for (let i = 0; i < k.length; i++) h = Math.imul(h ^ k.charCodeAt(i), 0x01000193) >>> 0
      keyHashes.set(k, h)
    }
    return h
  }
  const store = (node: SimNode, k: string, e: StateEntry, old: number): void => {
    node.replica.set(k, e)
    node.entries = undefined
    if (e.key === `${CRED_PREFIX}${node.id}`) node.credsForSelf.set(e.owner, e)
    node.fp = (node.fp + Math.imul(keyHash(k), e.version - old)) >>> 0
  }
  const merge = (node: SimNode, e: StateEntry): boolean => {
    const k = storeKey(e.owner, e.key)
    const cur = node.replica.get(k)
    if (cur !== undefined && cur.version >= e.version) return false
    store(node, k, e, cur?.version ?? 0)
    return true
  }
  const wakeSoon = (node: SimNode): void => {
    node.dirty = true
    if (node.wakePending || !node.up) return
    node.wakePending = true
    queue.push(clock.now() + Math.min(100, timing.rolesTickMs / 2), { type: 'wake', node: node.index, epoch: node.epoch })
  }
  const gossip = (from: SimNode, e: StateEntry): void => {
    for (const to of nodes) {
      if (to === from || !reachable(from, to)) continue
      if (rng.float() < loss) continue
      queue.push(clock.now() + 1 + rng.int(maxDelay), { type: 'deliver', to: to.index, from: from.index, entry: e })
    }
  }
  /** Writes an entry of `owner` (the node itself, or an identity the hostile member minted) and gossips it. */
  const put = (node: SimNode, key: string, value: JsonValue, owner = node.id): void => {
    const k = storeKey(owner, key)
    const cur = node.replica.get(k)
    const e: StateEntry = { owner, key, version: (cur?.version ?? 0) + 1, writtenAt: clock.now(), value }
    store(node, k, e, cur?.version ?? 0)
    if (node.hostile !== true && key === ROLE_KEYS.cluster && value !== null && typeof value === 'object' && !Array.isArray(value)) {
      const cid = String((value as Record<string, unknown>).clusterId)
      clusterIds.add(cid)
      firstRecordAt ??= clock.now()
      if (clusterIds.size > 1) violations.push(`two cluster records at +${clock.now() - t0}ms: ${[...clusterIds].join(', ')}`)
    }
    gossip(node, e)
  }
  const memberView = (node: SimNode): { members: MemberView[], signature: string } => {
    const now = clock.now()
    const members: MemberView[] = []
    let signature = ''
    for (const other of nodes) {
      if (other === node) continue
      if (reachable(node, other)) node.heard[other.index] = now
      const last = node.heard[other.index] ?? -1
      if (last < 0) continue
      const silent = now - last
      const liveness: Liveness = silent >= timing.deadAfterMs ? 'dead' : silent >= timing.suspectAfterMs ? 'suspect' : 'alive'
      signature += liveness === 'alive' ? 'a' : liveness === 'dead' ? 'd' : 's'
      members.push({ peerId: other.id, liveness, lastSeen: last })
    }
    // The hostile member lies about liveness to whoever hears it: its minted
    // identities are alive, and one honest node, a new one every 10 s, is dead for
    // the 2 s its refutation takes to spread.
    if (mallory !== undefined && node !== mallory && reachable(node, mallory)) {
      for (const id of hostileIds.slice(1)) { members.push({ peerId: id, liveness: 'alive', lastSeen: now }); signature += 'a' }
      const window = Math.floor((now - t0) / 10_000)
      const accused = honest[(window * 7 + opts.seed) % honest.length] as SimNode
      if (accused !== node && (now - t0) % 10_000 < 2_000) {
        const m = members.find((x) => x.peerId === accused.id)
        if (m !== undefined && m.liveness !== 'dead') { m.liveness = 'dead'; signature += 'D' }
      }
    }
    return { members, signature }
  }

  // ---- the hostile member's step ----
  // Every step it picks attacks at random: it claims master for every identity it
  // holds, votes with lies (promising everything, reporting made-up accepts or none),
  // forges proposals (marked committed, with invented or hidden promises, steering
  // to a candidate of its choice by the plain rule, nominating itself), forges
  // cluster records (ballot 0, certificates citing votes that do not say so, or its
  // own identities' votes, its identities' statuses for it), and replays old votes
  // of honest nodes.
  const history: StateEntry[] = []
  const hostileStep = (m: SimNode): void => {
    const entries = [...m.replica.values()]
    for (const e of entries) if (e.key === ROLE_KEYS.vote && !isHostile(e.owner) && history.length < 2_000 && !history.includes(e)) history.push(e)
    const view = indexEntries(m.id, 'sim', entries)
    let top = 0
    for (const p of view.proposals) top = Math.max(top, p.ballot.n)
    for (const v of view.votes.values()) top = Math.max(top, v.promised?.n ?? 0)
    const pick = <T>(xs: readonly T[]): T => xs[rng.int(xs.length)] as T
    const honestIds = honest.map((x) => x.id)
    const favourite = pick([...hostileIds, ...honestIds])
    const hostilePut = (owner: string, key: string, value: unknown): void => { attacks++; put(m, key, value as JsonValue, owner) }
    for (const id of hostileIds) {
      if (m.replica.get(storeKey(id, ROLE_KEYS.node)) === undefined) hostilePut(id, ROLE_KEYS.node, { sealKey: `seal-${id}`, role: 'master', eligible: true, k3s: true })
    }
    const highest = view.proposals.reduce<ProposalValue | undefined>((a, p) => (a === undefined || compareBallots(p.ballot, a.ballot) > 0 ? p : a), undefined)
    const attack = rng.int(7)
    if (attack === 0 || attack === 1) {
      // Lying votes: promise the highest ballot seen; report a made-up accept, or none.
      for (const id of hostileIds) {
        const promised = highest?.ballot ?? { n: top, by: m.id }
        const accepted = rng.float() < 0.3 || promised.n === 0 ? null : { ballot: { n: promised.n - 1, by: pick(honestIds) }, candidate: favourite }
        hostilePut(id, ROLE_KEYS.vote, { promised, accepted })
      }
    } else if (attack === 2) {
      // A proposal marked committed, naming a victim, with no or invented promises.
      const invented = rng.float() < 0.5 ? {} : { known: 1, promises: honestIds.slice(0, minimumNodes).map((voter) => ({ voter, version: 1 + rng.int(5), hash: '0'.repeat(32), accepted: null })) }
      hostilePut(m.id, ROLE_KEYS.proposal, { ballot: { n: top + 1, by: m.id }, candidate: pick(honestIds), committed: true, ...invented })
    } else if (attack === 3) {
      // Steering: real promises of its own ballot, its lying report on top, the candidate by the plain rule.
      const own = view.proposals.find((p) => p.ballot.by === m.id)
      if (own === undefined || own.ballot.n < top) {
        hostilePut(m.id, ROLE_KEYS.proposal, { ballot: { n: top + 1, by: m.id }, candidate: null, committed: false })
      } else {
        const promises: PromiseRef[] = []
        for (const [voter, v] of view.votes) if (sameBallot(v.promised, own.ballot)) promises.push({ ...refOf(view.voteEntries.get(voter) as StateEntry), accepted: v.accepted })
        const candidate = rng.float() < 0.5 ? m.id : justifiedCandidate(promises.map((r) => r.accepted), m.id, 0)
        hostilePut(m.id, ROLE_KEYS.proposal, { ballot: own.ballot, candidate, committed: false, known: 1, promises })
      }
    } else if (attack === 4) {
      // A forged record of ballot 0: its identities' votes for it, and real votes cited for it.
      const owner = pick(hostileIds)
      const ballot = { n: 0, by: owner }
      for (const id of hostileIds) hostilePut(id, ROLE_KEYS.vote, { promised: ballot, accepted: { ballot, candidate: owner } })
      const votes = [...view.voteEntries.values()].map(refOf)
      for (const id of hostileIds) votes.push({ voter: id, version: (m.replica.get(storeKey(id, ROLE_KEYS.vote))?.version ?? 1), hash: voteHash({ promised: ballot, accepted: { ballot, candidate: owner } }) })
      const record = { clusterId: clusterIdFor('sim', owner, ballot), init: owner, networkId: 'sim', ballot, certificate: { ballot, candidate: owner, known: 1, votes } }
      hostilePut(owner, ROLE_KEYS.cluster, record)
      // And every identity it holds says it joined that cluster.
      for (const id of hostileIds) hostilePut(id, ROLE_KEYS.status, { role: 'agent', phase: 'joined', clusterId: record.clusterId })
    } else if (attack === 5) {
      // A record copied from an honest init server, under its own name.
      const real = view.records.find((r) => !isHostile(r.init))
      if (real !== undefined) hostilePut(m.id, ROLE_KEYS.cluster, { ...real, init: m.id, clusterId: clusterIdFor('sim', m.id, real.ballot) })
    } else if (history.length > 0) {
      // Replays an old vote of an honest node to everyone it reaches.
      attacks++
      gossip(m, pick(history))
    }
  }
  const openHeld = (node: SimNode): void => {
    const init = node.facts.cluster?.init ?? node.facts.role?.init
    for (const e of node.credsForSelf.values()) {
      if (e.owner !== init) continue
      const c = parseCredential(e.value)
      const box = c?.box as { to?: string, payload?: string } | undefined
      if (c === undefined || c.to !== node.sealKey || box?.to !== node.sealKey || typeof box.payload !== 'string') continue
      const p = JSON.parse(box.payload) as { token: string, agentToken?: string }
      node.held = { owner: e.owner, kind: c.kind, token: p.token, ...(p.agentToken === undefined ? {} : { agentToken: p.agentToken }) }
    }
  }

  const step = (node: SimNode, fromTick: boolean): void => {
    if (!node.up) return
    if (node.hostile === true) { if (fromTick) hostileStep(node); return }
    const { members, signature } = memberView(node)
    const timeSensitive = node.lastPhase === '' || (node.recheckAt !== undefined && clock.now() >= node.recheckAt)
    // Skipping is exact: with no new entry and no liveness change, a decision changes
    // only at its `recheckAt`.
    if (fromTick && !node.dirty && signature === node.lastSignature && !timeSensitive) return
    node.tracker = trackView(node.tracker, members, clock.now())
    node.lastSignature = signature
    node.dirty = false
    openHeld(node)
    decisions++
    const d = decide({
      self: node.id,
      now: clock.now(),
      networkId: 'sim',
      config: { ...config, staticRole: node.staticRole },
      members,
      entries: node.entries ??= [...node.replica.values()],
      local: node.facts,
      viewSince: node.tracker.since,
      sealKey: node.sealKey,
      hasSecrets: node.secrets !== undefined,
      credential: node.held === undefined ? undefined : { owner: node.held.owner, digest: credentialDigest(node.held) },
      address: node.address
    })
    node.lastPhase = d.phase
    node.recheckAt = d.recheckAt
    // Like the controller, wake when the decision changes with time alone.
    if (d.recheckAt !== undefined && d.recheckAt > clock.now()) queue.push(d.recheckAt, { type: 'tick', node: node.index, epoch: node.epoch, once: true })
    let limit = d.actions.length
    if (midStepCrash > 0 && d.actions.length > 1 && rng.float() < midStepCrash) limit = rng.int(d.actions.length)
    for (let i = 0; i < limit; i++) {
      const a = d.actions[i] as RolesDecision['actions'][number]
      if ('persist' in a) {
        const accepted = a.persist.cluster
        if (accepted !== null && node.facts.cluster === null && isHostile(accepted.init) && electedByHonestVotes(node, accepted.init)) {
          // The documented limit: the hostile member was the preferred eligible node in
          // the voters' view (every honest eligible node ahead of it was down) and won a
          // real vote. Counted, not a violation.
          hostileElected.add(accepted.init)
        } else if (accepted !== null && (isHostile(accepted.init) || (accepted.init !== node.id && !inits.has(accepted.init) && !nodes.some((x) => x.id === accepted.init && x.facts.role?.role === 'init')))) {
          violations.push(`${node.id} accepted a foreign cluster record of ${accepted.init} at +${clock.now() - t0}ms`)
        }
        const before = node.facts.role
        const after = a.persist.role
        if (after !== null) {
          if (before === null && after.role === 'init') {
            inits.add(node.id)
            if (inits.size > 1) violations.push(`two cluster-inits at +${clock.now() - t0}ms: ${[...inits].join(', ')}`)
          }
          node.firstRole ??= after.role
          if (after.role !== node.firstRole) violations.push(`${node.id} changed role ${node.firstRole} → ${after.role}`)
        } else if (before !== null) {
          violations.push(`${node.id} forgot its role ${before.role}`)
        }
        // A newly accepted record names the sealer whose credential may now be opened.
        if (node.facts.cluster === null && a.persist.cluster !== null) wakeSoon(node)
        node.facts = a.persist
      } else if ('generateSecrets' in a) {
        node.secrets ??= { serverToken: `server-${node.id}-${rng.int(1e9)}`, agentToken: `agent-${node.id}-${rng.int(1e9)}` }
      } else if ('put' in a) {
        put(node, a.put, a.value)
      } else if ('sealCredential' in a) {
        if (node.secrets === undefined) continue
        if (a.kind === 'server') {
          // The server token goes only where the plan puts it: master_nodes servers with HA on, none without.
          const servers = new Set([a.sealCredential, ...[...node.replica.values()]
            .filter((e) => e.owner === node.id && e.key.startsWith(CRED_PREFIX) && (e.value as { kind?: string } | null)?.kind === 'server')
            .map((e) => e.key.slice(CRED_PREFIX.length))])
          if (!haEnable || servers.size > haMasterNodes) violations.push(`server token sealed to ${a.sealCredential} outside the plan (ha=${haEnable ? haMasterNodes : 'off'}, servers ${servers.size})`)
        }
        if (a.kind === 'server' && node.replica.get(storeKey(node.id, `${CRED_PREFIX}${a.sealCredential}`)) === undefined) {
          // HA servers are admitted one at a time: the init server and every server
          // admitted before must have reported joined.
          const joined = (peer: string): boolean => {
            const v = node.replica.get(storeKey(peer, ROLE_KEYS.status))?.value as { phase?: string } | null | undefined
            return v?.phase === 'joined'
          }
          const pending = [node.id, ...[...node.replica.values()]
            .filter((e) => e.owner === node.id && e.key.startsWith(CRED_PREFIX) && (e.value as { kind?: string } | null)?.kind === 'server')
            .filter((e) => clock.now() - e.writtenAt < SERVER_JOIN_TIMEOUT_SIM_MS)
            .map((e) => e.key.slice(CRED_PREFIX.length))].filter((peer) => !joined(peer))
          if (pending.length > 0) violations.push(`server ${a.sealCredential} admitted while ${pending.join(', ')} had not joined`)
        }
        const payload = a.kind === 'server'
          ? { token: node.secrets.serverToken, agentToken: node.secrets.agentToken }
          : { token: node.secrets.agentToken }
        const e = credentialEntry(a.sealCredential, { kind: a.kind, to: a.publicKey, clusterId: a.clusterId, box: { to: a.publicKey, payload: JSON.stringify(payload) } })
        put(node, e.key, e.value)
      } else if ('handOff' in a) {
        if (node.installing) continue
        const h = a.handOff
        if (!h.clusterInit) {
          if (node.held === undefined) { violations.push(`${node.id} handed off without a credential`); continue }
          if ((h.role === 'server') !== (node.held.kind === 'server')) violations.push(`${node.id} hands off as ${h.role} with a ${node.held.kind} credential`)
        }
        node.installing = true
        queue.push(clock.now() + 20 + rng.int(2_000), { type: 'installed', node: node.index, epoch: node.epoch, clusterId: h.clusterId, planKey: a.planKey })
      }
    }
    if (limit < d.actions.length) {
      crash(node)
      const back = clock.now() + 200 + rng.int(5_000)
      queue.push(back, { type: 'restart', node: node.index })
      lastFault = Math.max(lastFault, back)
      deadline = Math.max(deadline, back + settleDeadline)
    }
  }

  const crash = (node: SimNode): void => {
    if (!node.up) return
    node.up = false
    node.epoch++
    node.heard = new Float64Array(nodes.length).fill(-1)
    node.tracker = undefined
    node.installing = false
    node.held = undefined
    node.wakePending = false
    node.lastPhase = ''
  }
  const boot = (node: SimNode): void => {
    if (node.up) return
    node.up = true
    node.booted = true
    if (node.heard.length === 0) node.heard = new Float64Array(nodes.length).fill(-1)
    node.epoch++
    node.dirty = true
    node.lastPhase = ''
    const e = node.epoch
    queue.push(clock.now() + rng.int(timing.rolesTickMs), { type: 'tick', node: node.index, epoch: e })
    queue.push(clock.now() + rng.int(timing.antiEntropyIntervalMs), { type: 'anti-entropy', node: node.index, epoch: e })
    for (const other of nodes) if (other !== node && reachable(node, other)) wakeSoon(other)
    wakeSoon(node)
  }

  // ---- main loop ----
  let formationAt: number | undefined
  const lastBoot = (): number => lastFault
  const allJoined = (): boolean => honest.every((x) => !x.up ? false : x.facts.role !== null && (x.facts.role.role === 'none' || x.facts.joined !== null))
  for (;;) {
    const q = queue.pop()
    if (q === undefined || q.at > deadline) break
    if (q.at > clock.now()) clock.set(q.at)
    const ev = q.ev
    switch (ev.type) {
      case 'boot': boot(nodes[ev.node] as SimNode); break
      case 'restart': boot(nodes[ev.node] as SimNode); break
      case 'crash': crash(nodes[ev.node] as SimNode); break
      case 'partition': group = ev.groups; for (const x of nodes) wakeSoon(x); break
      case 'heal': group = nodes.map(() => 0); for (const x of nodes) wakeSoon(x); break
      case 'deliver': {
        const to = nodes[ev.to] as SimNode
        const from = nodes[ev.from] as SimNode
        if (!to.up || group[to.index] !== group[from.index]) break
        if (merge(to, ev.entry)) wakeSoon(to)
        break
      }
      case 'tick': {
        const node = nodes[ev.node] as SimNode
        if (node.epoch !== ev.epoch || !node.up) break
        step(node, true)
        if (node.epoch === ev.epoch && ev.once !== true) queue.push(clock.now() + timing.rolesTickMs, ev)
        break
      }
      case 'wake': {
        const node = nodes[ev.node] as SimNode
        if (node.epoch !== ev.epoch) break
        node.wakePending = false
        step(node, false)
        break
      }
      case 'anti-entropy': {
        const node = nodes[ev.node] as SimNode
        if (node.epoch !== ev.epoch || !node.up) break
        const peers = nodes.filter((x) => x !== node && reachable(node, x))
        const peer = peers.length === 0 ? undefined : peers[rng.int(peers.length)]
        if (peer !== undefined && rng.float() >= loss && (peer.fp !== node.fp || peer.replica.size !== node.replica.size)) {
          let a = false; let b = false
          for (const e of peer.replica.values()) a = merge(node, e) || a
          for (const e of node.replica.values()) b = merge(peer, e) || b
          if (a) wakeSoon(node)
          if (b) wakeSoon(peer)
        }
        queue.push(clock.now() + timing.antiEntropyIntervalMs, ev)
        break
      }
      case 'installed': {
        const node = nodes[ev.node] as SimNode
        if (node.epoch !== ev.epoch || !node.up) break
        node.installing = false
        node.facts = { ...node.facts, joined: { clusterId: ev.clusterId, planKey: ev.planKey } }
        wakeSoon(node)
        break
      }
    }
    if (violations.length > 0) break
    if (clock.now() >= lastBoot() && allJoined()) {
      formationAt = clock.now()
      break
    }
  }

  // ---- liveness: every live node has a role and the credential for it ----
  // (not when the hostile member won a real vote: the site then waits on it, the documented limit)
  if (violations.length === 0 && hostileElected.size === 0) {
    const cred = (x: SimNode): string | undefined => {
      const init = x.facts.role?.init
      const e = init === undefined ? undefined : x.replica.get(storeKey(init, `${CRED_PREFIX}${x.id}`))
      return parseCredential(e?.value)?.kind
    }
    for (const x of honest) {
      if (!x.up) continue
      const role = x.facts.role
      if (role === null) { violations.push(`${x.id} (${x.staticRole}) has no role at the deadline`); continue }
      if (role.role === 'none') continue
      if (x.facts.joined === null) violations.push(`${x.id} (${role.role}) never completed its hand-off`)
      if (role.role === 'server' && cred(x) !== 'server') violations.push(`${x.id} is a server without the server credential`)
      if (role.role === 'agent' && cred(x) !== 'agent') violations.push(`${x.id} is an agent without the agent credential`)
      if (role.role === 'agent' && x.held !== undefined && x.held.token.startsWith('server-')) violations.push(`${x.id} is an agent holding the server token`)
    }
    const servers = honest.filter((x) => x.facts.role?.role === 'server')
    const planned = haEnable ? haMasterNodes : 0
    if (servers.length > planned) violations.push(`${servers.length} extra servers, expected at most ${planned}`)
  }

  const firstBoot = t0
  return {
    seed: opts.seed,
    nodes: n,
    minimumNodes,
    faults,
    violations,
    inits: [...inits],
    hostile: hostileIds,
    attacks,
    hostileElected: hostileElected.size > 0,
    ...(formationAt === undefined ? {} : { formationMs: formationAt - lastBoot() }),
    ...(firstRecordAt === undefined ? {} : { electionMs: firstRecordAt - firstBoot }),
    endedAt: clock.now() - t0,
    decisions,
    description: desc.join('; ')
  }
}

function summarizeRoles (nodes: readonly SimNode[]): string {
  const c: Record<string, number> = {}
  for (const x of nodes) c[x.staticRole] = (c[x.staticRole] ?? 0) + 1
  return Object.entries(c).map(([k, v]) => `${k}:${v}`).join(',')
}
