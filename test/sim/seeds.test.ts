import { describe, it } from 'vitest'
import { CI_SEEDS, checkSeeds } from './seeds.ts'

describe('site simulation', () => {
  it(`${CI_SEEDS} seeds of loss, delay, reordering, partitions, crashes, power cycles and staggered boots: no invariant violated`, () => {
    checkSeeds(1, CI_SEEDS)
  }, 1_800_000)
})
