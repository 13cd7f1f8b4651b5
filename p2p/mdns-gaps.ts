import type { RandomSource } from '../util/random.ts'

/**
 * When LAN discovery sends (p2p/mdns.ts): the fast phase's queries, and the steady
 * gap between announcements, which backs off on a quiet site, grows with its size
 * (P2P-35), and stays short while a side is below minimum_nodes (P2P-34).
 */

/** First gap of the fast phase, ms; the gaps then double. */
export const MDNS_FAST_FIRST_GAP_MS = 250
/** Longest steady gap, in intervals (see p2p/mdns.ts's module comment). */
export const MDNS_STEADY_MAX_INTERVALS = 12
/**
 * On a quiet site the longest gap is also this many intervals per node up: the site's
 * announcements together come about once every two intervals, so what each node hears
 * does not grow with the site.
 */
export const MDNS_QUIET_INTERVALS_PER_NODE = 2
/** The longest gap whatever the site's size (a timer's bound, reached at 8 640 nodes up at the 5 s interval). */
export const MDNS_STEADY_LONGEST_MS = 24 * 3600 * 1000
/** Relative jitter on every gap, so a site powered on together does not send in lock-step. */
export const MDNS_JITTER = 0.1
/** Shortest steady gap while below minimum_nodes, as a fraction of the interval. */
export const MDNS_BELOW_MINIMUM_SHORTEST = 0.25
/**
 * Announcements a side below minimum_nodes sends together per interval, at most: a side of
 * this many nodes or more announces once an interval each, as while a member is missing.
 */
export const MDNS_BELOW_MINIMUM_PER_INTERVAL = 16

/**
 * Offsets from the start of a fast phase at which we query: 0, 250, 500,
 * 1000, 2000 … doubling while below `intervalMs`. The first steady
 * announcement follows the last query by `intervalMs`.
 */
export function fastPhaseOffsets (intervalMs: number): number[] {
  const out = [0]
  for (let t = MDNS_FAST_FIRST_GAP_MS; t < intervalMs; t *= 2) out.push(t)
  return out
}

/**
 * The steady gap of a side of `up` nodes below minimum_nodes: the side's announcements
 * together come about `MDNS_BELOW_MINIMUM_PER_INTERVAL` times an interval, each node's
 * at least every interval and at most every `MDNS_BELOW_MINIMUM_SHORTEST` of one. After
 * a heal the other side hears the first of them, and peer exchange brings in the rest.
 */
export function belowMinimumGap (intervalMs: number, up: number): number {
  if (!Number.isFinite(up)) return intervalMs
  return intervalMs * Math.min(1, Math.max(MDNS_BELOW_MINIMUM_SHORTEST, up / MDNS_BELOW_MINIMUM_PER_INTERVAL))
}

/**
 * The longest steady gap of a quiet site of `up` nodes: `MDNS_STEADY_MAX_INTERVALS`
 * intervals, or `MDNS_QUIET_INTERVALS_PER_NODE` per node up when that is longer, at most
 * `MDNS_STEADY_LONGEST_MS`.
 */
export function quietGapCap (intervalMs: number, up: number): number {
  const intervals = Number.isFinite(up) ? Math.max(MDNS_STEADY_MAX_INTERVALS, MDNS_QUIET_INTERVALS_PER_NODE * up) : MDNS_STEADY_MAX_INTERVALS
  return Math.min(MDNS_STEADY_LONGEST_MS, intervalMs * intervals)
}

/** `ms` moved by up to ±`MDNS_JITTER` of itself. */
export function jittered (ms: number, random: RandomSource): number {
  return Math.round(ms * (1 - MDNS_JITTER + 2 * MDNS_JITTER * random.float()))
}
