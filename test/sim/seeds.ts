import { expect } from 'vitest'
import { PRESETS } from '../../config/presets.ts'
import { replayCommand, runSimulation, type SimResult } from '../../sim/sim.ts'

/** Seeds CI covers; `npm run sim -- --seeds 10000` runs more. */
export const CI_SEEDS = 1_000

/** Up to ten failing seeds, each with its replay command. */
export function failures (results: readonly SimResult[]): string {
  return results
    .filter((r) => r.violations.length > 0)
    .slice(0, 10)
    .map((r) => `seed ${r.seed}: ${r.violations.slice(0, 2).join(' | ')}\n  ${r.description}\n  replay: ${replayCommand(r)}`)
    .join('\n')
}

/**
 * Runs seeds `from`..`to` with every fault and checks them: no invariant violated,
 * one init each, and the mix really contains what it claims (partitions, crashes,
 * power cycles, HA, large sites) and really runs the production merge and membership
 * (equal versions settled by the hash tie-break, members declared dead).
 */
export function checkSeeds (from: number, to: number): void {
  const results: SimResult[] = []
  for (let seed = from; seed <= to; seed++) results.push(runSimulation({ seed, timing: PRESETS.lab, faults: 'full' }))
  const failed = failures(results)
  expect(failed, failed).toBe('')
  const all = results.map((r) => r.description).join('\n')
  for (const fault of ['partition into', 'crash/restart', 'site power cycle', 'ha=']) expect(all).toContain(fault)
  expect(results.some((r) => r.nodes >= 50)).toBe(true)
  expect(results.every((r) => r.inits.length === 1)).toBe(true)
  expect(results.some((r) => r.ties > 0)).toBe(true)
  expect(results.some((r) => r.deaths > 0)).toBe(true)
}
