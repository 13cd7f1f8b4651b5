import { describe, it } from 'vitest'
import { CI_SEEDS, checkSeeds } from './seeds.ts'

describe('site simulation, second half of the CI seeds', () => {
  it(`seeds ${CI_SEEDS / 2 + 1}–${CI_SEEDS} of loss, delay, reordering, partitions, crashes, power cycles and staggered boots: no invariant violated`, () => {
    checkSeeds(CI_SEEDS / 2 + 1, CI_SEEDS)
  }, 900_000)
})
