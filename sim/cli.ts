// `npm run sim -- --seeds 10000 [--seed N] [--nodes N] [--minimum-nodes N] [--faults full|none|clean-split] [--preset lab|lan] [--adversary [--sybils N]] [--verbose]`
// Runs seeded simulations of the roles layer and prints one line per failing seed
// with the command that replays it; exits 1 if any seed violated an invariant.
import { parseArgs } from 'node:util'
import { PRESETS } from '../config/presets.ts'
import type { FaultMix } from './faults.ts'
import { replayCommand, runSimulation } from './sim.ts'

const usage = 'usage: npm run sim -- [--seeds N] [--start N] [--seed N] [--nodes N] [--minimum-nodes N] [--faults full|none|clean-split] [--preset lab|lan] [--adversary [--sybils N]] [--verbose]\n'
const parsed = (() => {
  try {
    return parseArgs({
      options: {
        seeds: { type: 'string', default: '1000' },
        seed: { type: 'string' },
        start: { type: 'string', default: '1' },
        nodes: { type: 'string' },
        'minimum-nodes': { type: 'string' },
        faults: { type: 'string', default: 'full' },
        preset: { type: 'string', default: 'lab' },
        adversary: { type: 'boolean', default: false },
        sybils: { type: 'string' },
        verbose: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false }
      }
    })
  } catch (err) {
    process.stderr.write(`sim: ${err instanceof Error ? err.message : String(err)}\n${usage}`)
    process.exit(2)
  }
})()
const { values } = parsed
if (values.help) { process.stdout.write(usage); process.exit(0) }
const int = (name: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined
  const x = Number(v)
  if (!Number.isSafeInteger(x) || x < 0) { process.stderr.write(`sim: --${name} must be a non-negative integer, got ${v}\n`); process.exit(2) }
  return x
}
const faults = values.faults as FaultMix
if (!['full', 'none', 'clean-split'].includes(faults)) { process.stderr.write(`sim: --faults must be full, none or clean-split, got ${values.faults}\n`); process.exit(2) }
const preset = values.preset === 'lan' ? PRESETS.lan : values.preset === 'lab' ? PRESETS.lab : undefined
if (preset === undefined) { process.stderr.write(`sim: --preset must be lab or lan, got ${values.preset}\n`); process.exit(2) }
const one = int('seed', values.seed)
const seeds = one === undefined ? Array.from({ length: int('seeds', values.seeds) ?? 1000 }, (_, i) => (int('start', values.start) ?? 1) + i) : [one]
const nodes = int('nodes', values.nodes)
const minimumNodes = int('minimum-nodes', values['minimum-nodes'])
const sybils = int('sybils', values.sybils)

const started = performance.now()
let failed = 0
let decisions = 0
let ties = 0
let deaths = 0
let hostileElected = 0
/** Seeds by the ballots their election took (distinct proposals before the first record). */
const ballotRuns = new Map<number, number>()
for (const seed of seeds) {
  const r = runSimulation({ seed, timing: preset, faults, adversary: values.adversary, ...(sybils === undefined ? {} : { sybils }), ...(nodes === undefined ? {} : { nodes }), ...(minimumNodes === undefined ? {} : { minimumNodes }) })
  decisions += r.decisions
  ties += r.ties
  deaths += r.deaths
  if (r.hostileElected) hostileElected++
  if (r.electionMs !== undefined) ballotRuns.set(r.ballots, (ballotRuns.get(r.ballots) ?? 0) + 1)
  if (values.verbose || seeds.length === 1) {
    process.stdout.write(`seed ${seed}: ${r.description}\n  inits=${r.inits.length}${r.hostile.length > 0 ? ` attacks=${r.attacks}` : ''} election=${r.electionMs ?? '-'}ms formation=${r.formationMs ?? '-'}ms end=${r.endedAt}ms decisions=${r.decisions} ballots=${r.ballots} ties=${r.ties} deaths=${r.deaths}\n`)
  }
  if (r.violations.length > 0) {
    failed++
    process.stdout.write(`FAIL seed ${seed}: ${r.violations.slice(0, 3).join(' | ')}\n  ${r.description}\n  replay: ${replayCommand(r)}\n`)
  }
}
const secs = (performance.now() - started) / 1000
process.stdout.write(`${seeds.length} seed(s), ${failed} failed, ${decisions} decisions, ${ties} merge ties, ${deaths} members declared dead, ${secs.toFixed(1)} s (${(seeds.length / secs).toFixed(1)} seeds/s)${values.adversary ? `, hostile member elected by a real vote in ${hostileElected}` : ''}\n`)
const elections = [...ballotRuns.values()].reduce((a, b) => a + b, 0)
if (elections > 0) process.stdout.write(`ballots per election: ${[...ballotRuns].sort((a, b) => a[0] - b[0]).map(([b, k]) => `${b}: ${k}`).join(', ')} (first ballot in ${ballotRuns.get(1) ?? 0} of ${elections})\n`)
process.exitCode = failed === 0 ? 0 : 1
