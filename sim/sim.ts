/**
 * Deterministic simulation of a site: many nodes run the production roles layer on
 * a simulated network (sim/network.ts) and one manual clock, under a seeded fault
 * mix. The same seed always gives the same run, so a failing seed is replayed exactly.
 *
 * Production code in every node: the decision (roles/plan.ts → roles/election.ts →
 * credential plan), the applier and `credentialFor` (roles/apply.ts), sealing
 * (roles/credentials.ts), the state merge (p2p/state/merge.ts, in sim/replica.ts) and
 * the SWIM membership table with its heartbeat ring (p2p/membership.ts,
 * p2p/heartbeat.ts, in sim/network.ts). The invariants are checked by watching the
 * applier's ports. A crash keeps the persisted facts and secrets and the state file
 * (the replica as of its last flush); the membership table and connections are lost.
 *
 * With `adversary`, one more member runs modified code (sim/adversary.ts): it forges
 * proposals and records, claims master, lies in its votes, replays old ones, lies
 * about others' liveness and mints identities. It is a member of the production
 * membership like any node; only its roles layer is replaced.
 */
import type { StaticRole, Timing } from '../config/types.ts'
import type { JsonValue, StateEntry } from '../p2p/types.ts'
import { ManualClock } from '../util/clock.ts'
import { seededRandom } from '../util/random.ts'
import { applyDecisionNow, credentialFor, credentialOf, issuersOf } from '../roles/apply.ts'
import { generateClusterSecrets, memorySealKeys, openCredential, sealCredential, type ClusterSecrets } from '../roles/credentials.ts'
import { trackView } from '../roles/election.ts'
import { decide } from '../roles/plan.ts'
import { parseCredential } from '../roles/credential-plan.ts'
import { CRED_PREFIX, ROLE_KEYS, type RolesConfig } from '../roles/types.ts'
import { createAdversary } from './adversary.ts'
import { planFaults, type FaultEvent, type FaultMix } from './faults.ts'
import { createSimNetwork, type NetEvent } from './network.ts'
import { simNode, type SimNode } from './node.ts'
import { EventQueue } from './queue.ts'

/** The join timeout of an HA server in the simulation, ms (shorter than a run's settle deadline). */
const SERVER_JOIN_TIMEOUT_SIM_MS = 60_000

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
   * Adds a hostile member (sim/adversary.ts) with 0–2 minted identities. Unless
   * `minimumNodes` is given, minimum_nodes is drawn so that the promise rule
   * tolerates every hostile identity (`liarsTolerated`). @default false
   */
  adversary?: boolean
  /** Identities the hostile member mints, overriding the drawn 0–2 (to measure past the tolerated count). */
  sybils?: number
  /** Return the entries of the largest replica at the end (`SimResult.state`), for size figures. @default false */
  keepState?: boolean
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
  /** Ballots honest nodes stood (distinct proposals) before the first cluster record; 1 is an election without a duel. */
  ballots: number
  /** Simulated end time, ms. */
  endedAt: number
  /** Decisions run. */
  decisions: number
  /** Entries settled by the merge's hash tie-break (a crash lost a version its owner then wrote again). */
  ties: number
  /** Times a node's membership table declared a member dead. */
  deaths: number
  description: string
  /** With `keepState`: every entry the largest replica holds at the end. */
  state?: StateEntry[]
}

type SimEvent =
  | NetEvent
  | FaultEvent
  | { type: 'tick', node: number, epoch: number, once?: boolean }
  | { type: 'wake', node: number, epoch: number }
  | { type: 'installed', node: number, epoch: number, clusterId: string, planKey: string }

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
  const tolerant = Math.ceil((n + hostileCount + 2 * hostileCount + 1) / 2) + (opts.adversary === true ? rng.int(2) : 0)
  const minimumNodes = opts.minimumNodes ?? (opts.adversary === true ? Math.min(n, tolerant) : Math.min(n, Math.floor(n / 2) + 1 + extra))
  const clock = new ManualClock(1_000_000)
  // Key material, tokens, sealing and entry hashes draw from their own stream, so the
  // fleet and fault plan drawn from `rng` do not depend on what the cryptography takes.
  const crypto = seededRandom(opts.seed + 0x5eed0000)
  const t0 = clock.now()
  const queue = new EventQueue<SimEvent>()
  const violations: string[] = []
  const inits = new Set<string>()
  const clusterIds = new Set<string>()
  const desc: string[] = []
  let decisions = 0
  let firstRecordAt: number | undefined
  const ballots = new Set<string>()

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
    nodes.push(simNode({ id, index: i, staticRole: roleOf(i), keys: memorySealKeys(crypto), address: `10.88.${i >> 8}.${(i & 255) + 1}` }))
  }
  // At least one eligible node, or nothing can form (a configuration error, not a fault).
  if (!nodes.some((x) => x.staticRole === 'master' || (x.staticRole === 'auto' && autoEnable))) (nodes[0] as SimNode).staticRole = 'master'
  desc.push(`nodes=${n} minimum=${minimumNodes} auto=${autoEnable} ha=${haEnable ? haMasterNodes : 'off'} roles=${summarizeRoles(nodes)}`)

  // ---- the hostile member and the identities it minted (sim/adversary.ts) ----
  const honest = [...nodes]
  const adversary = opts.adversary === true
    ? createAdversary({ seed: opts.seed, honest, autoEnable, sybils: sybilCount, minimumNodes, rng, crypto, clock, t0 })
    : undefined
  if (adversary !== undefined) {
    nodes.push(adversary.member)
    desc.push(`adversary with ${sybilCount} minted identities`)
  }
  const isHostile = (id: string): boolean => adversary?.isHostile(id) === true
  const hostileElected = new Set<string>()

  // ---- fault plan (sim/faults.ts) ----
  const plan = planFaults({ faults, nodes: nodes.length, honest: n, bootSpreadMs: opts.bootSpreadMs, rng, t0, push: (at, ev) => { queue.push(at, ev) } })
  const { loss, maxDelay } = plan
  let lastFault = plan.lastFault
  desc.push(...plan.description)
  let group: number[] = nodes.map(() => 0)
  const midStepCrash = faults === 'full' ? 0.002 : 0
  const settleDeadline = opts.settleDeadlineMs ?? 180_000
  let deadline = lastFault + settleDeadline

  const net = createSimNetwork<SimNode>({ nodes, queue, clock, rng, crypto, timing, loss, maxDelay, group: () => group, wake: (node) => { wakeSoon(node) } })
  const wakeSoon = (node: SimNode): void => {
    node.dirty = true
    if (node.wakePending || !node.up) return
    node.wakePending = true
    queue.push(clock.now() + Math.min(100, timing.rolesTickMs / 2), { type: 'wake', node: node.index, epoch: node.epoch })
  }
  /** Writes an entry of `owner` (the node itself, or an identity the hostile member minted) and gossips it. */
  const put = (node: SimNode, key: string, value: JsonValue, owner = node.id): void => {
    if (node.hostile !== true && key === ROLE_KEYS.cluster && value !== null && typeof value === 'object' && !Array.isArray(value)) {
      const cid = String((value as Record<string, unknown>).clusterId)
      clusterIds.add(cid)
      firstRecordAt ??= clock.now()
      if (clusterIds.size > 1) violations.push(`two cluster records at +${clock.now() - t0}ms: ${[...clusterIds].join(', ')}`)
    }
    if (node.hostile !== true && key === ROLE_KEYS.proposal && firstRecordAt === undefined) {
      const b = (value as { ballot?: { n?: unknown, by?: unknown } } | null)?.ballot
      if (b !== undefined) ballots.add(`${String(b.n)}/${String(b.by)}`)
    }
    net.put(node, key, value, owner)
  }

  /** The members as `node`'s roles layer reads them: the membership's, or the hostile member's lies. */
  const memberView = (node: SimNode): ReturnType<typeof net.members> => {
    const view = net.members(node)
    return adversary === undefined ? view : adversary.memberView(node, view, net)
  }

  // ---- roles ----
  // A server keeps the secrets its server credential carries (the controller writes
  // them to cluster-secrets.json), so it can issue when the init server is down.
  const secretsOf = (node: SimNode): ClusterSecrets | undefined => {
    if (node.secrets !== undefined) return node.secrets
    const h = node.held
    return node.facts.role?.role === 'server' && h?.role === 'server' && h.agentToken !== undefined ? { serverToken: h.token, agentToken: h.agentToken } : undefined
  }
  // An honest server: the init server or an honest node that holds the server role.
  const isServer = (id: string): boolean => inits.has(id) || honest.some((x) => x.id === id && x.facts.role?.role === 'server')
  const step = (node: SimNode, fromTick: boolean): void => {
    if (!node.up) return
    if (node.hostile === true) { if (fromTick) adversary?.step(net); return }
    const { members, key: signature } = memberView(node)
    const timeSensitive = node.lastPhase === '' || (node.recheckAt !== undefined && clock.now() >= node.recheckAt)
    // Skipping is exact: with no new entry and no liveness change, a decision changes
    // only at its `recheckAt`.
    if (fromTick && !node.dirty && signature === node.lastSignature && !timeSensitive) return
    node.tracker = trackView(node.tracker, members, clock.now())
    node.lastSignature = signature
    node.dirty = false
    node.held = credentialFor({
      self: node.id,
      sealKey: node.keys.publicKey,
      entries: node.replica.credentials(),
      issuers: issuersOf(node.facts, node.replica.entries()),
      held: node.held,
      open: (box) => openCredential(node.keys, box),
      onError: (owner, error) => { violations.push(`${node.id} cannot open the credential sealed by ${owner}: ${error}`) }
    })
    decisions++
    const d = decide({
      self: node.id,
      now: clock.now(),
      networkId: 'sim',
      config: { ...config, staticRole: node.staticRole },
      members,
      entries: node.replica.entries(),
      local: node.facts,
      viewSince: node.tracker.since,
      sealKey: node.keys.publicKey,
      hasSecrets: secretsOf(node) !== undefined,
      credential: credentialOf(node.held),
      address: node.address
    })
    node.lastPhase = d.phase
    node.recheckAt = d.recheckAt
    // Like the controller, wake when the decision changes with time alone.
    if (d.recheckAt !== undefined && d.recheckAt > clock.now()) queue.push(d.recheckAt, { type: 'tick', node: node.index, epoch: node.epoch, once: true })
    let limit = d.actions.length
    if (midStepCrash > 0 && d.actions.length > 1 && rng.float() < midStepCrash) limit = rng.int(d.actions.length)
    // The production applier; the invariants are checked by watching its ports.
    applyDecisionNow(limit < d.actions.length ? { ...d, actions: d.actions.slice(0, limit) } : d, {
      persist: (facts) => {
        const accepted = facts.cluster
        if (accepted !== null && node.facts.cluster === null && isHostile(accepted.init) && adversary?.electedByHonestVotes(node, accepted.init) === true) {
          // The documented limit: the hostile member was the preferred eligible node in
          // the voters' view (every honest eligible node ahead of it was down) and won a
          // real vote. Counted, not a violation.
          hostileElected.add(accepted.init)
        } else if (accepted !== null && (isHostile(accepted.init) || (accepted.init !== node.id && !inits.has(accepted.init) && !honest.some((x) => x.id === accepted.init && x.facts.role?.role === 'init')))) {
          violations.push(`${node.id} accepted a foreign cluster record of ${accepted.init} at +${clock.now() - t0}ms`)
        }
        const before = node.facts.role
        const after = facts.role
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
        if (node.facts.cluster === null && facts.cluster !== null) wakeSoon(node)
        node.facts = facts
      },
      secrets: () => secretsOf(node),
      generateSecrets: () => { node.secrets = generateClusterSecrets(crypto) },
      put: (key, value) => {
        const sealedServer = key.startsWith(CRED_PREFIX) && (value as { kind?: string } | null)?.kind === 'server'
        if (sealedServer) {
          // The server token goes only where the plan puts it: master_nodes servers with HA on, none without.
          const servers = new Set([key.slice(CRED_PREFIX.length), ...node.replica.entries()
            .filter((e) => isServer(e.owner) && e.key.startsWith(CRED_PREFIX) && (e.value as { kind?: string } | null)?.kind === 'server')
            .map((e) => e.key.slice(CRED_PREFIX.length))])
          if (!haEnable || servers.size > haMasterNodes) violations.push(`server token sealed to ${key.slice(CRED_PREFIX.length)} outside the plan (ha=${haEnable ? haMasterNodes : 'off'}, servers ${servers.size})`)
        }
        if (sealedServer && node.replica.get(node.id, key) === undefined) {
          // HA servers are admitted one at a time: the init server and every server
          // admitted before must have reported joined.
          const joined = (peer: string): boolean => {
            const v = node.replica.get(peer, ROLE_KEYS.status)?.value as { phase?: string } | null | undefined
            return v?.phase === 'joined'
          }
          const pending = [node.id, ...node.replica.entries()
            .filter((e) => isServer(e.owner) && e.key.startsWith(CRED_PREFIX) && (e.value as { kind?: string } | null)?.kind === 'server')
            .filter((e) => clock.now() - e.writtenAt < SERVER_JOIN_TIMEOUT_SIM_MS)
            .map((e) => e.key.slice(CRED_PREFIX.length))].filter((peer) => !joined(peer))
          if (pending.length > 0) violations.push(`server ${key.slice(CRED_PREFIX.length)} admitted while ${pending.join(', ')} had not joined`)
        }
        put(node, key, value)
      },
      seal: (kind, secrets, publicKey) => sealCredential(kind, secrets, publicKey, crypto),
      handOff: (h, planKey) => {
        if (node.installing) return
        if (!h.clusterInit) {
          if (node.held === undefined) { violations.push(`${node.id} handed off without a credential`); return }
          if ((h.role === 'server') !== (node.held.role === 'server')) violations.push(`${node.id} hands off as ${h.role} with a ${node.held.role} credential`)
        }
        node.installing = true
        queue.push(clock.now() + 20 + rng.int(2_000), { type: 'installed', node: node.index, epoch: node.epoch, clusterId: h.clusterId, planKey })
      }
    })
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
    net.stop(node)
    node.up = false
    node.epoch++
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
    node.epoch++
    node.dirty = true
    node.lastPhase = ''
    queue.push(clock.now() + rng.int(timing.rolesTickMs), { type: 'tick', node: node.index, epoch: node.epoch })
    net.start(node)
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
      case 'heal':
        group = nodes.map(() => 0)
        net.heal()
        for (const x of nodes) wakeSoon(x)
        break
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
      case 'installed': {
        const node = nodes[ev.node] as SimNode
        if (node.epoch !== ev.epoch || !node.up) break
        node.installing = false
        node.facts = { ...node.facts, joined: { clusterId: ev.clusterId, planKey: ev.planKey } }
        wakeSoon(node)
        break
      }
      default: net.handle(ev)
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
    // The kinds of credential a node holds: the one it opened, else those servers sealed to it.
    const creds = (x: SimNode): Set<string | undefined> => {
      const sealers = x.held === undefined ? [...inits, ...honest.filter((y) => y.facts.role?.role === 'server').map((y) => y.id)] : [x.held.owner]
      return new Set(sealers.map((sealer) => parseCredential(x.replica.get(sealer, `${CRED_PREFIX}${x.id}`)?.value)?.kind))
    }
    for (const x of honest) {
      if (!x.up) continue
      const role = x.facts.role
      if (role === null) { violations.push(`${x.id} (${x.staticRole}) has no role at the deadline`); continue }
      if (role.role === 'none') continue
      if (x.facts.joined === null) violations.push(`${x.id} (${role.role}) never completed its hand-off`)
      if (role.role === 'server' && !creds(x).has('server')) violations.push(`${x.id} is a server without the server credential`)
      // A joined agent's credential is collected by its sealer (roles/plan.ts collectableCredentials).
      if (role.role === 'agent' && !creds(x).has('agent') && x.facts.joined === null) violations.push(`${x.id} is an agent without the agent credential`)
      const serverToken = nodes.find((y) => y.id === role.init)?.secrets?.serverToken
      if (role.role === 'agent' && x.held !== undefined && (x.held.token === serverToken || x.held.agentToken !== undefined)) violations.push(`${x.id} is an agent holding the server token`)
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
    hostile: adversary?.ids ?? [],
    attacks: adversary?.attacks() ?? 0,
    hostileElected: hostileElected.size > 0,
    ...(formationAt === undefined ? {} : { formationMs: formationAt - lastBoot() }),
    ...(firstRecordAt === undefined ? {} : { electionMs: firstRecordAt - firstBoot }),
    ballots: ballots.size,
    endedAt: clock.now() - t0,
    decisions,
    ties: nodes.reduce((sum, x) => sum + x.replica.ties, 0),
    deaths: net.deaths(),
    description: desc.join('; '),
    ...(opts.keepState === true ? { state: [...nodes.reduce((a, b) => (b.replica.size > a.replica.size ? b : a)).replica.entries()] } : {})
  }
}

function summarizeRoles (nodes: readonly SimNode[]): string {
  const c: Record<string, number> = {}
  for (const x of nodes) c[x.staticRole] = (c[x.staticRole] ?? 0) + 1
  return Object.entries(c).map(([k, v]) => `${k}:${v}`).join(',')
}
