// The soak's figures from its samples (bench/_soak-summary.ts): RSS from warm-up to the
// end, fds flat or not, rates between samples, and the target check.
import { describe, expect, it } from 'vitest'
import { formationCpuS, parseSoakVariant, samplesOfVariant, summarizeSoak, variantOfAgent, type SoakSample } from '../../bench/_soak-summary.ts'

/** Two agents sampled every minute; agent b grows `growKbPerMin` and its fds `fdsAt(min)`. */
function samples (minutes: number, growKbPerMin: number, fdsAt: (min: number) => number): SoakSample[] {
  return Array.from({ length: minutes + 1 }, (_, m) => ({
    atS: m * 60,
    agents: [
      { rssKb: 100 * 1024, anonKb: 40 * 1024, fds: 30, cpuTicks: m * 30, netBytes: m * 60_000 },
      { rssKb: 100 * 1024 + m * growKbPerMin, anonKb: 40 * 1024 + m * growKbPerMin, fds: fdsAt(m), cpuTicks: m * 60, netBytes: m * 120_000 }
    ]
  }))
}

describe('summarizeSoak', () => {
  it('passes a flat site: RSS unchanged from warm-up, fds flat', () => {
    const s = summarizeSoak(samples(60, 0, () => 31), 300, 100)
    expect(s.warmupAtMin).toBe(5)
    expect(s.endAtMin).toBe(60)
    expect(s.rssMb).toEqual({ warmup: 100, end: 100, changePct: 0, maxAgentChangePct: 0 })
    expect(s.fds).toEqual({ first: 30.5, warmup: 30.5, end: 30.5, maxAgentRise: 0 })
    expect(s.withinTarget).toBe(true)
    expect(s.series.min).toHaveLength(61)
  })

  it('judges the median agent, and reports the agent that changed most', () => {
    // b: 100.9 MB at min 5 → 110.8 MB at min 60 (+9.8 %); the median (100, b) 100.45 → 105.4 (+4.9 %).
    const s = summarizeSoak(samples(60, 0.18 * 1024, () => 31), 300, 100)
    expect(s.rssMb.warmup).toBe(100.45)
    expect(s.rssMb.end).toBe(105.4)
    expect(s.rssMb.changePct).toBe(4.9)
    expect(s.rssMb.maxAgentChangePct).toBe(9.8)
    expect(s.withinTarget).toBe(true)
    const worse = summarizeSoak(samples(60, 0.25 * 1024, () => 31), 300, 100)
    expect(worse.rssMb.changePct).toBeGreaterThan(5)
    expect(worse.withinTarget).toBe(false)
  })

  it('fails fds that rise after warm-up, and ignores what closed during warm-up', () => {
    const leaking = summarizeSoak(samples(60, 0, (m) => 31 + Math.floor(m / 10)), 300, 100)
    expect(leaking.fds.maxAgentRise).toBe(6)
    expect(leaking.withinTarget).toBe(false)
    const settling = summarizeSoak(samples(60, 0, (m) => m < 3 ? 40 : 31), 300, 100)
    expect(settling.fds.first).toBe(35)
    expect(settling.fds.maxAgentRise).toBe(0)
    expect(settling.withinTarget).toBe(true)
  })

  it('gives CPU and traffic as rates between samples, median over the agents', () => {
    const s = summarizeSoak(samples(10, 0, () => 31), 300, 100)
    // 30 and 60 ticks a minute at 100 ticks/s: 0.5 % and 1 % of a core; median 0.75.
    expect(s.idleCpuPct).toEqual({ median: 0.75, max: 0.75 })
    expect(s.idleTrafficBytesPerS).toEqual({ median: 1500, max: 1500 })
  })

  it('has no verdict when a reading is missing', () => {
    const s = summarizeSoak([{ atS: 0, agents: [{}] }, { atS: 600, agents: [{}] }], 300, 100)
    expect(s.rssMb.changePct).toBeNull()
    expect(s.withinTarget).toBeNull()
  })
})

describe('soak variants', () => {
  it('splits a variant into Node options and environment settings', () => {
    expect(parseSoakVariant('--max-semi-space-size=1  MALLOC_TRIM_THRESHOLD_=131072 --no-maglev')).toEqual({
      label: '--max-semi-space-size=1  MALLOC_TRIM_THRESHOLD_=131072 --no-maglev',
      nodeArgs: ['--max-semi-space-size=1', '--no-maglev'],
      env: { MALLOC_TRIM_THRESHOLD_: '131072' }
    })
    expect(parseSoakVariant('')).toEqual({ label: '(no option)', nodeArgs: [], env: {} })
  })

  it('refuses a word that is neither an option nor NAME=value', () => {
    expect(() => parseSoakVariant('--max-semi-space-size=1 semi')).toThrow(/'semi' is neither a Node option/)
    expect(() => parseSoakVariant('malloc_arena_max=2')).toThrow(/neither/)
  })

  it('deals agents to variants in turn and keeps each variant\'s own samples', () => {
    expect([0, 1, 2, 3, 4].map((i) => variantOfAgent(i, 2))).toEqual([0, 1, 0, 1, 0])
    const s: SoakSample[] = [0, 1].map((m) => ({ atS: m * 60, agents: [0, 1, 2, 3].map((i) => ({ rssKb: (i + 1) * 1024, cpuTicks: (i + 1) * 100 * (m + 1) })) }))
    const odd = samplesOfVariant(s, 1, 2)
    expect(odd.map((x) => x.agents.map((a) => a.rssKb))).toEqual([[2048, 4096], [2048, 4096]])
    // CPU until formed: from the first sample, at 100 ticks a second.
    expect(formationCpuS(odd, 100)).toEqual({ median: 3, max: 4 })
    expect(formationCpuS([], 100)).toBeNull()
  })
})
