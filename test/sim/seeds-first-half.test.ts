import { describe, it } from 'vitest'
import { CI_SEEDS, checkSeeds } from './seeds.ts'

describe('site simulation, first half of the CI seeds', () => {
  it(`seeds 1–${CI_SEEDS / 2} of loss, delay, reordering, partitions, crashes, power cycles and staggered boots: no invariant violated`, () => {
    checkSeeds(1, CI_SEEDS / 2)
  }, 900_000)
})
