// The frame the lab benchmarks share: root only, one run per site size, Ctrl-C stops
// between runs (each run takes its own lab down), and the JSON result on the last line.

/** What a benchmark runs: the figures it reports whatever the size, and one run per size. */
export interface SizedBenchmark {
  nodes: readonly number[]
  head?: Record<string, unknown>
  runOnce: (n: number, signal: AbortSignal) => Promise<Record<string, unknown>>
}

/**
 * Without root, prints `{"skipped":"needs root"}`. Otherwise calls `prepare` (it reads
 * the options, so a bad one fails before any lab is built), runs each size in turn
 * (a failed run is reported as `{ error }`, and the others still run) and prints the
 * result as one JSON line: `head`, then `n<N>` for each size.
 */
export async function runEachSize (prepare: () => SizedBenchmark, progress: (msg: string) => void): Promise<void> {
  if (process.getuid?.() !== 0) {
    process.stdout.write(JSON.stringify({ skipped: 'needs root' }) + '\n')
    return
  }
  const bench = prepare()
  const abort = new AbortController()
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { abort.abort(new Error(`${sig} received`)) })
  const result: Record<string, unknown> = { ...bench.head }
  for (const n of bench.nodes) {
    if (abort.signal.aborted) break
    try {
      result[`n${n}`] = await bench.runOnce(n, abort.signal)
    } catch (err) {
      result[`n${n}`] = { error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) }
    }
    progress(`N=${n}: ${JSON.stringify(result[`n${n}`])}`)
  }
  process.stdout.write(JSON.stringify(result) + '\n')
}

/** Sleeps on the system clock; rejects when `signal` aborts. */
export async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  const { systemClock } = await import('../util/clock.ts')
  await systemClock.sleep(ms, signal)
}
