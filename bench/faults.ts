// Formation under faults in the netns lab (issue 18): how many ballots an election
// takes, how fast a site re-merges after a partition heals, and how fast it forms on
// a lossy segment. Scenarios, each run `--rounds` times (the figures are medians), the
// election `--election-rounds` times (default 10: its target is a count over 10 runs;
// `--rounds` alone sets both):
//   - election: N agents (default 30) start at once; reported: ballots stood (distinct
//     proposals in the agents' election log) and proposers, the round of the ballot most
//     voters accepted, and the election done on every node after the last start.
//     Target: one ballot.
//   - heal: 7 agents, n1-n3 cut off from n4-n7 from boot; the majority side forms; the
//     partition is healed 30 s (`--partition-seconds`) after the last start. Reported:
//     heal → every node sees every other alive, heal → every node joined. Target ≤ 5 s.
//   - loss: 10 agents on a segment with 30 % packet loss (`--loss`). Reported: every node
//     joined after the last start. Target ≤ 10 s.
// Agents log at debug level (the election log counts ballots); the lab's poll costs CPU,
// so it polls every `--poll-ms` (default 500). Needs root; prints {"skipped":"needs root"}
// otherwise. Progress goes to stderr; the last stdout line is the JSON result.
//
//   npx node bench/faults.ts [--scenarios election,heal,loss] [--rounds 3] [--election-rounds 10] [--election-nodes 30] [--partition-seconds 30] [--loss 30] [--timeout-seconds 240] [--poll-ms 500]
// or through `npm run bench faults`, with KAIROS_BENCH_FAULTS_SCENARIOS / KAIROS_BENCH_FAULTS_ROUNDS /
// KAIROS_BENCH_FAULTS_ELECTION_ROUNDS in
// the env; KAIROS_BENCH_LAB_REPO runs another checkout's agents (A/B runs).
import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { benchOptions, sleep } from './_harness.ts'
import { secs } from './_proc.ts'

const SCENARIOS = ['election', 'heal', 'loss'] as const
/** Elections a run holds unless told: the target (one ballot in ≥ 9 runs of 10) is a count over 10. */
const ELECTION_ROUNDS = 10
type Scenario = typeof SCENARIOS[number]

interface Options { scenarios: Scenario[], rounds: number, electionRounds: number, electionNodes: number, partitionMs: number, lossPct: number, timeoutMs: number, pollMs: number }

function options (): Options {
  const { values } = parseArgs({
    options: {
      scenarios: { type: 'string' },
      rounds: { type: 'string' },
      'election-rounds': { type: 'string' },
      'election-nodes': { type: 'string' },
      'partition-seconds': { type: 'string' },
      loss: { type: 'string' },
      'timeout-seconds': { type: 'string' },
      'poll-ms': { type: 'string' }
    }
  })
  const env = process.env
  const scenarios = (values.scenarios ?? env.KAIROS_BENCH_FAULTS_SCENARIOS ?? SCENARIOS.join(',')).split(',').map((s) => s.trim())
  for (const s of scenarios) if (!(SCENARIOS as readonly string[]).includes(s)) throw new Error(`--scenarios: '${s}' is not a scenario; expected a comma-separated list of ${SCENARIOS.join(', ')}`)
  const int = (name: string, v: string | undefined, def: number, min: number, max: number): number => {
    const n = v === undefined ? def : Number(v)
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} '${String(v)}': expected an integer from ${min} to ${max}`)
    return n
  }
  const rawRounds = values.rounds ?? env.KAIROS_BENCH_FAULTS_ROUNDS
  const rounds = int('--rounds', rawRounds, 3, 1, 100)
  return {
    scenarios: scenarios as Scenario[],
    rounds,
    electionRounds: int('--election-rounds', values['election-rounds'] ?? env.KAIROS_BENCH_FAULTS_ELECTION_ROUNDS, rawRounds === undefined ? ELECTION_ROUNDS : rounds, 1, 100),
    electionNodes: int('--election-nodes', values['election-nodes'], 30, 3, 60),
    partitionMs: int('--partition-seconds', values['partition-seconds'], 30, 1, 600) * 1000,
    lossPct: int('--loss', values.loss, 30, 0, 90),
    timeoutMs: int('--timeout-seconds', values['timeout-seconds'], 240, 10, 3600) * 1000,
    pollMs: int('--poll-ms', values['poll-ms'], 500, 50, 10_000)
  }
}

function progress (msg: string): void {
  process.stderr.write(`[faults-bench ${new Date().toISOString().slice(11, 23)}] ${msg}\n`)
}

type Lab = import('../netns-lab/index.ts').Lab
type LabStatus = import('../netns-lab/index.ts').LabStatus
interface PeerView { id?: string, liveness?: string }

/**
 * Ballots stood in one election, from the agents' election log: the distinct
 * `round/proposer` of the proposals, how many nodes proposed, and the round of the
 * ballot most voters accepted (the chosen one).
 */
export function ballotsInLogs (logs: readonly string[]): { ballots: number, chosenRound: number | null, proposers: number } {
  const ballots = new Set<string>()
  const accepts = new Map<string, number>()
  for (const text of logs) {
    for (const line of text.split('\n')) {
      if (!line.includes('"election"')) continue
      let rec: { msg?: unknown, proposal?: unknown, accepted?: unknown }
      try { rec = JSON.parse(line) as typeof rec } catch { continue }
      if (rec.msg !== 'election') continue
      const ballot = typeof rec.proposal === 'string' ? rec.proposal.split(' ')[0] ?? '' : ''
      if (/^\d+\/\S+$/.test(ballot)) ballots.add(ballot)
      const accepted = typeof rec.accepted === 'string' ? rec.accepted.split(' ')[0] ?? '' : ''
      if (/^\d+\/\S+$/.test(accepted)) accepts.set(accepted, (accepts.get(accepted) ?? 0) + 1)
    }
  }
  let chosen: string | undefined
  for (const [b, n] of accepts) if (chosen === undefined || n > (accepts.get(chosen) ?? 0)) chosen = b
  return { ballots: ballots.size, chosenRound: chosen === undefined ? null : Number(chosen.split('/')[0]), proposers: new Set([...ballots].map((b) => b.split('/')[1])).size }
}

/** Polls the lab until `done` holds or the timeout; returns the last status and when each named condition first held. */
async function watch (lab: Lab, opt: Options, signal: AbortSignal, conditions: Record<string, (s: LabStatus) => boolean>, done: (seen: Record<string, number>) => boolean): Promise<{ last: LabStatus, seen: Record<string, number>, timedOut: boolean }> {
  const { assertAgentsAlive, summarizeStatus } = await import('../netns-lab/index.ts')
  const deadline = Date.now() + opt.timeoutMs
  const seen: Record<string, number> = {}
  let downBefore = new Set<string>()
  for (;;) {
    const last = await lab.status(signal)
    const down = last.nodes.filter((x) => x.powered && !x.running).map((x) => x.name)
    if (down.some((name) => downBefore.has(name))) await assertAgentsAlive(lab, last)
    downBefore = new Set(down)
    for (const [name, holds] of Object.entries(conditions)) if (seen[name] === undefined && holds(last)) seen[name] = last.at
    if (done(seen)) return { last, seen, timedOut: false }
    if (Date.now() >= deadline) {
      progress(`timeout: ${summarizeStatus(last)}`)
      return { last, seen, timedOut: true }
    }
    await sleep(opt.pollMs, signal)
  }
}

const allSeeAll = (s: LabStatus): boolean => s.nodes.every((x) => ((x.agent?.peers ?? []) as PeerView[]).filter((p) => p.liveness === 'alive' && p.id !== x.peerId).length >= s.nodes.length - 1)
const electedEverywhere = (s: LabStatus): boolean => s.nodes.every((x) => x.agent?.timeline?.some((e) => e.event === 'elected') === true)
/** When the last node reached each milestone of its timeline, seconds after `from` (null when some never did). */
const milestones = (s: LabStatus, from: number): Record<string, number | null> => {
  const out: Record<string, number | null> = {}
  for (const event of ['elected', 'credential', 'installing', 'joined']) {
    const at = s.nodes.map((x) => x.agent?.timeline?.find((e) => e.event === event)?.at)
    out[event] = at.every((t) => t !== undefined) ? secs(Math.max(...at as number[]) - from) : null
  }
  return out
}
const lastStarted = (s: LabStatus): number | undefined => {
  const started = s.nodes.map((x) => x.agent?.timeline?.find((e) => e.event === 'started')?.at)
  return started.every((t) => t !== undefined) ? Math.max(...started as number[]) : undefined
}

async function runOnce (scenario: Scenario, opt: Options, signal: AbortSignal): Promise<Record<string, unknown>> {
  const { createLab, isFormed } = await import('../netns-lab/index.ts')
  const nodes = scenario === 'election' ? opt.electionNodes : scenario === 'heal' ? 7 : 10
  const minority = ['n1', 'n2', 'n3']
  const majority = ['n4', 'n5', 'n6', 'n7']
  const lab = createLab({
    nodes,
    ...(process.env.KAIROS_BENCH_LAB_ROOT === undefined ? {} : { root: process.env.KAIROS_BENCH_LAB_ROOT }),
    ...(process.env.KAIROS_BENCH_LAB_REPO === undefined ? {} : { repoRoot: process.env.KAIROS_BENCH_LAB_REPO }),
    ...(scenario === 'loss' ? { lossPct: opt.lossPct } : {}),
    ...(scenario === 'heal' ? { partitions: [[minority, majority]] } : {}),
    agentArgs: ['--log-level', 'debug']
  })
  let ok = false
  try {
    const rec = await lab.up(signal)
    progress(`${scenario}: lab ${rec.id} up, ${nodes} agents spawned`)
    const formedAll = (s: LabStatus): boolean => isFormed(s) && (s.clusters[0]?.nodes.length ?? 0) >= nodes
    if (scenario === 'election') {
      const w = await watch(lab, opt, signal, { elected: electedEverywhere }, (seen) => seen.elected !== undefined)
      const logs = await Promise.all(rec.hosts.map(async (h) => await readFile(h.logPath, 'utf8').catch(() => '')))
      const start = lastStarted(w.last)
      const elected = w.last.nodes.map((x) => x.agent?.timeline?.find((e) => e.event === 'elected')?.at)
      ok = !w.timedOut
      return {
        ...ballotsInLogs(logs),
        electionDoneS: start === undefined || elected.some((e) => e === undefined) ? null : secs(Math.max(...elected as number[]) - start)
      }
    }
    if (scenario === 'heal') {
      // The majority side forms while cut off; the heal comes `partitionMs` after the last start.
      const cut = await watch(lab, opt, signal, {
        started: (s) => lastStarted(s) !== undefined,
        majorityFormed: (s) => isFormed(s, majority)
      }, (seen) => seen.started !== undefined && seen.majorityFormed !== undefined)
      const start = lastStarted(cut.last)
      if (cut.timedOut || start === undefined) return { error: 'the majority side did not form while partitioned' }
      const wait = start + opt.partitionMs - Date.now()
      if (wait > 0) await sleep(wait, signal)
      const healedAt = Date.now()
      await lab.heal()
      progress('heal: partition removed')
      const w = await watch(lab, opt, signal, { seeAll: allSeeAll, joined: formedAll }, (seen) => seen.joined !== undefined && seen.seeAll !== undefined)
      ok = !w.timedOut
      return {
        majorityFormedAfterLastStartS: secs((cut.seen.majorityFormed ?? start) - start),
        partitionS: secs(healedAt - start),
        afterHealS: { allSeeAll: secs(w.seen.seeAll === undefined ? undefined : w.seen.seeAll - healedAt), allJoined: secs(w.seen.joined === undefined ? undefined : w.seen.joined - healedAt) },
        // The timeline milestones of the last node to reach each (the minority's, as a rule).
        milestonesAfterHealS: milestones(w.last, healedAt)
      }
    }
    const w = await watch(lab, opt, signal, { seeAll: allSeeAll, joined: formedAll }, (seen) => seen.joined !== undefined && seen.seeAll !== undefined)
    const start = lastStarted(w.last)
    ok = !w.timedOut
    return {
      lossPct: opt.lossPct,
      fromLastStartS: { allSeeAll: secs(start === undefined || w.seen.seeAll === undefined ? undefined : w.seen.seeAll - start), allJoined: secs(start === undefined || w.seen.joined === undefined ? undefined : w.seen.joined - start) },
      milestonesFromLastStartS: start === undefined ? null : milestones(w.last, start)
    }
  } finally {
    if (!ok) progress(`${scenario}: did not finish; its agent logs stay in ${await lab.dir().catch(() => '(lab dir unknown)')}/hosts`)
    await lab.down({ keepFiles: !ok || process.env.KAIROS_BENCH_KEEP_FILES === '1' }).catch((err: unknown) => { progress(`lab down failed: ${String(err)}`) })
  }
}

function median (xs: ReadonlyArray<number | null | undefined>): number | null {
  const v = xs.filter((x): x is number => typeof x === 'number').sort((a, b) => a - b)
  if (v.length === 0) return null
  const m = v.length >> 1
  return v.length % 2 === 1 ? v[m] as number : ((v[m - 1] as number) + (v[m] as number)) / 2
}

if (process.argv[1] !== undefined && import.meta.filename === process.argv[1]) {
  const opt = benchOptions(options)
  if (process.getuid?.() !== 0) {
    process.stdout.write(JSON.stringify({ skipped: 'needs root' }) + '\n')
  } else {
    const abort = new AbortController()
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { abort.abort(new Error(`${sig} received`)) })
    const result: Record<string, unknown> = {
      targets: { electionFirstBallot: '≥ 9 runs in 10', healAllJoinedS: 5, lossAllJoinedS: 10 },
      rounds: opt.rounds,
      electionRounds: opt.electionRounds
    }
    for (const scenario of opt.scenarios) {
      const runs: Array<Record<string, unknown>> = []
      const rounds = scenario === 'election' ? opt.electionRounds : opt.rounds
      for (let i = 0; i < rounds && !abort.signal.aborted; i++) {
        try {
          runs.push(await runOnce(scenario, opt, abort.signal))
        } catch (err) {
          runs.push({ error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) })
        }
        progress(`${scenario} round ${i + 1}: ${JSON.stringify(runs.at(-1))}`)
      }
      const pick = (f: (r: Record<string, unknown>) => unknown): Array<number | null> => runs.map((r) => { const v = f(r); return typeof v === 'number' ? v : null })
      const summary: Record<string, unknown> = { runs }
      if (scenario === 'election') {
        summary.firstBallotRuns = `${runs.filter((r) => r.ballots === 1).length} of ${runs.length}`
        summary.decidedInRoundOneRuns = `${runs.filter((r) => r.chosenRound === 1).length} of ${runs.length}`
        summary.medianBallots = median(pick((r) => r.ballots))
        summary.medianElectionDoneS = median(pick((r) => r.electionDoneS))
      } else if (scenario === 'heal') {
        summary.medianAfterHealAllJoinedS = median(pick((r) => (r.afterHealS as { allJoined?: number } | undefined)?.allJoined))
      } else {
        summary.medianAllJoinedS = median(pick((r) => (r.fromLastStartS as { allJoined?: number } | undefined)?.allJoined))
      }
      result[scenario] = summary
    }
    process.stdout.write(JSON.stringify(result) + '\n')
  }
}
