/**
 * A tiny synchronous site for table tests of the pure decision: each node holds a
 * replica, `run()` runs `decide` on every node, carries out its actions with the
 * production applier (roles/apply.ts) and delivers its puts to the nodes it is
 * connected to. No loss, no timing beyond a fixed step per round.
 */
import type { StaticRole } from '../../config/types.ts'
import type { JsonValue, StateEntry } from '../../p2p/types.ts'
import { applyDecisionNow, credentialFor, credentialOf, issuersOf, type HeldCredential } from '../../roles/apply.ts'
import { generateClusterSecrets, memorySealKeys, openCredential, sealCredential, type ClusterSecrets, type SealKeys } from '../../roles/credentials.ts'
import { clusterIdFor } from '../../roles/ballot.ts'
import { refOf } from '../../roles/certificates.ts'
import { trackView } from '../../roles/election.ts'
import { decide } from '../../roles/plan.ts'
import { EMPTY_FACTS, type ClusterRecord, type LocalFacts, type RolesConfig, type RolesDecision } from '../../roles/types.ts'
import { seededRandom } from '../../util/random.ts'

export const BASE_CONFIG: RolesConfig = {
  staticRole: 'auto', autoEnable: true, minimumNodes: 3, haEnable: false, haMasterNodes: 0, settleMs: 100, termTimeoutMs: 1_000
}

export interface SiteNode {
  id: string
  role: StaticRole
  replica: Map<string, StateEntry>
  facts: LocalFacts
  tracker?: { key: string, since: number }
  last?: RolesDecision
  inits: number
  keys: SealKeys
  secrets?: ClusterSecrets
  held?: HeldCredential
  /** The last credential it opened, kept after its sealer collected it. */
  opened?: HeldCredential
}

export class Site {
  now = 1_000
  readonly nodes: SiteNode[]
  readonly config: RolesConfig
  /** Who each node can reach (and hears as alive); default everyone. */
  links: (a: string, b: string) => boolean = () => true
  /** Node ids currently powered off. */
  readonly down = new Set<string>()
  private readonly random = seededRandom(1)

  constructor (ids: string[], config: Partial<RolesConfig> = {}, roles: Record<string, StaticRole> = {}) {
    this.config = { ...BASE_CONFIG, ...config }
    const random = seededRandom(ids.length)
    this.nodes = ids.map((id) => ({ id, role: roles[id] ?? 'auto', replica: new Map(), facts: { ...EMPTY_FACTS }, inits: 0, keys: memorySealKeys(random) }))
  }

  node (id: string): SiteNode {
    const n = this.nodes.find((x) => x.id === id)
    if (n === undefined) throw new Error(`no node ${id}`)
    return n
  }

  private reach (a: SiteNode, b: SiteNode): boolean {
    return !this.down.has(a.id) && !this.down.has(b.id) && this.links(a.id, b.id) && this.links(b.id, a.id)
  }

  put (node: SiteNode, key: string, value: JsonValue): void {
    const k = `${node.id}\u0000${key}`
    const e: StateEntry = { owner: node.id, key, version: (node.replica.get(k)?.version ?? 0) + 1, writtenAt: this.now, value }
    node.replica.set(k, e)
    for (const o of this.nodes) if (o !== node && this.reach(node, o)) this.merge(o, e)
  }

  merge (node: SiteNode, e: StateEntry): void {
    const k = `${e.owner}\u0000${e.key}`
    const cur = node.replica.get(k)
    if (cur === undefined || cur.version < e.version) node.replica.set(k, e)
  }

  /** Anti-entropy between every connected pair. */
  sync (): void {
    for (const a of this.nodes) for (const b of this.nodes) if (a !== b && this.reach(a, b)) for (const e of a.replica.values()) this.merge(b, e)
  }

  /** A node's secrets: the init server's own, or those a server's credential carries (as the controller keeps them). */
  secretsOf (node: SiteNode): ClusterSecrets | undefined {
    const h = node.held
    return node.secrets ?? (node.facts.role?.role === 'server' && h?.role === 'server' && h.agentToken !== undefined ? { serverToken: h.token, agentToken: h.agentToken } : undefined)
  }

  step (node: SiteNode): RolesDecision {
    const members = this.nodes.filter((o) => o !== node && this.reach(node, o)).map((o) => ({ peerId: o.id, liveness: 'alive' as const, lastSeen: this.now }))
    node.tracker = trackView(node.tracker, members, this.now)
    const entries = [...node.replica.values()]
    node.held = credentialFor({ self: node.id, sealKey: node.keys.publicKey, entries, issuers: issuersOf(node.facts, entries), held: node.held, open: (box) => openCredential(node.keys, box) })
    node.opened = node.held ?? node.opened
    const d = decide({
      self: node.id,
      now: this.now,
      networkId: 'site',
      config: { ...this.config, staticRole: node.role },
      members,
      entries,
      local: node.facts,
      viewSince: node.tracker.since,
      sealKey: node.keys.publicKey,
      hasSecrets: this.secretsOf(node) !== undefined,
      credential: credentialOf(node.held),
      address: `10.0.0.${this.nodes.indexOf(node) + 1}`
    })
    applyDecisionNow(d, {
      persist: (facts) => {
        if (node.facts.role === null && facts.role?.role === 'init') node.inits++
        node.facts = facts
      },
      secrets: () => this.secretsOf(node),
      generateSecrets: () => { node.secrets = generateClusterSecrets(this.random) },
      put: (key, value) => { this.put(node, key, value) },
      seal: (kind, secrets, publicKey) => sealCredential(kind, secrets, publicKey, this.random),
      handOff: (h, planKey) => { node.facts = { ...node.facts, joined: { clusterId: h.clusterId, planKey } } }
    })
    node.last = d
    return d
  }

  /** Runs `rounds` rounds of every live node, advancing time by `stepMs` each. */
  run (rounds: number, stepMs = 50): void {
    for (let r = 0; r < rounds; r++) {
      this.now += stepMs
      for (const n of this.nodes) if (!this.down.has(n.id)) this.step(n)
      this.sync()
    }
  }

  inits (): string[] {
    return this.nodes.filter((n) => n.inits > 0).map((n) => n.id)
  }
}

/** A vote entry of `voter` that accepted `candidate` in `ballot`. */
export function acceptVote (voter: string, ballot: { n: number, by: string }, candidate: string, version = 1): StateEntry {
  return { owner: voter, key: 'roles/vote', version, writtenAt: 0, value: { promised: { ...ballot }, accepted: { ballot: { ...ballot }, candidate } } }
}

/**
 * The entries of a cluster record backed by a quorum: the votes of `voters` for
 * `init` in `ballot`, and the record with its certificate, owned by `init`.
 */
export function certifiedRecord (init: string, voters: string[], networkId = 'site', ballot = { n: 1, by: init }, known = voters.length): { record: ClusterRecord, entries: StateEntry[] } {
  const votes = voters.map((v) => acceptVote(v, ballot, init))
  const certificate = { ballot: { ...ballot }, candidate: init, known, votes: votes.map(refOf) }
  const record: ClusterRecord = { clusterId: clusterIdFor(networkId, init, ballot), init, networkId, ballot: { ...ballot }, certificate }
  const entry: StateEntry = { owner: init, key: 'roles/cluster', version: 1, writtenAt: 0, value: structuredClone(record) as unknown as JsonValue }
  return { record, entries: [...votes, entry] }
}
