import type { JsonValue, Liveness, StateEntry } from '../p2p/types.ts'
import type { StaticRole } from '../config/types.ts'

/** State keys the roles layer writes, each in the writer's own namespace. */
export const ROLE_KEYS = Object.freeze({
  /** Every node: `{ sealKey, role, eligible }` — its seal public key and static role. */
  node: 'roles/node',
  /** Every node: its promise and accepted value (`VoteValue`). */
  vote: 'roles/vote',
  /** A proposer: its ballot, and once chosen its candidate and commit (`ProposalValue`). */
  proposal: 'roles/proposal',
  /** The init server only: the cluster record (`ClusterRecord`). */
  cluster: 'roles/cluster',
  /** The init server only: the hash of its k3s CA (`CaValue`). */
  ca: 'roles/ca',
  /** Every node with a role: `{ role, phase, clusterId, address? }` (`StatusValue`). */
  status: 'roles/status',
  /**
   * Every server holding the cluster secrets: its copy of them sealed to its own seal
   * key (`SecretsCopyValue` of roles/issuers.ts), from which a lost or damaged
   * `cluster-secrets.json` is rebuilt.
   */
  secrets: 'roles/secrets'
} as const)

/** Prefix of sealed credentials: `cred/<recipientPeerId>`, owned by the server that sealed it (roles/issuers.ts). */
export const CRED_PREFIX = 'cred/'

/**
 * A Paxos ballot: round `n`, made unique by the proposer's peer id `by`.
 * Ordered by `n`, then by `by`.
 */
export interface Ballot {
  n: number
  by: string
}

/** A value a voter accepted: the candidate proposed in `ballot`. */
export interface Accepted {
  ballot: Ballot
  candidate: string
}

/** Role of a node in the k3s cluster. `init` is the server that ran cluster-init. */
export type RoleName = 'init' | 'server' | 'agent' | 'none'

/** Which join credential a node holds: servers the server token, agents the agent token. */
export type CredentialKind = 'server' | 'agent'

/**
 * A reference to one vote as its certifier held it: the voter's `roles/vote` entry
 * (owner-signed in the state), by version and content hash (`voteHash`).
 */
export interface VoteRef {
  voter: string
  version: number
  hash: string
}

/** A promise a proposal counts on: the vote reference and the value it last accepted, as reported. */
export interface PromiseRef extends VoteRef {
  accepted: Accepted | null
}

/**
 * A quorum certificate: votes of distinct members that accepted `candidate` in
 * `ballot`, at least `quorumSize(minimum_nodes, known)` of them. Every node checks it
 * against the vote entries it holds before acting on it (roles/certificates.ts).
 */
export interface QuorumCertificate {
  ballot: Ballot
  candidate: string
  /** Nodes the certifier knew (self included) when it counted. */
  known: number
  votes: VoteRef[]
}

/**
 * The record that exists exactly once per token and network id; written by the init
 * server and acted on only with a valid certificate.
 */
export interface ClusterRecord {
  clusterId: string
  /** Peer id of the init server (also the owner of the entry). */
  init: string
  networkId: string
  /** The ballot in which the init server was chosen. */
  ballot: Ballot
  /** The votes that chose it. */
  certificate: QuorumCertificate
}

/** `roles/ca`, owned by the init server: the hash of its k3s cluster CA, for joiners to pin. */
export interface CaValue {
  clusterId: string
  /** sha256 of the k3s server CA certificate bundle, lowercase hex. */
  caHash: string
}

/** `roles/vote`. */
export interface VoteValue {
  promised: Ballot | null
  accepted: Accepted | null
}

/** `roles/proposal`. */
export interface ProposalValue {
  ballot: Ballot
  candidate: string | null
  /** The proposer saw a quorum accept: informational only, never taken as the decision. */
  committed: boolean
  /** Nodes the proposer knew when it chose its candidate (sets the quorum the promises must reach). */
  known?: number
  /** The promises that justify `candidate` (Paxos phase 1), checked by every voter before it accepts. */
  promises?: PromiseRef[]
}

/** `roles/node`. */
export interface NodeValue {
  /** X25519 public key, base64; credentials are sealed to it. */
  sealKey: string
  /** The node's `p2p.role`. */
  role: StaticRole
  /** Whether the node may become the init server or an automatic HA server. */
  eligible: boolean
  /** Whether the node takes a k3s role at all (false for `none`, or auto with `auto.enable: false`). */
  k3s: boolean
}

/** `roles/status`. */
export interface StatusValue {
  role: RoleName
  phase: 'installing' | 'joined'
  clusterId: string
  /** Address k3s listens on (the overlay address when the VPN is used); published by servers. */
  address?: string
}

/** `cred/<recipient>`, owned by the server that sealed it. */
export interface CredentialValue {
  kind: CredentialKind
  /** The recipient seal key the box was sealed to (public). */
  to: string
  clusterId: string
  /** The sealed credential (a `SealedCredential` from roles/credentials.ts). */
  box: JsonValue
}

/**
 * Facts a node persists in its state dir before it acts on them, so a crash or a
 * power cycle can never make it forget a promise, a vote or its role.
 */
export interface LocalFacts {
  /** Highest ballot promised. */
  promised: Ballot | null
  /** Local time of the last promise or accept (the term timeout runs from it). */
  promisedAt: number
  /** Value accepted in the highest ballot this node accepted in. */
  accepted: Accepted | null
  /** This node's own proposal, when it stood for election. */
  proposal: (ProposalValue & { startedAt: number }) | null
  /**
   * The cluster record this node accepted (its certificate checked): once set, never
   * changes. The init server keeps its whole record, certificate included.
   */
  cluster: { clusterId: string, init: string, record?: ClusterRecord } | null
  /**
   * The node's role: once set, never changes. A joiner adds the CA hash it pins (the
   * init server's `roles/ca`) the first time it sees one, and never another after.
   */
  role: { role: RoleName, clusterId: string, init: string, caHash?: string } | null
  /** The hand-off that completed, keyed by its input, so a restart does not redo it. */
  joined: { clusterId: string, planKey: string } | null
}

/** Facts of a node that never took part in anything. */
export const EMPTY_FACTS: LocalFacts = Object.freeze({
  promised: null, promisedAt: 0, accepted: null, proposal: null, cluster: null, role: null, joined: null
})

/** The configuration bits the pure decision reads. */
export interface RolesConfig {
  /** `p2p.role`. */
  staticRole: StaticRole
  /** `p2p.auto.enable`. */
  autoEnable: boolean
  /** `p2p.minimum_nodes`. */
  minimumNodes: number
  /** `p2p.auto.ha.enable`. */
  haEnable: boolean
  /** `p2p.auto.ha.master_nodes`: extra servers besides the init server. */
  haMasterNodes: number
  /** `timing.electionSettleMs`. */
  settleMs: number
  /** `timing.electionTermTimeoutMs`. */
  termTimeoutMs: number
  /**
   * How long an HA server that got the server token may take to report `joined`
   * before the next one is admitted without it, ms. @default SERVER_JOIN_TIMEOUT_MS
   */
  serverJoinTimeoutMs?: number
  /**
   * Joiners hand off only once the init server published its CA hash, so k3s checks
   * the server it reaches before it sends the token (k3s's secure token). Off only
   * where no k3s runs (the `dry-run` installer): there the init server has no CA to
   * publish. @default false
   */
  pinCa?: boolean
  /**
   * A member heard from this recently still counts for the election's preference
   * when a rumour says it is dead (`timing.deadAfterMs`), ms. @default 0
   */
  rumourGraceMs?: number
}

/** A member as the decision sees it. */
export interface MemberView {
  peerId: string
  liveness: Liveness
  lastSeen: number
}

/** Everything one decision reads: a snapshot of the node, its view and its persisted facts. */
export interface RolesSnapshot {
  self: string
  now: number
  networkId: string
  config: RolesConfig
  /** Members other than self. */
  members: MemberView[]
  /** State entries under `roles/` and `cred/`, from every owner. */
  entries: StateEntry[]
  local: LocalFacts
  /** Since when the set of alive members has been unchanged (see `trackView`). */
  viewSince: number
  /** Peers discovery found that are being dialled and are not members yet (unauthenticated; see `standWaitMs`). */
  discovering?: readonly string[]
  /** This node's seal public key. */
  sealKey: string
  /** Whether this node holds the cluster secrets in its state dir (servers only). */
  hasSecrets: boolean
  /**
   * The credential this node opened from `cred/<self>`: who sealed it and a hash of
   * what it carries (never the secret). Absent when none could be opened.
   */
  credential?: { owner: string, digest: string } | undefined
  /** This node's k3s address (overlay address), published by servers for joiners. */
  address?: string | undefined
  /** Init server only: sha256 of its k3s CA as k3s stored it, once k3s created it; published as `roles/ca`. */
  caHash?: string | undefined
  /**
   * Identities that left the site (removed, or dead longer than `p2p.forget_after`):
   * a server collects the agent credentials it sealed to them. @default none
   */
  departed?: { has: (id: string) => boolean } | undefined
}

/** What a node hands to the installer. */
export interface HandOffInput {
  role: 'server' | 'agent'
  /** True on the init server only: `cluster-init: true`. */
  clusterInit: boolean
  clusterId: string
  /** Peer id of the init server. */
  initServer: string
  /** The address of the server that sealed the joiner's credential (joiners only). */
  serverAddress?: string
  /** Hash of the credential the joiner holds (joiners only), so a new credential means a new hand-off. */
  credential?: string
  /** sha256 of the cluster CA the init server published (joiners only): the join token pins it. */
  caHash?: string
}

/** One step the shell carries out, in order. */
export type RolesAction =
  | { persist: LocalFacts }
  | { put: string, value: JsonValue }
  | { generateSecrets: true }
  | { sealSecrets: string, publicKey: string }
  | { sealCredential: string, kind: CredentialKind, publicKey: string, clusterId: string }
  | { handOff: HandOffInput, planKey: string }

/** Phases shown by `kairos-p2p status`. */
export type RolesPhase = 'discovering' | 'waiting' | 'electing' | 'installing' | 'joined'

/** The outcome of one decision. */
export interface RolesDecision {
  phase: RolesPhase
  /** How many more nodes are awaited (below `minimum_nodes`). */
  awaiting?: number
  role?: RoleName
  /** Highest ballot round this node promised. */
  term: number
  /** The init server (once known) or the candidate being voted on. */
  leader?: string
  clusterId?: string
  /** Why the node waits, for logs and status. */
  reason?: string
  /**
   * A joiner waiting for its credential: the server that seals it now (undefined
   * when none is up) and every server that can (roles/issuers.ts).
   */
  issuing?: { issuer?: string, able: string[] }
  /**
   * The time at which this decision may change with no new entry and no
   * membership change (a settle period or term timeout ending). Absent: only new
   * input can change it.
   */
  recheckAt?: number
  actions: RolesAction[]
}
