import { describe, expect, it } from 'vitest'
import { buildTimelineReport, renderTimelineSvg, tickStep } from '../../netns-lab/report.ts'

const nodes = [
  { name: 'n2', role: 'agent', events: [{ event: 'joined', at: 10_900 }, { event: 'started', at: 10_100 }] },
  { name: 'n1', role: 'init', events: [{ event: 'started', at: 10_000 }, { event: 'elected', at: 10_500 }, { event: 'joined', at: 10_700 }] },
  { name: 'n3<x>', events: [] }
]

describe('buildTimelineReport', () => {
  it('sorts events, finds the origin and the per-event milestones in formation order', () => {
    const r = buildTimelineReport('ab1', nodes, 20_000)
    expect(r.origin).toBe(10_000)
    expect(r.nodes[0]?.events.map((e) => e.event)).toEqual(['started', 'joined'])
    expect(r.milestones).toEqual([
      { event: 'started', nodes: 2, firstMs: 0, lastMs: 100 },
      { event: 'elected', nodes: 1, firstMs: 500, lastMs: 500 },
      { event: 'joined', nodes: 2, firstMs: 700, lastMs: 900 }
    ])
  })
  it('uses the generation time as origin when no node has events', () => {
    expect(buildTimelineReport('x', [{ name: 'n1', events: [] }], 5).origin).toBe(5)
  })
})

describe('renderTimelineSvg', () => {
  const svg = renderTimelineSvg(buildTimelineReport('ab1', nodes, 20_000), { width: 600 })

  it('draws one row per node and one mark per event', () => {
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true)
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true)
    expect(svg.match(/class="mark"/g)).toHaveLength(5)
    expect(svg).toContain('n1 (init)')
    expect(svg).toContain('data-node="n2" data-event="joined"')
  })
  it('places marks on a shared time axis: the origin at the label edge, the last event at the right end', () => {
    const cx = (node: string, event: string): number => Number(new RegExp(`data-node="${node}" data-event="${event}" cx="([\\d.]+)"`).exec(svg)?.[1])
    expect(cx('n1', 'started')).toBe(140)
    expect(cx('n2', 'joined')).toBeCloseTo(600 - 20, 1)
    expect(cx('n1', 'elected')).toBeLessThan(cx('n1', 'joined'))
  })
  it('escapes node names', () => {
    expect(svg).toContain('n3&lt;x&gt;')
    expect(svg).not.toContain('n3<x>')
  })
  it('picks readable tick steps', () => {
    expect(tickStep(900)).toBe(100)
    expect(tickStep(4_000)).toBe(500)
    expect(tickStep(95_000)).toBe(10_000)
  })
})
