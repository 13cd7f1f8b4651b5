// `npm run bench`: runs every benchmark script in this folder (or those named on
// the command line), each in its own Node 24 process so one cannot skew another,
// collects the JSON each prints on its last stdout line, and writes
// bench/results.json and bench/RESULTS.md (bench/_results-md.ts), keeping RESULTS.md's
// section of figures measured by hand. A benchmark not run this time (not named, or the
// soak left out) keeps its entry of the earlier results.json, with the time it was
// measured. The soak (soak.ts, an hour by default) runs only when named or with
// KAIROS_BENCH_SOAK=1. `npm run bench -- --md` only writes RESULTS.md again from
// results.json.
import { readFile, readdir, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { execa } from 'execa'
import { byHandSection, renderResults, type ResultsFile, type StoredResult } from './_results-md.ts'

const here = dirname(fileURLToPath(import.meta.url))
const args = process.argv.slice(2)
if (args.includes('--help') || args.includes('-h')) {
  process.stdout.write('usage: npm run bench [-- NAME…]   run every benchmark (the soak only with KAIROS_BENCH_SOAK=1), or those named\n       npm run bench -- --md        write RESULTS.md again from results.json\n       npx node bench/NAME.ts --help   one benchmark\'s own options\n')
  process.exit(0)
}
const mdOnly = args.includes('--md')
const wanted = args.filter((a) => a !== '--md')
const all = (await readdir(here)).filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !f.startsWith('_')).map((f) => f.replace(/\.ts$/, ''))
const unknown = wanted.filter((w) => !all.includes(w))
if (unknown.length > 0) {
  process.stderr.write(`no benchmark ${unknown.map((u) => `'${u}'`).join(', ')}; expected some of: ${all.join(', ')}\n`)
  process.exit(2)
}
/** Benchmarks a full run leaves out unless enabled: name → the env variable that enables it. */
const OPT_IN: Record<string, string> = { soak: 'KAIROS_BENCH_SOAK' }
const names = mdOnly
  ? []
  : all.filter((name) => wanted.length > 0 ? wanted.includes(name) : OPT_IN[name] === undefined || process.env[OPT_IN[name]] === '1').sort()

/** The longest one benchmark may run: 20 min; the lab (rounds of four sizes, each with its floor run) 90 min; the scale with the 1 000-member simulation 60; the soak its own length and 20 min more. */
function timeoutMs (name: string): number {
  if (name === 'lab') return 90 * 60_000
  if (name === 'scale' && process.env.KAIROS_BENCH_SCALE_1000 === '1') return 60 * 60_000
  if (name !== 'soak') return 20 * 60_000
  const minutes = Number(process.env.KAIROS_BENCH_SOAK_MINUTES ?? 60)
  return ((Number.isFinite(minutes) && minutes > 0 ? minutes : 60) + 20) * 60_000
}

interface BenchResult { name: string, ok: boolean, result?: unknown, error?: string, wallMs: number }
const results: BenchResult[] = []
for (const name of names) {
  const started = performance.now()
  process.stderr.write(`bench ${name} …\n`)
  const run = await execa(process.execPath, [join(here, `${name}.ts`)], { reject: false, all: false, timeout: timeoutMs(name) })
  const wallMs = Math.round(performance.now() - started)
  const last = run.stdout.trim().split('\n').at(-1) ?? ''
  try {
    const how = run.timedOut ? `timed out after ${timeoutMs(name) / 60_000} min` : `exit ${String(run.exitCode)}`
    if (run.timedOut || run.exitCode !== 0) throw new Error(`${how}: ${run.stderr.trim().split('\n').slice(-5).join(' | ')}`)
    results.push({ name, ok: true, result: JSON.parse(last) as unknown, wallMs })
  } catch (err) {
    results.push({ name, ok: false, error: err instanceof Error ? err.message : String(err), wallMs })
  }
  process.stderr.write(`bench ${name}: ${results.at(-1)?.ok === true ? 'ok' : 'FAILED'} (${wallMs} ms)\n`)
}

const resultsPath = join(here, 'results.json')
const earlierFile = await readFile(resultsPath, 'utf8').then((t) => JSON.parse(t) as ResultsFile, () => undefined)
let out: ResultsFile
if (mdOnly) {
  if (earlierFile === undefined) throw new Error(`${resultsPath}: missing or not JSON; expected the results of an earlier \`npm run bench\``)
  out = earlierFile
} else {
  const when = new Date().toISOString()
  // Entries of benchmarks that still exist and were not run this time stay as measured.
  const earlier = (earlierFile?.results ?? []).filter((e) => all.includes(e.name) && !results.some((r) => r.name === e.name))
  const merged: StoredResult[] = [...earlier, ...results.map((r) => ({ ...r, when }))].sort((a, b) => a.name.localeCompare(b.name))
  out = { when, node: process.version, cpus: (await import('node:os')).cpus().length, results: merged }
  await writeFile(resultsPath, JSON.stringify(out, null, 2) + '\n')
}

// The figures measured by hand (cited by docs/decisions.md) are not rerun here: kept as they are.
const byHand = await readFile(join(here, 'RESULTS.md'), 'utf8').then(byHandSection, () => '')
const md = renderResults(out, byHand)
await writeFile(join(here, 'RESULTS.md'), md)
process.stdout.write(md)
process.exitCode = results.every((r) => r.ok) ? 0 : 1
