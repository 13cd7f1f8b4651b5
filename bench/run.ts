// `npm run bench`: runs every benchmark script in this folder (or those named on
// the command line), each in its own Node 24 process so one cannot skew another,
// collects the JSON each prints on its last stdout line, and writes
// bench/results.json and bench/RESULTS.md, keeping RESULTS.md's section of figures
// measured by hand. Naming benchmarks reruns only those and keeps the other entries
// of an earlier results.json.
import { readFile, readdir, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { execa } from 'execa'

const here = dirname(fileURLToPath(import.meta.url))
const wanted = process.argv.slice(2)
const scripts = (await readdir(here))
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !f.startsWith('_'))
  .filter((f) => wanted.length === 0 || wanted.includes(f.replace(/\.ts$/, '')))
  .sort()

interface BenchResult { name: string, ok: boolean, result?: unknown, error?: string, wallMs: number }
const results: BenchResult[] = []
for (const file of scripts) {
  const name = file.replace(/\.ts$/, '')
  const started = performance.now()
  process.stderr.write(`bench ${name} …\n`)
  const run = await execa(process.execPath, [join(here, file)], { reject: false, all: false, timeout: 20 * 60_000 })
  const wallMs = Math.round(performance.now() - started)
  const last = run.stdout.trim().split('\n').at(-1) ?? ''
  try {
    if (run.exitCode !== 0) throw new Error(`exit ${String(run.exitCode)}: ${run.stderr.trim().split('\n').slice(-5).join(' | ')}`)
    results.push({ name, ok: true, result: JSON.parse(last) as unknown, wallMs })
  } catch (err) {
    results.push({ name, ok: false, error: err instanceof Error ? err.message : String(err), wallMs })
  }
  process.stderr.write(`bench ${name}: ${results.at(-1)?.ok === true ? 'ok' : 'FAILED'} (${wallMs} ms)\n`)
}

/** The heading of bench/RESULTS.md's hand-kept section, which a run keeps. */
const BY_HAND_HEADING = '## Figures measured by hand'

interface StoredResult extends BenchResult { when: string }
const when = new Date().toISOString()
let earlier: StoredResult[] = []
if (wanted.length > 0) {
  try {
    earlier = (JSON.parse(await readFile(join(here, 'results.json'), 'utf8')) as { results: StoredResult[] }).results
  } catch { earlier = [] }
}
const merged: StoredResult[] = [
  ...earlier.filter((e) => !results.some((r) => r.name === e.name)),
  ...results.map((r) => ({ ...r, when }))
].sort((a, b) => a.name.localeCompare(b.name))
const out = { when, node: process.version, cpus: (await import('node:os')).cpus().length, results: merged }
await writeFile(join(here, 'results.json'), JSON.stringify(out, null, 2) + '\n')

function rows (value: unknown, prefix = ''): Array<[string, string]> {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    return Object.entries(value).flatMap(([k, v]) => rows(v, prefix === '' ? k : `${prefix}.${k}`))
  }
  return [[prefix, Array.isArray(value) ? JSON.stringify(value) : String(value)]]
}
const md = [`# Benchmarks`, '', `Measured ${out.when} on ${out.cpus} cores, Node ${out.node}, by \`npm run bench\`.`, '']
for (const r of merged) {
  md.push(`## ${r.name}`, '', `Measured ${r.when}.`, '')
  if (!r.ok) { md.push(`Failed: ${r.error ?? ''}`, ''); continue }
  md.push('| metric | value |', '| --- | --- |', ...rows(r.result).map(([k, v]) => `| ${k} | ${v} |`), '')
}
// The figures measured by hand (cited by docs/decisions.md) are not rerun here: kept as they are.
const byHand = await readFile(join(here, 'RESULTS.md'), 'utf8').then((text) => {
  const at = text.indexOf(`\n${BY_HAND_HEADING}\n`)
  return at < 0 ? '' : text.slice(at + 1).trimEnd()
}, () => '')
if (byHand !== '') md.push(byHand, '')
await writeFile(join(here, 'RESULTS.md'), md.join('\n'))
process.stdout.write(md.join('\n') + '\n')
process.exitCode = results.every((r) => r.ok) ? 0 : 1
