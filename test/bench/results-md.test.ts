// bench/RESULTS.md's layout (bench/_results-md.ts): N across and figures down, targets
// marked per size, floor rows computed from the floor's figure of the same size, and the
// hand-kept closing section carried over as it is.
import { describe, expect, it } from 'vitest'
import { byHandSection, renderBenchmark, renderResults, type ResultsFile, type StoredResult } from '../../bench/_results-md.ts'

const when = '2026-12-05T00:00:00.000Z'

const floor: StoredResult = {
  name: 'floor', ok: true, wallMs: 30_000, when,
  result: {
    n3: { nodes: 3, fromLastStartS: { allHeard: 0.5 }, cpuSecondsAtHeard: { median: 0.4, max: 0.5 }, memoryMbAtHeard: { rss: { median: 80, max: 81 } } },
    n10: { nodes: 10, fromLastStartS: { allHeard: 2 }, cpuSecondsAtHeard: { median: 0.8, max: 0.9 }, memoryMbAtHeard: { rss: { median: 85, max: 86 } } }
  }
}

const lab: StoredResult = {
  name: 'lab', ok: true, wallMs: 200_000, when,
  result: {
    preset: 'lab',
    targets: { rssMb: 60 },
    n10: { nodes: 10, fromLastStartS: { allJoined: 4, electionDone: 3 }, agentCpuSecondsAtFormation: { median: 1.2, max: 1.4 }, memoryMbAfterIdle: { rss: { median: 101, max: 104 } }, idleTrafficBytesPerS: { median: 1100, max: 1300 } },
    n3: { nodes: 3, fromLastStartS: { allJoined: 0.8, electionDone: 0.7 }, agentCpuSecondsAtFormation: { median: 0.6, max: 0.7 }, memoryMbAfterIdle: { rss: { median: 90, max: 91 } }, idleTrafficBytesPerS: { median: 400, max: 500 } }
  }
}

/** The table rows of `lines` as cells, by their first cell. */
function table (lines: string[]): Map<string, string[]> {
  return new Map(lines.filter((l) => l.startsWith('| ')).map((l) => {
    const cells = l.slice(2, -2).split(' | ')
    return [cells[0] as string, cells.slice(1)]
  }))
}

describe('RESULTS.md layout', () => {
  it('puts the sizes across in ascending order and the figures down, one row for a median / max', () => {
    const rows = table(renderBenchmark(lab, floor))
    expect(rows.get('figure')).toEqual(['N=3', 'N=10', 'target'])
    expect(rows.get('agentCpuSecondsAtFormation (median / max)')).toEqual(['0.6 / 0.7', '1.2 / 1.4', ''])
    expect(rows.has('nodes')).toBe(false)
    const text = renderBenchmark(lab, floor).join('\n')
    expect(text).toContain('- preset: lab')
    expect(text).not.toContain('rssMb')
  })

  it('marks each size against its target, and only the sizes the target names', () => {
    const rows = table(renderBenchmark(lab, floor))
    expect(rows.get('fromLastStartS.allJoined')).toEqual(['0.8 ✓', '4', '≤ 1.0 s at N=3'])
    expect(rows.get('idleTrafficBytesPerS (median / max)')).toEqual(['400 / 500 ✓', '1100 / 1300 ✗', '≤ 1 KB/s, flat in N'])
  })

  it('reads a figure against the floor of the same size: ratio or difference, with its target', () => {
    const lines = renderBenchmark(lab, floor)
    const rows = table(lines)
    expect(rows.get('↳ all joined ÷ floor all heard')).toEqual(['1.60×', '2.00× ✗', '≤ 1.5 (N=10, 30); ≤ 2.0 (N=50)'])
    expect(rows.get('↳ agent CPU-s until formed ÷ floor CPU-s until all heard')).toEqual(['1.50×', '1.50× ✗', '≤ 1.3 (N=10, 30)'])
    expect(rows.get('↳ RSS after idle − floor RSS')).toEqual(['+10.0 MB', '+16.0 MB', '≤ +10 MB (N=30)'])
    expect(rows.get('↳ election done − floor all heard')).toEqual(['+0.2 s', '+1.0 s', '≤ +2 s (N=30)'])
    // The floor row sits right below its figure.
    const at = lines.findIndex((l) => l.startsWith('| fromLastStartS.allJoined |'))
    expect(lines[at + 1]).toMatch(/^\| ↳ all joined ÷ floor all heard \|/)
    expect(lines.join('\n')).toContain('against floor.ts of the same run')
  })

  it('prefers the per-round floor readings of interleaved rounds, with their range, and hides their raw rows', () => {
    const rounds: StoredResult = {
      ...lab,
      when: '2026-12-05T02:00:00.000Z',
      result: { n30: { nodes: 30, fromLastStartS: { allJoined: 20 }, rounds: 3, floor: { fromLastStartS: { allHeard: 8 } }, vsFloor: { allJoined: { median: 2.4, min: 2.1, max: 2.9 } } } }
    }
    const lines = renderBenchmark(rounds)
    const rows = table(lines)
    expect(rows.get('↳ all joined ÷ floor all heard')).toEqual(['2.40× (2.10×–2.90×) ✗', '≤ 1.5 (N=10, 30); ≤ 2.0 (N=50)'])
    expect(rows.get('floor.fromLastStartS.allHeard')).toEqual(['8', ''])
    expect([...rows.keys()].some((k) => k.startsWith('vsFloor'))).toBe(false)
    expect(lines.join('\n')).toContain('against its own round')
  })

  it('says when the floor was not measured in the same run, and leaves sizes the floor lacks empty', () => {
    const lab30: StoredResult = { ...lab, when: '2026-12-05T01:00:00.000Z', result: { n30: { nodes: 30, fromLastStartS: { allJoined: 9 } } } }
    const lines = renderBenchmark(lab30, floor)
    expect(table(lines).get('↳ all joined ÷ floor all heard')).toEqual(['', '≤ 1.5 (N=10, 30); ≤ 2.0 (N=50)'])
    expect(lines.join('\n')).toContain(`floor.ts measured ${when}, not in the same run`)
  })

  it('renders a benchmark without sizes as one column, a failure and a skip as a line, long arrays as a pointer', () => {
    const plain = table(renderBenchmark({ name: 'token-generate', ok: true, wallMs: 0, when, result: { runs: 10, cold: { medianMs: 71 }, list: [1, 2], long: Array.from({ length: 61 }, (_, i) => i), note: 'a | b' } }))
    expect(plain.get('figure')).toEqual(['value'])
    expect(plain.get('cold.medianMs')).toEqual(['71'])
    expect(plain.get('list')).toEqual(['1, 2'])
    expect(plain.get('long')).toEqual(['(61 values, in results.json)'])
    expect(plain.get('note')).toEqual(['a \\| b'])
    expect(renderBenchmark({ name: 'x', ok: false, wallMs: 1, when, error: 'exit 1: boom' }).join('\n')).toContain('Failed: exit 1: boom')
    expect(renderBenchmark({ name: 'lab', ok: true, wallMs: 1, when, result: { skipped: 'needs root' } }).join('\n')).toContain('Skipped: needs root.')
  })

  it('marks the soak against ±5 % and flat fds', () => {
    const soak: StoredResult = { name: 'soak', ok: true, wallMs: 1, when, result: { n10: { nodes: 10, rssMb: { warmup: 99, end: 110, changePct: 11.1 }, fds: { maxAgentRise: 0 } } } }
    const rows = table(renderBenchmark(soak))
    expect(rows.get('rssMb.changePct')).toEqual(['11.1 ✗', 'within ±5 % (warm-up → end)'])
    expect(rows.get('fds.maxAgentRise')).toEqual(['0 ✓', '≤ 2 (flat)'])
  })

  it('writes every benchmark, the profile pointer, and keeps the hand-kept section as it is', () => {
    const byHand = '## Figures measured by hand\n\nSome | figure | kept.\n'
    const file: ResultsFile = { when, node: 'v24.21.0', cpus: 2, results: [floor, lab] }
    const md = renderResults(file, byHand)
    expect(md).toContain('## floor\n')
    expect(md).toContain('## lab\n')
    expect(md).toContain('## Where the CPU goes')
    expect(md).toContain('[README.md](README.md)')
    expect(md.endsWith('## Figures measured by hand\n\nSome | figure | kept.\n')).toBe(true)
    expect(byHandSection(md)).toBe(byHand.trimEnd())
    expect(byHandSection('# Benchmarks\n\nno such section\n')).toBe('')
  })
})
