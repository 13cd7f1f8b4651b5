import { ringOrder, ringSuccessors, shortId } from './heartbeat.ts'

export { ringOrder }

/**
 * Which peers a node keeps connections to.
 *
 * A site does not need a connection between every pair of nodes, and on small CPUs it
 * cannot afford one: each connection costs a pnet + Noise handshake, identify, the token
 * proof, gossipsub and DHT streams and a state exchange, so an all-pairs mesh grows as N²
 * (docs/decisions.md, P2P-1). State converges by
 * gossip over any connected graph, so each node dials only a few *links* on the ring of
 * the peers it knows (short-id order, the same ring the heartbeats use):
 *
 * - its ring successor, which it heartbeats: every member is watched by a peer it is
 *   connected to, and the ring alone keeps the graph connected;
 * - `k − 1` fingers, as in Chord: the first peer at or after the points 1/2, 1/8, 1/32 …
 *   of the short-id space away from us, so a message crosses the site in a few hops.
 *
 * Fingers are placed in the id space, not by rank, so they stay put while a site boots:
 * a finger moves only when a newcomer lands between it and its point (a few times per
 * finger as N nodes appear in random order), where rank-based links would move with
 * every join and leave a trail of connections behind. When fingers coincide (a small
 * site), the next peers along the ring fill in, so a site of up to k + 1 nodes is fully
 * connected. Every node also accepts the links others dial to it: about 2k connections
 * whatever the site's size.
 */

/** Links a node dials (outbound connections it keeps). @default 4 */
export const DEFAULT_MESH_LINKS = 4

const RING = 2 ** 32

/** Where finger `j` (1-based) points, as a share of the ring: 1/2, 1/8, 1/32, … */
export function fingerShare (j: number): number {
  return 2 / 4 ** j
}

/** The peers `self` links to among `view` (self may or may not be in it): successor first, then fingers, then fill. */
export function meshLinks (self: string, view: Iterable<string>, k: number = DEFAULT_MESH_LINKS): string[] {
  const ring = ringOrder([self, ...view]).map((id) => ({ id, s: shortId(id) }))
  const others = ring.filter((p) => p.id !== self)
  if (others.length === 0 || k < 1) return []
  const out: string[] = [...ringSuccessors(self, others.map((p) => p.id), 1)]
  const base = shortId(self)
  for (let j = 1; j < k; j++) {
    const point = (base + Math.floor(RING * fingerShare(j))) % RING
    // Distance along the ring from the point; the finger is the peer nearest after it.
    const finger = others.reduce((best, p) => ((p.s - point + RING) % RING) < ((best.s - point + RING) % RING) ? p : best)
    if (!out.includes(finger.id)) out.push(finger.id)
  }
  // Coinciding fingers (few peers): the next peers after the successor take their place.
  for (const id of ringSuccessors(self, others.map((p) => p.id), others.length)) {
    if (out.length >= Math.min(k, others.length)) break
    if (!out.includes(id)) out.push(id)
  }
  return out
}
