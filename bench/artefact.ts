// The self-contained artefact against the bundle it replaces on a box: its size, the
// glibc it needs, and the wall time from spawn to exit of the same commands run as
// `bin/kairos-p2p …` (the launcher and the executable with Node inside) and as
// `node dist/kairos-p2p.js …`, interleaved, page cache warm. Needs `npm run build`
// first. Prints one JSON line.
import { stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { execa } from 'execa'
import { distArtefactDir } from '../build/artefact-name.ts'
import { EXECUTABLE_SUBPATH } from '../box/paths.ts'

const RUNS = 15
const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const dir = await distArtefactDir(root)
const launcher = join(dir, 'bin', 'kairos-p2p')
const provider = join(dir, 'bin', 'agent-provider-kairos-p2p')
const bundle = join(root, 'dist', 'kairos-p2p.js')
for (const f of [launcher, bundle]) {
  await stat(f).catch(() => { throw new Error(`${f} is missing; run 'npm run build' first`) })
}

interface Case { name: string, argv: string[], input?: string }
const event = JSON.stringify({ name: 'agent.boot', data: '', file: '' })
const cases: Array<{ what: string, artefact: Case, bundle: Case }> = [
  { what: 'version', artefact: { name: 'artefact', argv: [launcher, '--version'] }, bundle: { name: 'bundle', argv: [process.execPath, bundle, '--version'] } },
  { what: 'tokenGenerate', artefact: { name: 'artefact', argv: [launcher, 'token', 'generate'] }, bundle: { name: 'bundle', argv: [process.execPath, bundle, 'token', 'generate'] } },
  { what: 'agentHelp', artefact: { name: 'artefact', argv: [launcher, 'agent', '--help'] }, bundle: { name: 'bundle', argv: [process.execPath, bundle, 'agent', '--help'] } },
  {
    what: 'providerEvent',
    artefact: { name: 'artefact', argv: [provider, 'agent.boot'], input: event },
    bundle: { name: 'bundle', argv: [process.execPath, bundle, 'agent.boot'], input: event }
  }
]

async function once (c: Case, env: NodeJS.ProcessEnv): Promise<number> {
  const [file, ...args] = c.argv
  const started = performance.now()
  const r = await execa(file ?? '', args, { env, extendEnv: false, reject: false, ...(c.input === undefined ? {} : { input: c.input }) })
  const ms = performance.now() - started
  if (r.exitCode !== 0) throw new Error(`${c.argv.join(' ')} exited ${String(r.exitCode)}: ${r.stderr.trim()}`)
  return ms
}

function summary (samples: number[]): { medianMs: number, minMs: number, maxMs: number } {
  const s = [...samples].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  const median = s.length % 2 === 1 ? s[mid] as number : ((s[mid - 1] as number) + (s[mid] as number)) / 2
  return { medianMs: Math.round(median), minMs: Math.round(s[0] as number), maxMs: Math.round(s.at(-1) as number) }
}

const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' }
const startup: Record<string, unknown> = {}
for (const c of cases) {
  const a: number[] = []
  const b: number[] = []
  // The bundle run as the provider needs the name the launcher would give it.
  const bundleEnv = c.what === 'providerEvent' ? { ...env, KAIROS_P2P_CALLED_AS: 'agent-provider-kairos-p2p' } : env
  await once(c.artefact, env)
  await once(c.bundle, bundleEnv)
  for (let i = 0; i < RUNS; i++) {
    a.push(await once(c.artefact, env))
    b.push(await once(c.bundle, bundleEnv))
  }
  const sa = summary(a)
  const sb = summary(b)
  startup[c.what] = { artefact: sa, nodeBundle: sb, ratio: Math.round((sa.medianMs / sb.medianMs) * 100) / 100 }
}

const { stdout: objdump } = await execa('objdump', ['-T', join(dir, EXECUTABLE_SUBPATH)])
const { glibcFloorOf } = await import('../box/launcher.ts')
const mb = async (f: string): Promise<number> => Math.round((await stat(f)).size / 1e5) / 10
process.stdout.write(JSON.stringify({
  runs: RUNS,
  sizeMb: { tarball: await mb(`${dir}.tar.gz`), executable: await mb(join(dir, EXECUTABLE_SUBPATH)), nodeBundle: await mb(bundle), node: await mb(process.execPath) },
  glibcFloor: glibcFloorOf(objdump),
  startup
}) + '\n')
