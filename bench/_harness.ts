// The frame the lab benchmarks share: root only, one run per site size (or several
// rounds of every size), Ctrl-C stops between runs (each run takes its own lab down),
// and the JSON result on the last line.
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'

/** What a benchmark runs: the figures it reports whatever the size, and one run per size. */
export interface SizedBenchmark {
  nodes: readonly number[]
  head?: Record<string, unknown>
  runOnce: (n: number, signal: AbortSignal) => Promise<Record<string, unknown>>
  /**
   * Rounds of every size (default 1): round after round, each running every size in
   * turn, so the machine's drift spreads over the sizes alike; `combine` then makes the
   * runs of one size (failed ones as `{ error }`) one result.
   */
  rounds?: number
  combine?: (n: number, runs: Array<Record<string, unknown>>) => Record<string, unknown>
}

/**
 * Without root, prints `{"skipped":"needs root"}`. Otherwise calls `prepare` (it reads
 * the options, so a bad one fails before any lab is built), runs each size in turn
 * (a failed run is reported as `{ error }`, and the others still run) and prints the
 * result as one JSON line: `head`, then `n<N>` for each size.
 */
export async function runEachSize (prepare: () => SizedBenchmark, progress: (msg: string) => void): Promise<void> {
  const bench = benchOptions(prepare)
  if (process.getuid?.() !== 0) {
    process.stdout.write(JSON.stringify({ skipped: 'needs root' }) + '\n')
    return
  }
  const abort = new AbortController()
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { abort.abort(new Error(`${sig} received`)) })
  const result: Record<string, unknown> = { ...bench.head }
  const rounds = bench.rounds ?? 1
  const runs = new Map<number, Array<Record<string, unknown>>>(bench.nodes.map((n) => [n, []]))
  for (let round = 1; round <= rounds && !abort.signal.aborted; round++) {
    for (const n of bench.nodes) {
      if (abort.signal.aborted) break
      let run: Record<string, unknown>
      try {
        run = await bench.runOnce(n, abort.signal)
      } catch (err) {
        run = { error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) }
      }
      runs.get(n)?.push(run)
      progress(`N=${n}${rounds > 1 ? ` (round ${round} of ${rounds})` : ''}: ${JSON.stringify(run)}`)
    }
  }
  for (const [n, done] of runs) {
    if (done.length === 0) continue
    result[`n${n}`] = bench.combine === undefined ? done[0] : bench.combine(n, done)
  }
  process.stdout.write(JSON.stringify(result) + '\n')
}

/**
 * Reads a benchmark's command line with `read`. `--help` (or `-h`) prints the script's
 * usage and exits 0; an option `read` rejects (unknown, or a bad value) prints what is
 * wrong and the usage, and exits 2, before any lab is built. The usage is the script's
 * own header comment: its lines that run it (`… node bench/<name>.ts …`).
 */
export function benchOptions<T> (read: () => T, script: string = process.argv[1] ?? ''): T {
  const usage = (): string => {
    let text = ''
    try { text = readFileSync(script, 'utf8') } catch {}
    const lines = text.split('\n').filter((l) => l.startsWith('//') && l.includes(`node bench/${basename(script)}`)).map((l) => l.replace(/^\/\/\s*/, '  '))
    return lines.length === 0 ? '' : `usage:\n${lines.join('\n')}\n`
  }
  const args = process.argv.slice(2)
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(usage() || `${basename(script)}: no usage line in its header\n`)
    process.exit(0)
  }
  try {
    return read()
  } catch (err) {
    process.stderr.write(`${basename(script)}: ${err instanceof Error ? err.message : String(err)}\n${usage()}`)
    process.exit(2)
  }
}

/** Sleeps on the system clock; rejects when `signal` aborts. */
export async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  const { systemClock } = await import('../util/clock.ts')
  await systemClock.sleep(ms, signal)
}
