/**
 * What `lab status` and `lab report` show: each node's processes, registration and
 * agent status, the stand-in clusters, and the timeline report built from them.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { queryAgent } from '../agent/api.ts'
import type { Clock } from '../util/clock.ts'
import { errorMessage } from '../util/errors.ts'
import { readJson, writeJson } from './json-file.ts'
import { readRegistry, REGISTRY_FILE, SERVER_FILE, type RegisteredNode, type ServerRecord } from './k3s-standin.ts'
import type { HostRecord, LabRecord } from './meta.ts'
import { isRunning, namespaceInode, processNetInode } from './processes.ts'
import { buildTimelineReport, renderTimelineSvg, type NodeTimeline, type TimelineReport } from './report.ts'

/** Last status read from each agent, kept in its host dir so a report still has the timeline of a killed node. */
export const LAST_STATUS_FILE = 'last-status.json'

/** The part of an agent's `GET /status` the lab reads; every field optional so an older or partial agent still shows. */
export interface AgentStatusView {
  peerId?: string
  phase?: string
  role?: string
  awaiting?: number
  leader?: string
  /** Why it waits (agents with reasons): `text` is what `kairos-p2p status` prints. */
  reason?: { code?: string, text?: string, since?: number }
  warnings?: string[]
  peers?: unknown[]
  overlay?: { address?: string, interface?: string, peers?: Array<{ peerId?: string, endpoint?: string, latestHandshake?: number, up?: boolean }> }
  timeline?: Array<{ event: string, at: number }>
  mesh?: { connections?: number, dials?: { ok?: number, failed?: number }, connectionsSinceStart?: { opened: number, doubles: number, admissions: number } }
}

/** One node as `lab status` shows it. */
export interface NodeStatus {
  name: string
  ns: string
  segment: number
  address: string
  /** The host is powered (its mount-namespace holder runs). */
  powered: boolean
  /** The agent process runs. */
  running: boolean
  agentPid?: number
  /** Why the agent's status could not be read. */
  error?: string
  peerId?: string
  phase?: string
  /** The agent's reason for a non-final phase, as `kairos-p2p status` prints it. */
  reason?: string
  /** The agent's warnings (weak configuration, installer failures). */
  warnings?: string[]
  role?: string
  overlayAddress?: string
  /** Overlay peers with a recent handshake / all overlay peers. */
  handshakes: { up: number, total: number }
  /** Peers the agent knows. */
  peers: number
  /** Registered at a k3s stand-in. */
  joined: boolean
  /** How it is registered, when joined. */
  registeredAs?: 'server' | 'agent'
  /** The host name is registered, but with another address than its agent's: an earlier identity of the host (wiped since). */
  registeredEarlier?: string
  /**
   * It is the init server: its agent says so, or (no agent answering) its host runs the
   * cluster-init stand-in. A host wiped and booted afresh is a new node, not the init server.
   */
  init: boolean
  agent?: AgentStatusView
}

/** One stand-in server's registry: a cluster as k3s would see it. */
export interface ClusterView {
  /** Node running the cluster-init stand-in. */
  server: string
  address: string
  port: number
  /** The stand-in process runs. */
  running: boolean
  nodes: RegisteredNode[]
}

/** The whole lab at one moment: every node and every stand-in cluster. */
export interface LabStatus {
  id: string
  at: number
  nodes: NodeStatus[]
  clusters: ClusterView[]
}

/** Exactly one cluster, its stand-in server running, and every listed node (default: all) registered in it and reporting `joined`. */
export function isFormed (status: LabStatus, nodes: readonly string[] = status.nodes.map((n) => n.name)): boolean {
  const [only, ...more] = status.clusters
  if (only === undefined || more.length > 0 || !only.running) return false
  const names = new Set(only.nodes.map((n) => n.name))
  // The registry outlives a power cycle, so each node's own agent must also say it joined.
  const joined = new Set(status.nodes.filter((n) => n.running && n.phase === 'joined').map((n) => n.name))
  return nodes.every((n) => names.has(n) && joined.has(n))
}

/** One line per node, for error messages and logs. */
export function summarizeStatus (s: LabStatus): string {
  const nodes = s.nodes.map((n) => `${n.name}:${n.running ? (n.phase ?? 'no-status') : (n.powered ? 'stopped' : 'off')}/${n.role ?? '-'}${n.joined ? '/joined' : ''}`)
  const reasons = s.nodes.filter((n) => n.running && n.reason !== undefined).map((n) => `${n.name}: ${n.reason ?? ''}`)
  return `${nodes.join(' ')}; clusters: ${s.clusters.length === 0 ? 'none' : s.clusters.map((c) => `${c.server}[${c.nodes.map((n) => n.name).join(',')}]`).join(' ')}${reasons.length === 0 ? '' : `; reasons: ${reasons.join(' | ')}`}`
}

/** Reads a running agent's status: GET /status on `<state_dir>/agent.sock`. */
export async function readAgentStatus (host: HostRecord, signal?: AbortSignal): Promise<AgentStatusView> {
  signal?.throwIfAborted()
  return JSON.parse(await queryAgent(host.stateDir, '/status', 2000)) as AgentStatusView
}

/** How `readNodeStatus` looks at a host's processes and agent. */
export interface NodeProbes {
  /** The PID of the host's live mount-namespace holder, or undefined (powered off). */
  liveHolder: (h: HostRecord) => Promise<number | undefined>
  /** Whether the host's agent process runs. */
  agentRunning: (h: HostRecord) => Promise<boolean>
  readStatus: (host: HostRecord, signal?: AbortSignal) => Promise<AgentStatusView>
}

/** One node as `status` shows it: its processes, its registration, and what its agent reports (saved as its last status). */
export async function readNodeStatus (h: HostRecord, registered: Map<string, RegisteredNode>, inits: Set<string>, probes: NodeProbes, signal?: AbortSignal): Promise<NodeStatus> {
  const { liveHolder, agentRunning, readStatus } = probes
  const powered = (await liveHolder(h)) !== undefined
  const running = await agentRunning(h)
  const reg = registered.get(h.name)
  const node: NodeStatus = {
    name: h.name, ns: h.ns, segment: h.segment, address: h.address, powered, running,
    handshakes: { up: 0, total: 0 }, peers: 0, joined: reg !== undefined, init: inits.has(h.name)
  }
  if (reg !== undefined) node.registeredAs = reg.role
  if (running && h.agentPid !== undefined) node.agentPid = h.agentPid
  if (!running) return node
  try {
    const view = await readStatus(h, signal)
    node.agent = view
    if (view.peerId !== undefined) node.peerId = view.peerId
    if (view.phase !== undefined) node.phase = view.phase
    if (view.role !== undefined) node.role = view.role
    node.init = view.role === 'init'
    if (typeof view.reason?.text === 'string') node.reason = view.reason.text
    if (Array.isArray(view.warnings) && view.warnings.length > 0) node.warnings = view.warnings.filter((w) => typeof w === 'string')
    if (view.overlay?.address !== undefined) node.overlayAddress = view.overlay.address
    // The stand-in registers by host name, as k3s does: a host wiped and booted afresh
    // has a new identity and overlay address, and the old registration is not its own.
    if (reg !== undefined && view.overlay?.address !== undefined && reg.nodeIp !== view.overlay.address) {
      node.joined = false
      delete node.registeredAs
      node.registeredEarlier = reg.nodeIp
    }
    const op = view.overlay?.peers ?? []
    node.handshakes = { up: op.filter((p) => p.up === true).length, total: op.length }
    node.peers = Array.isArray(view.peers) ? view.peers.length : 0
    await writeJson(join(h.dir, LAST_STATUS_FILE), view)
  } catch (err) {
    node.error = errorMessage(err)
  }
  return node
}

/** The stand-in clusters of a lab: every host dir with a registry, and whether its server runs in the host. */
export async function readClusters (r: LabRecord): Promise<ClusterView[]> {
  const out: ClusterView[] = []
  for (const h of r.hosts) {
    const k3sDir = join(h.dir, 'k3s')
    const reg = await readRegistry(join(k3sDir, REGISTRY_FILE))
    if (reg === undefined) continue
    const server = await readJson<ServerRecord>(join(k3sDir, SERVER_FILE))
    const running = server !== undefined && (await isRunning(server.pid)) && (await processNetInode(server.pid)) === (await namespaceInode(h.ns))
    out.push({ server: h.name, address: reg.server.address, port: reg.server.port, running, nodes: reg.nodes })
  }
  return out
}

/** Writes timeline.json and timeline.svg of lab `r` at status `s` into `outDir` (default the lab dir). */
export async function writeTimelineReport (r: LabRecord, s: LabStatus, clock: Clock, outDir?: string): Promise<{ json: string, svg: string, report: TimelineReport }> {
  const rows: NodeTimeline[] = []
  for (const h of r.hosts) {
    const node = s.nodes.find((n) => n.name === h.name)
    const view = node?.agent ?? await readJson<AgentStatusView>(join(h.dir, LAST_STATUS_FILE))
    const events = [...(view?.timeline ?? [])]
    if (h.agentStartedAt !== undefined) events.push({ event: 'spawned', at: h.agentStartedAt })
    const reg = s.clusters.flatMap((c) => c.nodes).find((n) => n.name === h.name)
    // A registration from an earlier boot is not part of this boot's timeline.
    if (reg !== undefined && reg.registeredAt >= (h.agentStartedAt ?? 0)) events.push({ event: 'registered', at: reg.registeredAt })
    const role = view?.role ?? (node?.init === true ? 'init' : reg?.role)
    rows.push({ name: h.name, ...(role === undefined ? {} : { role }), events })
  }
  const rep = buildTimelineReport(r.id, rows, clock.now())
  const out = outDir ?? r.dir
  await mkdir(out, { recursive: true })
  const json = join(out, 'timeline.json')
  const svg = join(out, 'timeline.svg')
  await writeJson(json, rep)
  await writeFile(svg, renderTimelineSvg(rep))
  return { json, svg, report: rep }
}
