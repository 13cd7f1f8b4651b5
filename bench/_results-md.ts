// bench/RESULTS.md from bench/results.json: one table per benchmark, the site size N
// across and the figures down, each figure with its target and, where the stack floor
// (floor.ts) measured the same thing, its ratio to the floor on a row of its own. Pure:
// run.ts writes what this returns.

/** One benchmark's entry in results.json. */
export interface StoredResult { name: string, ok: boolean, result?: unknown, error?: string, wallMs: number, when: string }

/** bench/results.json. */
export interface ResultsFile { when: string, node: string, cpus: number, results: StoredResult[] }

/** What a figure must reach: `text` for the table, `met` to mark each size ✓ or ✗ (sizes without it unmarked). */
export interface Target { text: string, met?: (value: number, n: number) => boolean | undefined }

/**
 * A figure read against the floor: `lab` (a path under `n<N>` of this benchmark) divided
 * by, or less, `floor` (a path under `n<N>` of floor.ts) of the same size.
 */
export interface FloorPair { key: string, lab: string, floor: string, label: string, op: 'ratio' | 'minus', unit?: string, target?: Target }

const only = (ns: readonly number[], max: number) => (v: number, n: number): boolean | undefined => ns.includes(n) ? v <= max : undefined

/**
 * Targets of the formation issue (issue 18) and the soak, by benchmark and figure path
 * (as under `n<N>` in results.json; a `{ median, max }` figure by its median).
 */
export const TARGETS: Readonly<Record<string, Readonly<Record<string, Target>>>> = {
  lab: {
    'fromLastStartS.allJoined': { text: '≤ 1.0 s at N=3', met: only([3], 1.0) },
    'idleTrafficBytesPerS': { text: '≤ 1 KB/s, flat in N', met: (v) => v <= 1024 }
  },
  soak: {
    'rssMb.changePct': { text: 'within ±5 % (warm-up → end)', met: (v) => Math.abs(v) <= 5 },
    'fds.maxAgentRise': { text: '≤ 2 (flat)', met: (v) => v <= 2 }
  }
}

/** Figures of a benchmark read against the floor's of the same size (issue 18's targets). */
export const FLOOR_PAIRS: Readonly<Record<string, readonly FloorPair[]>> = {
  lab: [
    { key: 'cpu', lab: 'agentCpuSecondsAtFormation', floor: 'cpuSecondsAtHeard', label: 'agent CPU-s until formed ÷ floor CPU-s until all heard', op: 'ratio', target: { text: '≤ 1.3 (N=10, 30)', met: only([10, 30], 1.3) } },
    { key: 'allJoined', lab: 'fromLastStartS.allJoined', floor: 'fromLastStartS.allHeard', label: 'all joined ÷ floor all heard', op: 'ratio', target: { text: '≤ 1.5 (N=10, 30); ≤ 2.0 (N=50)', met: (v, n) => n === 10 || n === 30 ? v <= 1.5 : n === 50 ? v <= 2 : undefined } },
    { key: 'electionDone', lab: 'fromLastStartS.electionDone', floor: 'fromLastStartS.allHeard', label: 'election done − floor all heard', op: 'minus', unit: ' s', target: { text: '≤ +2 s (N=30)', met: only([30], 2) } },
    { key: 'rssAfterIdle', lab: 'memoryMbAfterIdle.rss', floor: 'memoryMbAtHeard.rss', label: 'RSS after idle − floor RSS', op: 'minus', unit: ' MB', target: { text: '≤ +10 MB (N=30)', met: only([30], 10) } }
  ]
}

/** A figure's rows: `{ median, max }` makes one row "median / max" (its value the median). */
interface Row { path: string, label: string, cells: Map<number | 'all', string>, value: Map<number | 'all', number> }

const SIZE = /^n(\d+)$/
/** Arrays longer than this are left to results.json. */
const MAX_ARRAY = 12

function cell (v: unknown): string {
  if (v === null || v === undefined) return '—'
  if (Array.isArray(v)) return v.length > MAX_ARRAY ? `(${v.length} values, in results.json)` : v.map((x) => cell(x)).join(', ')
  if (typeof v === 'object') return JSON.stringify(v)
  if (typeof v === 'number') return String(Math.round(v * 100) / 100)
  return String(v).replace(/\|/g, '\\|').replace(/\n/g, ' ')
}

const isStats = (v: unknown): v is { median: unknown, max: unknown } =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && 'median' in v && 'max' in v

/** Leaves of `value` as [path, value]; a `{ median, max }` object is one leaf, its other keys leaves of their own. */
function leaves (value: unknown, prefix = ''): Array<[string, unknown]> {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const out: Array<[string, unknown]> = []
    if (isStats(value)) out.push([prefix, value])
    for (const [k, v] of Object.entries(value)) {
      if (isStats(value) && (k === 'median' || k === 'max' || k === 'min')) continue
      out.push(...leaves(v, prefix === '' ? k : `${prefix}.${k}`))
    }
    return out
  }
  return [[prefix, value]]
}

/** The number a figure is judged by: itself, or the median of a `{ median, max }`. */
export function numberOf (v: unknown): number | undefined {
  if (typeof v === 'number') return v
  if (isStats(v) && typeof v.median === 'number') return v.median
  return undefined
}

/** The value at a dotted `path` under `value`, or undefined. */
export function get (value: unknown, path: string): unknown {
  let at: unknown = value
  for (const k of path.split('.')) {
    if (at === null || typeof at !== 'object') return undefined
    at = (at as Record<string, unknown>)[k]
  }
  return at
}

/** A `{ median, max }` as `median / max`, with `min` as `median (min–max)`. */
function show (v: unknown): string {
  if (!isStats(v)) return cell(v)
  return 'min' in v ? `${cell(v.median)} (${cell(v.min)}–${cell(v.max)})` : `${cell(v.median)} / ${cell(v.max)}`
}

const statsLabel = (v: unknown): string => isStats(v) ? 'min' in v ? ' (median, min–max)' : ' (median / max)' : ''

function mark (target: Target | undefined, v: number | undefined, n: number | 'all'): string {
  if (target?.met === undefined || v === undefined) return ''
  const ok = target.met(v, n === 'all' ? 0 : n)
  return ok === undefined ? '' : ok ? ' ✓' : ' ✗'
}

/** The markdown of one benchmark; `floor` is floor.ts's entry, when there is one. */
export function renderBenchmark (r: StoredResult, floor?: StoredResult): string[] {
  const out = [`## ${r.name}`, '', `Measured ${r.when}${r.wallMs > 0 ? ` (${Math.round(r.wallMs / 1000)} s)` : ''}.`, '']
  if (!r.ok) return [...out, `Failed: ${r.error ?? ''}`, '']
  const result = r.result
  if (result === null || typeof result !== 'object' || Array.isArray(result)) return [...out, `Result: ${cell(result)}`, '']
  const entries = Object.entries(result)
  if (entries.length === 1 && entries[0]?.[0] === 'skipped') return [...out, `Skipped: ${cell(entries[0][1])}.`, '']
  const sizes = entries.flatMap(([k]) => { const m = SIZE.exec(k); return m === null ? [] : [Number(m[1])] }).sort((a, b) => a - b)
  // A benchmark's own `targets` (in its head) are older than TARGETS here and are not repeated.
  const head = entries.filter(([k]) => !SIZE.test(k) && k !== 'targets')
  const targets = TARGETS[r.name] ?? {}
  const rows: Row[] = []
  const rowOf = (path: string): Row => {
    let row = rows.find((x) => x.path === path)
    if (row === undefined) {
      const sample = sizes.length === 0 ? get(result, path) : sizes.map((n) => get((result as Record<string, unknown>)[`n${n}`], path)).find((v) => v !== undefined)
      row = { path, label: `${path}${statsLabel(sample)}`, cells: new Map(), value: new Map() }
      rows.push(row)
    }
    return row
  }
  if (sizes.length === 0) {
    for (const [path, v] of leaves(result)) {
      const row = rowOf(path)
      row.cells.set('all', show(v))
      const x = numberOf(v)
      if (x !== undefined) row.value.set('all', x)
    }
  } else {
    if (head.length > 0) {
      out.push(...head.flatMap(([k, v]) => leaves(v, k)).map(([k, v]) => `- ${k}: ${show(v)}`), '')
    }
    for (const n of sizes) {
      const at = (result as Record<string, unknown>)[`n${n}`]
      for (const [path, v] of leaves(at)) {
        const row = rowOf(path)
        row.cells.set(n, show(v))
        const x = numberOf(v)
        if (x !== undefined) row.value.set(n, x)
      }
    }
  }
  const cols: Array<number | 'all'> = sizes.length === 0 ? ['all'] : sizes
  const interleavedFloor = sizes.some((n) => get((result as Record<string, unknown>)[`n${n}`], 'vsFloor') !== undefined)
  const pairs = floor?.ok === true || interleavedFloor ? FLOOR_PAIRS[r.name] ?? [] : []
  const sameRun = floor !== undefined && floor.when === r.when
  const withTargets = Object.keys(targets).length > 0 || pairs.length > 0
  const line = (label: string, cells: string[], target: string | undefined): string => `| ${[label, ...cells, ...withTargets ? [target ?? ''] : []].join(' | ')} |`
  out.push(line('figure', sizes.length === 0 ? ['value'] : sizes.map((n) => `N=${n}`), 'target'), `| --- | ${cols.map(() => '---:').join(' | ')} |${withTargets ? ' --- |' : ''}`)
  for (const row of rows) {
    if (sizes.length > 0 && (row.path === 'nodes' || row.path.startsWith('vsFloor.'))) continue
    const t = targets[row.path]
    out.push(line(row.label, cols.map((n) => `${row.cells.get(n) ?? ''}${mark(t, row.value.get(n), n)}`), t?.text))
    for (const p of pairs.filter((x) => x.lab === row.path)) {
      const vals = cols.map((n) => {
        if (n === 'all') return ''
        const at = (result as Record<string, unknown>)[`n${n}`]
        const fmt = (v: number): string => p.op === 'ratio' ? `${v.toFixed(2)}×` : `${v >= 0 ? '+' : ''}${v.toFixed(1)}${p.unit ?? ''}`
        // lab.ts's own rounds, each against a floor run of the same round: median (min–max).
        const own = get(at, `vsFloor.${p.key}`)
        if (isStats(own) && typeof own.median === 'number') {
          const range = 'min' in own && typeof own.min === 'number' && typeof own.max === 'number' ? ` (${fmt(own.min)}–${fmt(own.max)})` : ''
          return `${fmt(own.median)}${range}${mark(p.target, own.median, n)}`
        }
        const a = row.value.get(n)
        const b = numberOf(get((floor?.result as Record<string, unknown> | undefined)?.[`n${n}`], p.floor))
        if (a === undefined || b === undefined || (p.op === 'ratio' && b === 0)) return ''
        const v = p.op === 'ratio' ? a / b : a - b
        return `${fmt(v)}${mark(p.target, Math.round(v * 100) / 100, n)}`
      })
      out.push(line(`↳ ${p.label}`, vals, p.target?.text))
    }
  }
  out.push('')
  if (interleavedFloor) {
    out.push('↳ rows: each round of this benchmark ran the floor (floor.ts) at the same size right before the lab, and each row is the median (min–max) over the rounds of the figure against its own round\'s floor; the `floor.*` rows are the floor\'s figures, medians over the same rounds.', '')
  } else if (pairs.length > 0) {
    out.push(sameRun
      ? `↳ rows: against floor.ts of the same run (${floor.when}).`
      : `↳ rows: against floor.ts measured ${floor?.when ?? '?'}, not in the same run as this one: the ratio also carries the machine's drift between the two.`, '')
  }
  return out
}

/**
 * The whole RESULTS.md: a header, how to read it, one section per benchmark, then
 * `byHand` (the closing section of figures measured by hand, kept as it is).
 */
export function renderResults (file: ResultsFile, byHand: string): string {
  const floor = file.results.find((r) => r.name === 'floor')
  const md = [
    '# Benchmarks',
    '',
    `Last written ${file.when} on ${file.cpus} cores, Node ${file.node}, by \`npm run bench\`; each benchmark says when it was measured (\`npm run bench -- <name>\` reruns one and keeps the others). The raw numbers are in [results.json](results.json), what each figure means in [README.md](README.md).`,
    '',
    'How to read the tables: the site size N across, the figures down (names as in results.json, the unit in the name: `S` seconds, `Ms` milliseconds, `Mb` MB, `Pct` %); `a / b` is the median / max over the agents (or runs), `a (b–c)` the median and range. ✓ / ✗: the figure meets / misses its target at that size. A `↳` row reads the figure above against the stack floor (floor.ts) of the same size, what libp2p alone costs on this machine: a ratio to a figure measured in the same run does not drift with the machine\'s speed, an absolute time does.',
    '',
    '## Where the CPU goes',
    '',
    'The profile summary (CPU profiles of one agent through a formation, the top self-time functions and what they do per peer) is in [README.md](README.md), its profile section.',
    ''
  ]
  for (const r of file.results) md.push(...renderBenchmark(r, r.name === 'floor' ? undefined : floor))
  if (byHand.trim() !== '') md.push(byHand.trimEnd(), '')
  return md.join('\n')
}

/** The heading of RESULTS.md's hand-kept section, which a run keeps. */
export const BY_HAND_HEADING = '## Figures measured by hand'

/** The hand-kept closing section of `text` (from its heading to the end), or ''. */
export function byHandSection (text: string): string {
  const at = text.indexOf(`\n${BY_HAND_HEADING}\n`)
  return at < 0 ? '' : text.slice(at + 1).trimEnd()
}
