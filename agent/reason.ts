/**
 * Why a node is not done yet, in words an operator can act on: what it waits for, on
 * whom, since when, and what to do. Pure: built from what the roles controller and the
 * p2p node already report (phase, awaited nodes, init server, member liveness) plus the
 * few facts the agent records itself (when members went dead, when the hand-off failed).
 */

/** Stable codes of `StatusReason.code`, one per kind of wait; metrics label them. */
export const REASON_CODES = [
  'discovering', 'more-nodes', 'partitioned', 'electing', 'credential', 'init-server-down',
  'init-address', 'init-ca', 'overlay', 'secrets', 'installer-failed', 'installing'
] as const
export type ReasonCode = typeof REASON_CODES[number]

/** Why a node in a non-final phase waits. */
export interface StatusReason {
  /** What kind of wait, stable across versions (see REASON_CODES). */
  code: ReasonCode
  /** One sentence: what it waits for, on whom, since when, and what the operator can do. */
  text: string
  /** Wall-clock ms since which the node has been waiting for this. */
  since: number
  /** The peer it waits on, when one (the init server). */
  peer?: string
  /** What the operator can do. */
  hint: string
}

/** The last hand-off failures, as the agent saw them from its installer. */
export interface InstallerFailure {
  /** Failures since the agent started. */
  count: number
  /** The installer's own message of the last failure. */
  message: string
  /** Wall-clock ms of the last failure. */
  at: number
  /** When the roles controller tries the same plan again, wall-clock ms. */
  retryAt: number
}

/** A member as the reason reads it. */
export interface ReasonPeer {
  id: string
  liveness: string
  lastSeen: number
  connected?: boolean | undefined
}

/** Everything `explain` reads. */
export interface ReasonInput {
  now: number
  startedAt: number
  phase: string
  awaiting?: number | undefined
  role?: string | undefined
  leader?: string | undefined
  clusterId?: string | undefined
  /** The roles controller's own reason text. */
  rolesReason?: string | undefined
  /**
   * A joiner waiting for its credential: the server that seals it now (absent when
   * none is up) and every server that can (roles/issuers.ts).
   */
  issuing?: { issuer?: string | undefined, able: readonly string[] } | undefined
  minimumNodes: number
  peers: readonly ReasonPeer[]
  /** Wall-clock ms at which each member last changed liveness (join or leave), as this node saw it. */
  livenessSince: ReadonlyMap<string, number>
  /** Wall-clock ms of the last change of the member view. */
  viewChangedAt: number
  /** Timeline milestones reached, wall-clock ms. */
  milestones: ReadonlyMap<string, number>
  installer?: InstallerFailure | undefined
  /** The failure detector's dead-after time, ms: older news of a peer is not a sign of life. @default 0 (not checked) */
  deadAfterMs?: number | undefined
  /** How peers are found, for the discovering hint. */
  discovery: { mdns: boolean, dht: boolean, bootstrapPeers: number }
}

/**
 * What the operator can do when no server that can issue credentials is up: bring one
 * back, or start a new cluster on purpose. The README's Recovery section has the steps.
 */
export const ISSUER_GONE_HINT = 'boot the init server again, or put its state dir back on a new box (cluster-secrets.json, seal-key.json and the identity hold what it needs); ' +
  'a cluster-init never runs twice, so no other node takes its place. To start a new cluster on purpose instead, give every box a new p2p.network_id and run \'kairos-p2p cluster reset\' on each, agent stopped (see \'Recovery\' in the README)'

/** `12D3KooWAbcd…wxyz12`: enough of a peer id to find it in `status` and logs. */
export function shortPeer (id: string): string {
  return id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-6)}` : id
}

/** `41 s`, `3 min`, `2 h`. */
export function duration (ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000))
  if (s < 120) return `${s} s`
  const m = Math.round(s / 60)
  return m < 120 ? `${m} min` : `${Math.round(m / 60)} h`
}

const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`

/**
 * The reason of a node in a non-final phase, or undefined when it has joined (or has
 * nothing to wait for). The text carries numbers, peers and durations; `code` is stable.
 */
export function explain (s: ReasonInput): StatusReason | undefined {
  if (s.phase === 'joined') return undefined
  const milestone = (e: string): number | undefined => s.milestones.get(e)
  const alive = s.peers.filter((p) => p.liveness === 'alive')
  const gone = s.peers.filter((p) => p.liveness === 'dead' || p.liveness === 'suspect')
  const reason = (code: ReasonCode, text: string, since: number, hint: string, peer?: string, timed = false): StatusReason =>
    ({ code, text: `${text}${timed ? '' : ` (for ${duration(s.now - since)})`}: ${hint}`, since, hint, ...(peer === undefined ? {} : { peer }) })

  if (s.phase === 'discovering' || (s.phase === 'waiting' && s.peers.length === 0)) {
    const ways = [s.discovery.mdns ? 'mDNS' : '', s.discovery.dht ? 'the DHT' : '', s.discovery.bootstrapPeers > 0 ? plural(s.discovery.bootstrapPeers, 'bootstrap peer') : ''].filter((w) => w !== '')
    const found = gone.length === 0 ? 'none found yet' : `none alive: ${plural(gone.length, 'known node')} dead or unreachable (${gone.map((p) => shortPeer(p.id)).join(', ')})`
    return reason('discovering', `looking for other nodes (${ways.join(', ') || 'no discovery enabled'}), ${found}`, gone.length === 0 ? s.startedAt : s.viewChangedAt,
      'check that the other boxes run with the same network token and network id, and share this LAN or list each other in p2p.bootstrap_peers')
  }

  if (s.phase === 'waiting' && s.awaiting !== undefined && s.awaiting > 0) {
    const reachable = alive.length + 1
    if (gone.length > 0 && reachable + gone.length >= s.minimumNodes) {
      const known = reachable + gone.length
      const since = Math.max(...gone.map((p) => s.livenessSince.get(p.id) ?? p.lastSeen))
      return reason('partitioned', `partitioned from the quorum: reaches ${reachable} of the ${known} nodes it knows (this one included), minimum_nodes is ${s.minimumNodes}; no word from ${gone.map((p) => shortPeer(p.id)).join(', ')}`,
        since, 'check the network between these nodes; if they are down for good, boot replacements (the election needs minimum_nodes nodes in one part of the network)')
    }
    return reason('more-nodes', `waiting for ${plural(s.awaiting, 'more node')}: minimum_nodes is ${s.minimumNodes}, ${plural(reachable, 'node')} alive (this one included)`,
      s.viewChangedAt, 'boot more boxes with this network token, or lower p2p.minimum_nodes if the site really is this small (more than half of the boxes that boot together keeps one cluster-init)')
  }

  if (s.phase === 'electing') {
    const known = s.peers.length + 1
    const quorum = Math.floor(Math.max(s.minimumNodes, known) / 2) + 1
    const reachable = alive.length + 1
    if (reachable < quorum) {
      const since = Math.max(s.viewChangedAt, ...gone.map((p) => s.livenessSince.get(p.id) ?? p.lastSeen))
      return reason('partitioned', `partitioned from the quorum: reaches ${reachable} of the ${known} nodes it knows (this one included), the election needs votes from ${quorum}; no word from ${gone.map((p) => shortPeer(p.id)).join(', ')}`,
        since, 'check the network between these nodes; the other side elects if it holds a quorum, this side joins it once the network heals')
    }
    const candidate = s.leader === undefined ? '' : `, candidate ${shortPeer(s.leader)}`
    return reason('electing', `electing the init server: needs votes from ${quorum} of ${known} known nodes, ${reachable} reachable${candidate}${s.rolesReason === undefined ? '' : ` (${s.rolesReason})`}`,
      Math.max(s.viewChangedAt, milestone('discovered') ?? s.startedAt), 'nothing to do while members come and go; the view must stay unchanged for the settle period before a vote')
  }

  const init = s.leader
  const initPeer = init === undefined ? undefined : s.peers.find((p) => p.id === init)
  const initDown = (): StatusReason | undefined => {
    if (init === undefined || s.role === 'init') return undefined
    const liveness = initPeer?.liveness ?? 'unknown'
    if (liveness === 'alive') return undefined
    const since = initPeer === undefined ? s.startedAt : (s.livenessSince.get(init) ?? initPeer.lastSeen)
    const state = liveness === 'unknown' ? `not seen by this node in ${duration(s.now - since)}` : `${liveness} for ${duration(s.now - since)}`
    return reason('init-server-down', `waiting for a credential from ${shortPeer(init)} (init server), ${state}`, since,
      "restart the init server (its roles and keys survive a reboot); a cluster-init never runs twice, so no other node takes its place; if it is gone for good, start a new cluster with 'kairos-p2p cluster reset' on every box (see 'Recovery' in the README)", init, true)
  }

  // Who can seal this node's credential, when the roles layer says (servers besides
  // the init server hold the secrets too): the one that seals it now, or none up.
  const issuerWait = (): StatusReason | undefined => {
    if (s.issuing === undefined || init === undefined || s.role === 'init') return undefined
    const { issuer, able } = s.issuing
    if (issuer === undefined) {
      const down = able.map((id) => s.peers.find((p) => p.id === id)).filter((p) => p !== undefined)
      const since = down.length === 0 ? s.startedAt : Math.max(...down.map((p) => s.livenessSince.get(p.id) ?? p.lastSeen))
      const who = able.length <= 1
        ? `the only server that can issue credentials, ${shortPeer(init)} (init server), is gone (${initPeer?.liveness ?? 'not seen by this node'} for ${duration(s.now - since)})`
        : `none of the ${able.length} servers that can issue credentials is up (${able.map(shortPeer).join(', ')}; the init server is ${shortPeer(init)})`
      return reason('init-server-down', `waiting for a credential: ${who}`, since, ISSUER_GONE_HINT, init, true)
    }
    if (issuer === init) return undefined
    return reason('credential', `waiting for a credential from ${shortPeer(issuer)} (a server; the init server ${shortPeer(init)} is down, so it issues in its place)`,
      milestone('elected') ?? s.viewChangedAt, 'it seals one once it has this node\'s seal key; if this lasts, compare both nodes\' status and logs', issuer)
  }

  // "alive" from the membership, with how old its last sign of life is when that is older
  // than the failure detector's own dead-after time (the news came second hand).
  const initAlive = (): string => {
    const age = initPeer === undefined ? 0 : s.now - initPeer.lastSeen
    return s.deadAfterMs !== undefined && s.deadAfterMs > 0 && initPeer?.connected !== true && age > s.deadAfterMs
      ? `alive by its peers' word, no sign of life here for ${duration(age)}`
      : 'alive'
  }

  if (s.phase === 'waiting') {
    // A cluster record exists; the credential sealed to this node has not come.
    const down = issuerWait() ?? initDown()
    if (down !== undefined) return down
    const since = milestone('elected') ?? s.viewChangedAt
    return reason('credential', `waiting for a credential from ${init === undefined ? 'the init server' : shortPeer(init)} (init server, ${initAlive()})`, since,
      'the init server seals one once it has this node\'s seal key; if this lasts, compare both nodes\' status and logs', init)
  }

  // installing
  if (s.installer !== undefined) {
    const f = s.installer
    const retry = f.retryAt > s.now ? `retried in ${duration(f.retryAt - s.now)}` : 'retried at the next step'
    return { code: 'installer-failed', text: `the installer failed ${f.count === 1 ? 'once' : `${f.count} times`}, last ${duration(s.now - f.at)} ago: ${f.message}; ${retry}`, since: f.at,
      hint: 'fix what the installer reports (for k3s: journalctl -u k3s or k3s-agent); the same plan is tried again' }
  }
  const text = s.rolesReason ?? ''
  const installingSince = milestone('installing') ?? milestone('credential') ?? milestone('elected') ?? s.startedAt
  if (/credential/.test(text)) {
    return issuerWait() ?? initDown() ?? reason('credential', `waiting for a credential sealed to this node by ${init === undefined ? 'the init server' : shortPeer(init)} (init server, ${initAlive()})`,
      milestone('elected') ?? s.viewChangedAt, 'the init server seals one once it has this node\'s seal key; if this lasts, compare both nodes\' status and logs', init)
  }
  if (/address/.test(text) && /init/.test(text)) {
    return initDown() ?? reason('init-address', `waiting for the address of ${init === undefined ? 'the init server' : shortPeer(init)} (init server), which it publishes once its overlay is up`,
      milestone('credential') ?? installingSince, 'check the init server\'s overlay (kairos-p2p status there shows its overlay address)', init)
  }
  if (/k3s CA/.test(text)) {
    return initDown() ?? reason('init-ca', `waiting for ${init === undefined ? 'the init server' : shortPeer(init)} (init server) to publish the hash of its k3s CA, which the join token pins`,
      milestone('credential') ?? installingSince, 'the init server reads <data-dir>/server/tls/server-ca.crt once its k3s created it; check k3s runs there with the configured data dir (its status and log say what it waits for)', init)
  }
  if (/overlay/.test(text)) {
    return reason('overlay', 'waiting for this node\'s overlay address before the hand-off', milestone('credential') ?? installingSince,
      'check kairos-p2p vpn status and the agent log for WireGuard errors (kernel module or wireguard-go)')
  }
  if (/secrets/.test(text) && /lost/.test(text)) {
    return reason('secrets', 'waiting for the cluster secrets: cluster-secrets.json is lost and its sealed copy in the state does not open with this node\'s seal key; new secrets are never made, k3s runs with the old ones', installingSince,
      'restore cluster-secrets.json from a backup of the state dir, or copy it from an HA server of this site (servers keep the same tokens), then restart the agent')
  }
  if (/secrets/.test(text)) {
    return reason('secrets', 'waiting for the cluster secrets this init server generates', installingSince, 'check the state dir is writable')
  }
  return reason('installing', `handing off to the installer${text === '' ? '' : ` (${text})`}`, installingSince,
    'the installer runs; its own output is in the agent log')
}
