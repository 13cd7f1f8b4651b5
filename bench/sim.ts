// Simulated formation with the `lan` timing: for N = 3, 10, 50, 200 nodes booting
// together on a clean network, the simulated time from the last boot to the first
// cluster record (election) and to every node joined (formation, including a
// simulated hand-off of 20–2000 ms per node), and the wall time of one run.
// Prints one JSON line.
import { PRESETS } from '../config/presets.ts'
import { runSimulation } from '../sim/sim.ts'

const sizes = [3, 10, 50, 200]
const runsFor = (n: number): number => (n >= 200 ? 3 : 5)
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] ?? NaN
}

const result: Record<string, unknown> = { timing: 'lan', minimumNodes: 'floor(N/2)+1' }
for (const n of sizes) {
  const election: number[] = []
  const formation: number[] = []
  const wall: number[] = []
  const decisions: number[] = []
  for (let seed = 1; seed <= runsFor(n); seed++) {
    const started = performance.now()
    const r = runSimulation({ seed, nodes: n, minimumNodes: Math.floor(n / 2) + 1, timing: PRESETS.lan, faults: 'none' })
    wall.push(performance.now() - started)
    if (r.violations.length > 0) throw new Error(`N=${n} seed ${seed}: ${r.violations.join('; ')}`)
    election.push(r.electionMs ?? NaN)
    formation.push(r.formationMs ?? NaN)
    decisions.push(r.decisions)
  }
  result[`n${n}`] = {
    runs: wall.length,
    electionMsMedian: median(election),
    formationMsMedian: median(formation),
    formationMsMax: Math.max(...formation),
    wallMsPerRun: Math.round(median(wall)),
    decisionsPerRun: median(decisions)
  }
}
process.stdout.write(JSON.stringify(result) + '\n')
