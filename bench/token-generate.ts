// Wall time of `kairos-p2p token generate`, spawn to exit, as a user runs it from a
// checkout (bin/kairos-p2p.js on the project's Node 24, TypeScript sources). Cold:
// no compile cache; warm: NODE_COMPILE_CACHE in a fresh directory, first run not
// counted. Prints one JSON line. Target (issue 2): ≤ 300 ms.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { execa } from 'execa'

const RUNS = 10
const TARGET_MS = 300

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const bin = join(root, 'bin', 'kairos-p2p.js')

async function once (env: Record<string, string>): Promise<number> {
  const started = performance.now()
  const run = await execa(process.execPath, [bin, 'token', 'generate'], { env: { ...env }, extendEnv: false, cwd: root, reject: false })
  const ms = performance.now() - started
  if (run.exitCode !== 0 || !/^kp1p[a-z0-9]{58}$/.test(run.stdout.trim())) {
    throw new Error(`'kairos-p2p token generate' failed (exit ${String(run.exitCode)}): ${run.stderr.trim()}`)
  }
  return ms
}

function summary (samples: number[]): { medianMs: number, minMs: number, maxMs: number } {
  const sorted = [...samples].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  const median = sorted.length % 2 === 1 ? sorted[mid] as number : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
  const round = (n: number): number => Math.round(n)
  return { medianMs: round(median), minMs: round(sorted[0] as number), maxMs: round(sorted.at(-1) as number) }
}

const baseEnv = { PATH: process.env.PATH ?? '' }
const cold: number[] = []
for (let i = 0; i < RUNS; i++) cold.push(await once(baseEnv))

const cache = await mkdtemp(join(tmpdir(), 'kairos-p2p-bench-cc-'))
const warm: number[] = []
try {
  await once({ ...baseEnv, NODE_COMPILE_CACHE: cache })
  for (let i = 0; i < RUNS; i++) warm.push(await once({ ...baseEnv, NODE_COMPILE_CACHE: cache }))
} finally {
  await rm(cache, { recursive: true, force: true })
}

const coldSummary = summary(cold)
process.stdout.write(JSON.stringify({
  runs: RUNS,
  targetMs: TARGET_MS,
  cold: coldSummary,
  warmCompileCache: summary(warm),
  withinTarget: coldSummary.medianMs <= TARGET_MS
}) + '\n')
