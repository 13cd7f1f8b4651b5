import { describe, expect, it } from 'vitest'
import { DEFAULT_MESH_LINKS, fingerShare, meshLinks, ringOrder } from '../../p2p/mesh.ts'
import { ringSuccessors } from '../../p2p/heartbeat.ts'

const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `peer-${i}`)

/** Undirected graph of every node's links. */
function graph (peers: string[], k: number): Map<string, Set<string>> {
  const g = new Map(peers.map((p) => [p, new Set<string>()]))
  for (const p of peers) {
    for (const q of meshLinks(p, peers, k)) {
      g.get(p)?.add(q)
      g.get(q)?.add(p)
    }
  }
  return g
}

/** Longest shortest path (hops), or Infinity when the graph is not connected. */
function diameter (g: Map<string, Set<string>>): number {
  let worst = 0
  for (const start of g.keys()) {
    const dist = new Map([[start, 0]])
    const queue = [start]
    for (let i = 0; i < queue.length; i++) {
      const at = queue[i] as string
      for (const next of g.get(at) ?? []) {
        if (!dist.has(next)) { dist.set(next, (dist.get(at) ?? 0) + 1); queue.push(next) }
      }
    }
    if (dist.size < g.size) return Infinity
    worst = Math.max(worst, ...dist.values())
  }
  return worst
}

describe('mesh links', () => {
  it('fingers point at 1/2, 1/8 and 1/32 of the id space; a node links to min(k, n − 1) distinct peers', () => {
    expect([1, 2, 3].map(fingerShare)).toEqual([1 / 2, 1 / 8, 1 / 32])
    expect(meshLinks('peer-0', [])).toEqual([])
    for (let n = 2; n <= 120; n++) {
      const peers = ids(n)
      for (const p of [peers[0], peers[n - 1]] as string[]) {
        const links = meshLinks(p, peers)
        expect(new Set(links).size).toBe(links.length)
        expect(links.length).toBe(Math.min(DEFAULT_MESH_LINKS, n - 1))
        expect(links).not.toContain(p)
      }
    }
  })

  it('links barely move while a site boots: a newcomer changes few other nodes\' links', () => {
    const peers = ids(60)
    let moved = 0
    for (let n = 2; n < peers.length; n++) {
      const before = peers.slice(0, n)
      const after = peers.slice(0, n + 1)
      for (const p of before) {
        const a = new Set(meshLinks(p, before))
        moved += meshLinks(p, after).filter((q) => !a.has(q)).length
      }
    }
    // Rank-based links would move for most nodes at every join (thousands here); fingers in the id
    // space move only when the newcomer lands in front of them.
    expect(moved).toBeLessThan(8 * peers.length)
  })

  it('a small site is fully connected: every node links to every other', () => {
    const peers = ids(5)
    for (const p of peers) expect(new Set(meshLinks(p, peers))).toEqual(new Set(peers.filter((q) => q !== p)))
  })

  it('the first link is the heartbeat ring successor, so every member has a watcher it is connected to', () => {
    const peers = ids(40)
    for (const p of peers) expect(meshLinks(p, peers)[0]).toBe(ringSuccessors(p, peers, 1)[0])
  })

  it('does not depend on the order of the view, and leaves out self', () => {
    const peers = ids(30)
    const shuffled = [...peers].reverse()
    for (const p of peers) {
      expect(meshLinks(p, shuffled)).toEqual(meshLinks(p, peers))
      expect(meshLinks(p, peers)).not.toContain(p)
    }
    expect(ringOrder([...peers, ...peers])).toEqual(ringOrder(peers))
  })

  it('keeps the site connected with a bounded degree and a short diameter as it grows', () => {
    for (const [n, maxDiameter] of [[10, 2], [30, 3], [100, 5], [250, 6]] as const) {
      const g = graph(ids(n), DEFAULT_MESH_LINKS)
      const degrees = [...g.values()].map((s) => s.size)
      expect(diameter(g)).toBeLessThanOrEqual(maxDiameter)
      // Each node dials 4 and is dialled by 4 on average; one after a wide gap in the id space
      // draws more fingers, but none comes near n − 1 once the site is larger than a few dozen.
      expect(degrees.reduce((a, b) => a + b, 0) / n).toBeLessThanOrEqual(2 * DEFAULT_MESH_LINKS)
      expect(Math.max(...degrees)).toBeLessThanOrEqual(6 * DEFAULT_MESH_LINKS)
    }
  })
})
