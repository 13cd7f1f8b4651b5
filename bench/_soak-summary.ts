// The figures of a soak run from its samples: pure, so they are tested without a lab.
import { stats } from './_proc.ts'

/** One agent at one sampling minute; a reading that failed is undefined. */
export interface AgentSample {
  /** VmRSS, kB. */
  rssKb?: number
  /** RssAnon, kB. */
  anonKb?: number
  /** Entries of /proc/<pid>/fd. */
  fds?: number
  /** utime + stime since spawn, clock ticks. */
  cpuTicks?: number
  /** eth0 rx + tx bytes since the namespace was made. */
  netBytes?: number
}

/** Every agent at one sampling time, `atS` seconds after the site formed. */
export interface SoakSample { atS: number, agents: AgentSample[] }

/** What a soak must hold to pass. */
export interface SoakTarget {
  /** The median agent's RSS at the end within ± this % of its RSS at warm-up. @default 5 */
  rssChangePct: number
  /** No agent ends with more open fds than it had at warm-up + this. @default 2 */
  fdSlack: number
}

export const SOAK_TARGET: SoakTarget = { rssChangePct: 5, fdSlack: 2 }

const round = (x: number, digits = 2): number => Math.round(x * 10 ** digits) / 10 ** digits
const median = (xs: readonly number[]): number | null => stats(xs)?.median ?? null

/** The figures of a soak. */
export interface SoakSummary {
  /** Minutes after formation at which the warm-up sample and the last sample were taken. */
  warmupAtMin: number
  endAtMin: number
  /** Median RSS / private anon of the agents, MB, at warm-up and at the end; `changePct` from one to the other. */
  rssMb: { warmup: number | null, end: number | null, changePct: number | null, maxAgentChangePct: number | null }
  anonMb: { warmup: number | null, end: number | null, changePct: number | null, maxAgentChangePct: number | null }
  /** Open fds per agent, median at the first sample, at warm-up and at the end; the largest rise of one agent after warm-up. */
  fds: { first: number | null, warmup: number | null, end: number | null, maxAgentRise: number | null }
  /** Per minute (between consecutive samples), median over the agents: % of one core and eth0 bytes/s. */
  idleCpuPct: ReturnType<typeof stats>
  idleTrafficBytesPerS: ReturnType<typeof stats>
  /** Median agent at each sample: minute, RSS MB, anon MB, fds (for a plot; results.json keeps it). */
  series: { min: number[], rssMb: Array<number | null>, anonMb: Array<number | null>, fds: Array<number | null> }
  target: SoakTarget
  /** RSS within the target and fds flat; null when some reading is missing. */
  withinTarget: boolean | null
}

/**
 * Summarizes `samples` (in time order, the same agents in the same order in each): the
 * warm-up sample is the first taken at or after `warmupS`.
 */
export function summarizeSoak (samples: readonly SoakSample[], warmupS: number, ticksPerS: number, target: SoakTarget = SOAK_TARGET): SoakSummary {
  const first = samples[0]
  const warm = samples.find((s) => s.atS >= warmupS) ?? samples.at(-1)
  const end = samples.at(-1)
  const mb = (kb: number | undefined): number | undefined => kb === undefined ? undefined : kb / 1024
  const medOf = (s: SoakSample | undefined, pick: (a: AgentSample) => number | undefined): number | null => {
    const xs = (s?.agents ?? []).map(pick).filter((x) => x !== undefined)
    return xs.length === 0 ? null : median(xs)
  }
  const change = (pick: (a: AgentSample) => number | undefined): { warmup: number | null, end: number | null, changePct: number | null, maxAgentChangePct: number | null } => {
    const w = medOf(warm, (a) => mb(pick(a)))
    const e = medOf(end, (a) => mb(pick(a)))
    const perAgent = (end?.agents ?? []).flatMap((a, i) => {
      const b = warm?.agents[i]
      const x = pick(a)
      const y = b === undefined ? undefined : pick(b)
      return x === undefined || y === undefined || y === 0 ? [] : [100 * (x - y) / y]
    })
    return {
      warmup: w === null ? null : round(w),
      end: e === null ? null : round(e),
      changePct: w === null || e === null || w === 0 ? null : round(100 * (e - w) / w, 1),
      maxAgentChangePct: perAgent.length === 0 ? null : round(perAgent.reduce((m, x) => Math.abs(x) > Math.abs(m) ? x : m), 1)
    }
  }
  const rises = (end?.agents ?? []).flatMap((a, i) => {
    const w = warm?.agents[i]?.fds
    return a.fds === undefined || w === undefined ? [] : [a.fds - w]
  })
  const cpuPct: number[] = []
  const bytesPerS: number[] = []
  for (let k = 1; k < samples.length; k++) {
    const a = samples[k - 1] as SoakSample
    const b = samples[k] as SoakSample
    const dt = b.atS - a.atS
    if (dt <= 0) continue
    const cpu = b.agents.flatMap((x, i) => {
      const y = a.agents[i]?.cpuTicks
      return x.cpuTicks === undefined || y === undefined ? [] : [100 * (x.cpuTicks - y) / ticksPerS / dt]
    })
    const net = b.agents.flatMap((x, i) => {
      const y = a.agents[i]?.netBytes
      return x.netBytes === undefined || y === undefined ? [] : [(x.netBytes - y) / dt]
    })
    const c = median(cpu)
    const n = median(net)
    if (c !== null) cpuPct.push(c)
    if (n !== null) bytesPerS.push(n)
  }
  const rssMb = change((a) => a.rssKb)
  const fds = { first: medOf(first, (a) => a.fds), warmup: medOf(warm, (a) => a.fds), end: medOf(end, (a) => a.fds), maxAgentRise: rises.length === 0 ? null : Math.max(...rises) }
  const withinTarget = rssMb.changePct === null || fds.maxAgentRise === null
    ? null
    : Math.abs(rssMb.changePct) <= target.rssChangePct && fds.maxAgentRise <= target.fdSlack
  const r = (x: number | null): number | null => x === null ? null : round(x, 1)
  return {
    warmupAtMin: round((warm?.atS ?? 0) / 60, 1),
    endAtMin: round((end?.atS ?? 0) / 60, 1),
    rssMb,
    anonMb: change((a) => a.anonKb),
    fds,
    idleCpuPct: stats(cpuPct),
    idleTrafficBytesPerS: stats(bytesPerS),
    series: {
      min: samples.map((s) => round(s.atS / 60, 1)),
      rssMb: samples.map((s) => r(medOf(s, (a) => mb(a.rssKb)))),
      anonMb: samples.map((s) => r(medOf(s, (a) => mb(a.anonKb)))),
      fds: samples.map((s) => medOf(s, (a) => a.fds))
    },
    target,
    withinTarget
  }
}

/**
 * One set of agent options a soak compares with others on the same site: Node options,
 * and environment settings (`NAME=value`, e.g. glibc's `MALLOC_TRIM_THRESHOLD_`).
 */
export interface SoakVariant { label: string, nodeArgs: string[], env: Record<string, string> }

/**
 * Parses `--variant` values: words separated by spaces, each `NAME=value` (upper case,
 * digits and `_`) an environment setting, each other word a Node option (starting with
 * `-`); an empty value is Node's defaults with no option.
 */
export function parseSoakVariant (text: string): SoakVariant {
  const nodeArgs: string[] = []
  const env: Record<string, string> = {}
  for (const word of text.split(' ').filter((w) => w !== '')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(word)
    if (m !== null) env[m[1] as string] = m[2] as string
    else if (word.startsWith('-')) nodeArgs.push(word)
    else throw new Error(`--variant '${text}': '${word}' is neither a Node option (-…) nor NAME=value`)
  }
  return { label: text.trim() === '' ? '(no option)' : text.trim(), nodeArgs, env }
}

/** Agent `i` of a site runs variant `i mod k`, so every variant has agents started early and late. */
export function variantOfAgent (i: number, variants: number): number {
  return i % variants
}

/** The samples of the agents that run variant `v` of `k` (in their order). */
export function samplesOfVariant (samples: readonly SoakSample[], v: number, k: number): SoakSample[] {
  return samples.map((s) => ({ atS: s.atS, agents: s.agents.filter((_, i) => variantOfAgent(i, k) === v) }))
}

/**
 * CPU an agent used from its spawn to the first sample (just after the site formed),
 * seconds: median and largest over the agents.
 */
export function formationCpuS (samples: readonly SoakSample[], ticksPerS: number): ReturnType<typeof stats> {
  return stats((samples[0]?.agents ?? []).flatMap((a) => a.cpuTicks === undefined ? [] : [a.cpuTicks / ticksPerS]))
}
