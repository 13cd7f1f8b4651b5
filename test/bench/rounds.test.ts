// Rounds of a lab benchmark as one result (bench/_rounds.ts): medians over the rounds,
// and each lab figure read against the floor run of its own round.
import { describe, expect, it } from 'vitest'
import { combineRounds, floorRatios, median } from '../../bench/_rounds.ts'

describe('benchmark rounds', () => {
  it('takes the median of each number over the rounds that have it, key by key', () => {
    expect(median([3, 1, 2])).toBe(2)
    expect(median([4, 1, 2, 3])).toBe(2.5)
    const combined = combineRounds([
      { formed: true, fromLastStartS: { allJoined: 9, electionDone: null }, cpu: { median: 1, max: 2 }, note: 'a' },
      { formed: false, fromLastStartS: { allJoined: 5, electionDone: 4 }, cpu: { median: 3, max: 8 }, note: 'b' },
      { fromLastStartS: { allJoined: 7 }, cpu: { median: 2, max: 4 } }
    ])
    expect(combined).toEqual({ formed: true, fromLastStartS: { allJoined: 7, electionDone: 4 }, cpu: { median: 2, max: 4 }, note: 'a' })
    expect(combineRounds([])).toBeUndefined()
    expect(combineRounds([null, undefined])).toBeNull()
  })

  it('reads each round against its own floor run, and leaves out a round either side lacks', () => {
    const lab = (cpu: number, joined: number | null, election: number, rss: number): unknown => ({
      agentCpuSecondsAtFormation: { median: cpu, max: cpu + 1 },
      fromLastStartS: { allJoined: joined, electionDone: election },
      memoryMbAfterIdle: { rss: { median: rss, max: rss } }
    })
    const floor = (cpu: number, heard: number, rss: number): unknown => ({ cpuSecondsAtHeard: { median: cpu, max: cpu }, fromLastStartS: { allHeard: heard }, memoryMbAtHeard: { rss: { median: rss, max: rss } } })
    const r = floorRatios([
      { lab: lab(2, 4, 3, 100), floor: floor(1, 2, 90) },
      { lab: lab(3, 9, 5, 104), floor: floor(1, 3, 90) },
      { lab: lab(1.5, null, 4, 95), floor: floor(1, 0, 90) }
    ])
    // cpu: 2, 3, 1.5 → median 2; all joined: 2, 3 (the third has none) → 2.5.
    expect(r.cpu).toEqual({ median: 2, min: 1.5, max: 3 })
    expect(r.allJoined).toEqual({ median: 2.5, min: 2, max: 3 })
    // Differences: election done − floor all heard 1, 2, 4; RSS 10, 14, 5.
    expect(r.electionDone).toEqual({ median: 2, min: 1, max: 4 })
    expect(r.rssAfterIdle).toEqual({ median: 10, min: 5, max: 14 })
    expect(floorRatios([])).toEqual({})
  })
})
