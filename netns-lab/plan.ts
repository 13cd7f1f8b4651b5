import { LabInputError } from './errors.ts'

/**
 * The lab's topology as data: names, addresses and links, computed from the lab id,
 * its address index and the node/segment counts. No I/O here; `topology.ts` applies it.
 *
 * Addressing: segment `s` of lab index `L` is `10.<100+L>.<s>.0/24`; hosts are `.10`
 * upwards in the order they are placed, the router's leg is `.1`. Hosts are placed
 * round-robin over segments, so `n1` is the first host of segment 0.
 */

/** Lab ids are short so every link name (`kl<id>-x12`) stays within the kernel's 15 characters. */
export const LAB_ID_PATTERN = /^[a-z0-9]{1,6}$/

/** Largest lab the address plan supports. */
export const MAX_NODES = 200
/** Largest number of segments. */
export const MAX_SEGMENTS = 50
/** Lab address indexes run 0..MAX_LAB_INDEX (second octet 100..199). */
export const MAX_LAB_INDEX = 99
/** Name of the host-side veth inside each host namespace. */
export const HOST_IFACE = 'eth0'

/** One lab host: a network namespace (plus a mount namespace at run time) on a segment. */
export interface HostPlan {
  /** Node name used on the CLI: `n1`, `n2`… */
  name: string
  /** 0-based position in the lab. */
  index: number
  /** Segment the host sits on. */
  segment: number
  /** Network namespace name. */
  ns: string
  /** Interface inside the host namespace. */
  iface: string
  /** The veth end on the segment's bridge (in the switch namespace). */
  switchPort: string
  /** IPv4 address on `iface`. */
  address: string
  /** Prefix length of `address`. */
  prefixLength: number
  /** Default gateway (the router's leg) when the lab has several segments. */
  gateway?: string
}

/** One L2 segment: a bridge in the switch namespace. */
export interface SegmentPlan {
  index: number
  /** `10.<100+L>.<s>.0/24`. */
  subnet: string
  bridge: string
  /** The router's leg on this segment, when the lab has several segments. */
  router?: { iface: string, switchPort: string, address: string }
}

/** A whole lab's names and addresses. */
export interface TopologyPlan {
  id: string
  /** Address index (second octet is 100 + index). */
  index: number
  /** Prefix of every namespace and link of this lab: `kl<id>-`. */
  prefix: string
  /** Namespace holding the bridges. */
  switchNs: string
  /** Namespace routing between segments; absent with one segment. */
  routerNs?: string
  segments: SegmentPlan[]
  hosts: HostPlan[]
}

/** Inputs of `planTopology`. */
export interface TopologyPlanInit {
  /** Lab id, `[a-z0-9]{1,6}`. */
  id: string
  /** Address index 0..99. @default 0 */
  index?: number
  /** Number of hosts, 1..200. */
  nodes: number
  /** Number of routed segments, 1..min(nodes, 50). @default 1 */
  segments?: number
}

/** The `kl<id>-` prefix every lab resource carries. */
export function labPrefix (id: string): string {
  return `kl${id}-`
}

/** Throws LabInputError unless `id` is a valid lab id. */
export function assertLabId (id: string): void {
  if (!LAB_ID_PATTERN.test(id)) {
    throw new LabInputError(`lab id '${id}' is invalid; expected 1 to 6 characters from [a-z0-9]`)
  }
}

function assertInt (what: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new LabInputError(`${what} ${String(value)} is out of range; expected an integer from ${min} to ${max}`)
  }
}

/** A strict majority of `nodes`: the default `minimum_nodes` of a lab. */
export function strictMajority (nodes: number): number {
  return Math.floor(nodes / 2) + 1
}

/** Computes names and addresses of a lab; throws LabInputError on out-of-range input. */
export function planTopology (init: TopologyPlanInit): TopologyPlan {
  assertLabId(init.id)
  const index = init.index ?? 0
  const segmentCount = init.segments ?? 1
  assertInt('lab index', index, 0, MAX_LAB_INDEX)
  assertInt('--nodes', init.nodes, 1, MAX_NODES)
  assertInt('--segments', segmentCount, 1, Math.min(init.nodes, MAX_SEGMENTS))
  const prefix = labPrefix(init.id)
  const octet = 100 + index
  const routed = segmentCount > 1
  const segments: SegmentPlan[] = []
  for (let s = 0; s < segmentCount; s++) {
    const seg: SegmentPlan = { index: s, subnet: `10.${octet}.${s}.0/24`, bridge: `${prefix}b${s}` }
    if (routed) seg.router = { iface: `${prefix}r${s}`, switchPort: `${prefix}x${s}`, address: `10.${octet}.${s}.1` }
    segments.push(seg)
  }
  const placed = new Array<number>(segmentCount).fill(0)
  const hosts: HostPlan[] = []
  for (let i = 0; i < init.nodes; i++) {
    const s = i % segmentCount
    const k = placed[s] ?? 0
    placed[s] = k + 1
    const host: HostPlan = {
      name: `n${i + 1}`,
      index: i,
      segment: s,
      ns: `${prefix}n${i + 1}`,
      iface: HOST_IFACE,
      switchPort: `${prefix}p${i + 1}`,
      address: `10.${octet}.${s}.${10 + k}`,
      prefixLength: 24
    }
    if (routed) host.gateway = `10.${octet}.${s}.1`
    hosts.push(host)
  }
  const plan: TopologyPlan = { id: init.id, index, prefix, switchNs: `${prefix}sw`, segments, hosts }
  if (routed) plan.routerNs = `${prefix}rt`
  return plan
}

/** Every namespace the plan creates, switch and router first. */
export function planNamespaces (plan: TopologyPlan): string[] {
  return [plan.switchNs, ...(plan.routerNs === undefined ? [] : [plan.routerNs]), ...plan.hosts.map((h) => h.ns)]
}
