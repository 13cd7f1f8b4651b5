import { describe, expect, it } from 'vitest'
import { DEFAULT_MESH_LINKS, linkDistances, meshLinks, ringOrder } from '../../p2p/mesh.ts'
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
  it('distances start at the ring successor, are distinct, and stay below the ring size', () => {
    expect(linkDistances(1, 4)).toEqual([])
    expect(linkDistances(2, 4)).toEqual([1])
    expect(linkDistances(3, 4)).toEqual([1, 2])
    expect(linkDistances(10, 4)).toEqual([1, 2, 3, 6])
    expect(linkDistances(30, 4)).toEqual([1, 2, 5, 13])
    expect(linkDistances(200, 4)).toEqual([1, 4, 14, 53])
    for (let n = 2; n <= 300; n++) {
      const d = linkDistances(n, DEFAULT_MESH_LINKS)
      expect(d[0]).toBe(1)
      expect(new Set(d).size).toBe(d.length)
      expect(d.length).toBe(Math.min(DEFAULT_MESH_LINKS, n - 1))
      expect(d.every((x) => x >= 1 && x < n)).toBe(true)
    }
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
    for (const [n, maxDiameter] of [[10, 3], [30, 4], [100, 6], [250, 8]] as const) {
      const g = graph(ids(n), DEFAULT_MESH_LINKS)
      const degrees = [...g.values()].map((s) => s.size)
      expect(diameter(g)).toBeLessThanOrEqual(maxDiameter)
      // Each node dials 4 and is dialled by about 4: far from n − 1 once the site is larger than a few nodes.
      expect(Math.max(...degrees)).toBeLessThanOrEqual(2 * DEFAULT_MESH_LINKS)
      expect(degrees.reduce((a, b) => a + b, 0) / n).toBeLessThanOrEqual(2 * DEFAULT_MESH_LINKS)
    }
  })
})
