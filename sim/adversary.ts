import type { JsonValue, StateEntry } from '../p2p/types.ts'
import { clusterIdFor, compareBallots, quorumSize, sameBallot } from '../roles/ballot.ts'
import { justifiedCandidate, refOf } from '../roles/certificates.ts'
import { memorySealKeys } from '../roles/credentials.ts'
import { preferenceKey } from '../roles/election.ts'
import { indexEntries, voteHash } from '../roles/entries.ts'
import { ROLE_KEYS, type MemberView, type PromiseRef, type ProposalValue } from '../roles/types.ts'
import type { Clock } from '../util/clock.ts'
import type { RandomSource } from '../util/random.ts'
import type { SimNetwork } from './network.ts'
import { simNode, type SimNode } from './node.ts'
import type { HeldEntry } from './replica.ts'

/** An X25519 public key of the small subgroup (u = 0): every key agreement with it gives all zeros. */
const LOW_ORDER_SEAL_KEY = Buffer.alloc(32).toString('base64')

/*
 * The hostile member of an adversarial run: one more member that runs modified code.
 * It forges proposals and records, claims master, lies in its votes, replays old
 * ones, lies about others' liveness and mints identities. It is a member of the
 * production membership like any node; only its roles layer is replaced by `step`.
 */

export interface AdversaryInit {
  /** The run's seed: the hostile ids and whom it accuses derive from it. */
  seed: number
  /** The honest fleet, already drawn. */
  honest: readonly SimNode[]
  /** The run's `auto.enable`: which honest nodes are eligible. */
  autoEnable: boolean
  /** Identities it mints besides its own. */
  sybils: number
  minimumNodes: number
  /** The run's random source: the attacks it picks are part of the seed's sequence. */
  rng: RandomSource
  /** The run's key material stream: the hostile identities' seal keys. */
  crypto: RandomSource
  clock: Clock
  /** When the run started. */
  t0: number
}

export interface Adversary {
  /** The hostile member, to add to the fleet. */
  member: SimNode
  /** Its identities: the member's own first, then the ones it minted. */
  ids: string[]
  isHostile: (id: string) => boolean
  /** Entries it wrote or replayed so far. */
  attacks: () => number
  /** Whether honest voters' accepts for `candidate` held by `node`, with every hostile identity's, make a quorum. */
  electedByHonestVotes: (node: SimNode, candidate: string) => boolean
  /**
   * The members as `node`'s roles layer reads them (`view` is what the membership
   * says). The hostile member lies about liveness to whoever hears it: its minted
   * identities are alive, and one honest node, a new one every 10 s, is dead for the
   * 2 s its refutation takes to spread.
   */
  memberView: (node: SimNode, view: { members: MemberView[], key: string }, net: SimNetwork<SimNode>) => { members: MemberView[], key: string }
  /** One step of the hostile member's roles layer. */
  step: (net: SimNetwork<SimNode>) => void
}

/** Mints the hostile member and its identities. */
export function createAdversary (init: AdversaryInit): Adversary {
  const { seed, honest, autoEnable, minimumNodes, rng, crypto, clock, t0 } = init
  // Its ids come after every honest eligible node in the preference order: a member
  // that grinds its id ahead of them is elected by a real vote whenever they are down
  // (the documented Sybil limit), which is not what this run measures.
  const lastHonest = honest.filter((x) => x.staticRole === 'master' || (x.staticRole === 'auto' && autoEnable)).map((x) => preferenceKey(x.id, 'sim')).sort().at(-1) ?? ''
  const mintId = (tag: string): string => {
    for (let k = 0; ; k++) {
      const id = `12D3Koo${seed.toString(36)}${tag}${k.toString(36)}`
      if (preferenceKey(id, 'sim') > lastHonest) return id
    }
  }
  const memberId = mintId('mal')
  const m = simNode({ id: memberId, index: honest.length, hostile: true, staticRole: 'master', keys: memorySealKeys(crypto), address: '10.88.255.254' })
  const hostileIds = [memberId]
  for (let k = 0; k < init.sybils; k++) hostileIds.push(mintId(`syb${k}x`))
  /** The seal key of each hostile identity: real keys, so an honest init server can seal to them. */
  const hostileKeys = new Map<string, string>()
  // The last minted identity advertises a low-order seal key, to which no box can be
  // sealed: taken for a node, it would hold an HA server slot for ever.
  const lowOrder = init.sybils > 0 ? hostileIds[hostileIds.length - 1] : undefined
  for (const h of hostileIds) {
    const key = h === memberId ? m.keys.publicKey : memorySealKeys(crypto).publicKey
    hostileKeys.set(h, h === lowOrder ? LOW_ORDER_SEAL_KEY : key)
  }
  const isHostile = (x: string): boolean => hostileIds.includes(x)
  let attacks = 0

  const electedByHonestVotes = (node: SimNode, candidate: string): boolean => {
    let honestVotes = 0
    for (const x of honest) {
      const v = node.replica.get(x.id, ROLE_KEYS.vote)?.value as { accepted?: { candidate?: string } | null } | null | undefined
      if (v?.accepted?.candidate === candidate) honestVotes++
    }
    // Known nodes: the honest fleet and every hostile identity.
    return honestVotes + hostileIds.length >= quorumSize(minimumNodes, honest.length + hostileIds.length)
  }

  const memberView: Adversary['memberView'] = (node, view, net) => {
    if (node === m || !net.reachable(node, m)) return view
    const now = clock.now()
    const members = [...view.members]
    let key = view.key
    for (const x of hostileIds.slice(1)) { members.push({ peerId: x, liveness: 'alive', lastSeen: now }); key += `${x}a` }
    const window = Math.floor((now - t0) / 10_000)
    const accused = honest[(window * 7 + seed) % honest.length] as SimNode
    if (accused !== node && (now - t0) % 10_000 < 2_000) {
      const i = members.findIndex((x) => x.peerId === accused.id)
      const mv = members[i]
      if (mv !== undefined && mv.liveness !== 'dead') { members[i] = { ...mv, liveness: 'dead' }; key += 'D' }
    }
    return { members, key }
  }

  // Every step it picks attacks at random: it claims master for every identity it
  // holds (one of them with a low-order seal key), votes with lies (promising everything, reporting made-up accepts or none),
  // forges proposals (marked committed, with invented or hidden promises, steering
  // to a candidate of its choice by the plain rule, nominating itself), forges
  // cluster records (ballot 0, certificates citing votes that do not say so, or its
  // own identities' votes, its identities' statuses for it), and replays old votes
  // of honest nodes.
  const history: HeldEntry[] = []
  const step = (net: SimNetwork<SimNode>): void => {
    for (const h of m.replica.held()) if (h.entry.key === ROLE_KEYS.vote && !isHostile(h.entry.owner) && history.length < 2_000 && !history.includes(h)) history.push(h)
    const entries = m.replica.entries()
    const view = indexEntries(m.id, 'sim', entries)
    let top = 0
    for (const p of view.proposals) top = Math.max(top, p.ballot.n)
    for (const v of view.votes.values()) top = Math.max(top, v.promised?.n ?? 0)
    const pick = <T>(xs: readonly T[]): T => xs[rng.int(xs.length)] as T
    const honestIds = honest.map((x) => x.id)
    const favourite = pick([...hostileIds, ...honestIds])
    const hostilePut = (owner: string, key: string, value: unknown): void => { attacks++; net.put(m, key, value as JsonValue, owner) }
    for (const id of hostileIds) {
      if (m.replica.get(id, ROLE_KEYS.node) === undefined) hostilePut(id, ROLE_KEYS.node, { sealKey: hostileKeys.get(id) as string, role: 'master', eligible: true, k3s: true })
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
      for (const id of hostileIds) votes.push({ voter: id, version: (m.replica.get(id, ROLE_KEYS.vote)?.version ?? 1), hash: voteHash({ promised: ballot, accepted: { ballot, candidate: owner } }) })
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
      net.replay(m, pick(history))
    }
  }

  return { member: m, ids: hostileIds, isHostile, attacks: () => attacks, electedByHonestVotes, memberView, step }
}
