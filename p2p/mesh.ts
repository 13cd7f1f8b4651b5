import { shortId } from './heartbeat.ts'

/**
 * Which peers a node keeps connections to.
 *
 * A site does not need a connection between every pair of nodes, and on small CPUs it
 * cannot afford one: each connection costs a pnet + Noise handshake, identify, the token
 * proof, gossipsub and DHT streams and a state exchange, so an all-pairs mesh grows as N²
 * (435 connections at N = 30, which kept two cores busy for minutes). State converges by
 * gossip over any connected graph, so each node dials only a few *links* over the ring of
 * the peers it knows (short-id order, the same ring the heartbeats use):
 *
 * - distance 1, its ring successor, which it heartbeats: every member is watched, and the
 *   ring alone keeps the graph connected;
 * - `k − 1` more at distances spread geometrically up to the ring size (n^(j/k)), so a
 *   message crosses the site in a few hops (like Chord's fingers, with fewer of them).
 *
 * Every node also accepts the links others dial to it, so a node has about 2k connections
 * whatever the site's size. With a shared view every node computes the same ring; views
 * that differ during boot only add a few connections.
 */

/** Links a node dials (outbound connections it keeps). @default 4 */
export const DEFAULT_MESH_LINKS = 4

/** Ring distances of a node's links in a ring of `n` nodes (itself included): 1 first, each distinct and below n. */
export function linkDistances (n: number, k: number): number[] {
  const out: number[] = []
  if (n < 2 || k < 1) return out
  for (let j = 0; j < k; j++) {
    const d = Math.min(n - 1, Math.max(1, Math.round(n ** (j / k))))
    if (!out.includes(d)) out.push(d)
  }
  // Rounding can merge distances on small rings: fill with the nearest unused ones.
  for (let d = 1; out.length < Math.min(k, n - 1); d++) if (!out.includes(d)) out.push(d)
  return out
}

/** `ids` in ring order (short id, then peer id), without duplicates. */
export function ringOrder (ids: Iterable<string>): string[] {
  return [...new Set(ids)].map((id) => ({ id, s: shortId(id) })).sort((a, b) => a.s - b.s || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map((x) => x.id)
}

/** The peers `self` links to in the ring of `view` (self may or may not be in it), nearest first. */
export function meshLinks (self: string, view: Iterable<string>, k: number = DEFAULT_MESH_LINKS): string[] {
  const ring = ringOrder([self, ...view])
  const at = ring.indexOf(self)
  const out: string[] = []
  for (const d of linkDistances(ring.length, k)) {
    const peer = ring[(at + d) % ring.length]
    if (peer !== undefined && peer !== self && !out.includes(peer)) out.push(peer)
  }
  return out
}
