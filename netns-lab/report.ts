/**
 * The lab's formation timeline: per-node events merged into one report (JSON) and
 * drawn as an SVG chart, one row per node, events as marks on a shared time axis.
 * Pure functions of their input.
 */

/** One timestamped event of a node. */
export interface TimelineMark {
  event: string
  /** Wall-clock ms. */
  at: number
}

/** One row of the chart. */
export interface NodeTimeline {
  name: string
  role?: string
  events: TimelineMark[]
}

/** Per event name: how many nodes reached it and when the last one did. */
export interface Milestone {
  event: string
  nodes: number
  /** ms from the report origin to the first node reaching it. */
  firstMs: number
  /** ms from the report origin to the last node reaching it. */
  lastMs: number
}

/** What `lab report` writes as timeline.json. */
export interface TimelineReport {
  labId: string
  generatedAt: number
  /** Earliest event of any node (wall-clock ms); the chart's zero. */
  origin: number
  nodes: NodeTimeline[]
  milestones: Milestone[]
}

/** Event names in the order a healthy node reaches them; they fix colours and milestone order. */
export const EVENT_ORDER = ['spawned', 'started', 'discovered', 'elected', 'credential', 'overlay-up', 'installing', 'joined', 'registered'] as const

const COLORS = ['#888888', '#1f77b4', '#17becf', '#d62728', '#9467bd', '#2ca02c', '#ff7f0e', '#8c564b', '#e377c2', '#bcbd22', '#7f7f7f']

function eventRank (name: string): number {
  const i = (EVENT_ORDER as readonly string[]).indexOf(name)
  return i < 0 ? EVENT_ORDER.length : i
}

/** Builds the report: events sorted per node, origin, and milestones in event order. */
export function buildTimelineReport (labId: string, nodes: readonly NodeTimeline[], generatedAt: number): TimelineReport {
  const rows = nodes.map((n) => ({ ...n, events: [...n.events].filter((e) => Number.isFinite(e.at)).sort((a, b) => a.at - b.at || eventRank(a.event) - eventRank(b.event)) }))
  const all = rows.flatMap((r) => r.events)
  const origin = all.length === 0 ? generatedAt : Math.min(...all.map((e) => e.at))
  const byEvent = new Map<string, number[]>()
  for (const e of all) byEvent.set(e.event, [...(byEvent.get(e.event) ?? []), e.at - origin])
  const milestones = [...byEvent].map(([event, ts]) => ({ event, nodes: ts.length, firstMs: Math.min(...ts), lastMs: Math.max(...ts) }))
    .sort((a, b) => eventRank(a.event) - eventRank(b.event) || a.event.localeCompare(b.event))
  return { labId, generatedAt, origin, nodes: rows, milestones }
}

function xml (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/** A tick step (ms) giving at most ~10 ticks over `spanMs`. */
export function tickStep (spanMs: number): number {
  const steps = [100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 30_000, 60_000, 120_000, 300_000, 600_000, 1_800_000, 3_600_000]
  for (const s of steps) if (spanMs / s <= 10) return s
  return Math.ceil(spanMs / 10 / 3_600_000) * 3_600_000
}

/** Layout of the chart. */
export interface SvgLayout {
  /** @default 960 */
  width?: number
  /** @default 26 */
  rowHeight?: number
  /** Width of the node-name column. @default 140 */
  labelWidth?: number
}

/** Draws the report as a standalone SVG document. */
export function renderTimelineSvg (report: TimelineReport, layout: SvgLayout = {}): string {
  const width = layout.width ?? 960
  const rowH = layout.rowHeight ?? 26
  const labelW = layout.labelWidth ?? 140
  const right = 20
  const top = 56
  const plotW = width - labelW - right
  const names = [...new Set([...EVENT_ORDER, ...report.nodes.flatMap((n) => n.events.map((e) => e.event))])]
    .filter((name) => report.nodes.some((n) => n.events.some((e) => e.event === name)))
  const color = (name: string): string => COLORS[Math.max(0, names.indexOf(name)) % COLORS.length] ?? '#000000'
  const spanRaw = Math.max(0, ...report.nodes.flatMap((n) => n.events.map((e) => e.at - report.origin)))
  const step = tickStep(Math.max(spanRaw, 100))
  const span = Math.max(step, Math.ceil(spanRaw / step) * step)
  const x = (ms: number): number => labelW + (ms / span) * plotW
  const height = top + report.nodes.length * rowH + 40
  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`)
  out.push(`<title>${xml(`kairos-p2p lab ${report.labId}: formation timeline`)}</title>`)
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`)
  out.push(`<text x="10" y="18" font-size="14" font-weight="bold">${xml(`lab ${report.labId}: formation timeline (${report.nodes.length} nodes)`)}</text>`)
  let lx = 10
  for (const name of names) {
    out.push(`<circle cx="${lx + 5}" cy="36" r="5" fill="${color(name)}"/><text x="${lx + 14}" y="40">${xml(name)}</text>`)
    lx += 24 + name.length * 7
  }
  const axisY = top + report.nodes.length * rowH + 6
  for (let t = 0; t <= span; t += step) {
    const tx = x(t).toFixed(1)
    out.push(`<line x1="${tx}" y1="${top - 4}" x2="${tx}" y2="${axisY}" stroke="#e0e0e0"/>`)
    out.push(`<text x="${tx}" y="${axisY + 16}" text-anchor="middle">${xml(`${(t / 1000).toFixed(step < 1000 ? 1 : 0)} s`)}</text>`)
  }
  report.nodes.forEach((node, i) => {
    const y = top + i * rowH + rowH / 2
    if (i % 2 === 1) out.push(`<rect x="0" y="${top + i * rowH}" width="${width}" height="${rowH}" fill="#f6f6f6" fill-opacity="0.6"/>`)
    out.push(`<text x="10" y="${y + 4}">${xml(node.role === undefined ? node.name : `${node.name} (${node.role})`)}</text>`)
    const first = node.events[0]
    const last = node.events[node.events.length - 1]
    if (first !== undefined && last !== undefined) {
      out.push(`<line x1="${x(first.at - report.origin).toFixed(1)}" y1="${y}" x2="${x(last.at - report.origin).toFixed(1)}" y2="${y}" stroke="#bbbbbb" stroke-width="2"/>`)
    }
    for (const e of node.events) {
      const ms = e.at - report.origin
      out.push(`<circle class="mark" data-node="${xml(node.name)}" data-event="${xml(e.event)}" cx="${x(ms).toFixed(1)}" cy="${y}" r="5" fill="${color(e.event)}"><title>${xml(`${node.name} ${e.event} +${(ms / 1000).toFixed(3)} s`)}</title></circle>`)
    }
  })
  out.push(`<line x1="${labelW}" y1="${axisY}" x2="${labelW + plotW}" y2="${axisY}" stroke="#333333"/>`)
  out.push('</svg>')
  return out.join('\n') + '\n'
}
