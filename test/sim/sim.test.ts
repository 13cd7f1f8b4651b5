import { describe, expect, it } from 'vitest'
import { PRESETS } from '../../config/presets.ts'
import { replayCommand, runSimulation, type SimResult } from '../../sim/sim.ts'
import { failures } from './seeds.ts'

describe('site simulation', () => {
  it('a 60-node site with every fault forms one cluster and gives every node its role and credential', () => {
    for (const seed of [7, 8]) {
      const r = runSimulation({ seed, nodes: 60, timing: PRESETS.lab, faults: 'full' })
      expect(r.violations, failures([r])).toEqual([])
      expect(r.inits).toHaveLength(1)
      expect(r.formationMs).toBeDefined()
    }
  }, 120_000)

  it('documented limit: a clean split with minimum_nodes at most half the fleet can give two inits, and the simulation sees it', () => {
    const results: SimResult[] = []
    for (let seed = 1; seed <= 10; seed++) results.push(runSimulation({ seed, nodes: 10, minimumNodes: 5, timing: PRESETS.lab, faults: 'clean-split' }))
    const doubled = results.filter((r) => r.violations.some((v) => v.startsWith('two cluster-inits')))
    expect(doubled.length).toBeGreaterThan(0)
    expect(doubled[0]?.inits).toHaveLength(2)
  })

  it('the same clean split with minimum_nodes above half the fleet gives exactly one init', () => {
    for (let seed = 1; seed <= 10; seed++) {
      const r = runSimulation({ seed, nodes: 10, minimumNodes: 6, timing: PRESETS.lab, faults: 'clean-split' })
      expect(r.violations, failures([r])).toEqual([])
      expect(r.inits).toHaveLength(1)
    }
  })

  it('a seed replays exactly', () => {
    const a = runSimulation({ seed: 42, timing: PRESETS.lab })
    const b = runSimulation({ seed: 42, nodes: a.nodes, minimumNodes: a.minimumNodes, timing: PRESETS.lab, faults: a.faults })
    expect(b).toEqual(a)
    expect(replayCommand(a)).toBe(`npm run sim -- --seed 42 --nodes ${a.nodes} --minimum-nodes ${a.minimumNodes} --faults full`)
  })
})
