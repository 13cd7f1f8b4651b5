// Summarises V8 CPU profiles of lab agents (`node --cpu-prof`, one file per agent):
// where the samples fall, grouped by what the code does, and our own files on their own.
// A sample in Node's internals or in native code counts for the nearest caller in the
// agent's bundle (a socket write counts for the libp2p module that wrote); garbage
// collection is its own group. Samples are wall-clock ticks of the main thread, so on a
// starved machine a profile spans more time than the process used: shares are what to
// read; `--cpu-seconds` (the agent's measured CPU, e.g. lab.ts's
// `agentCpuSecondsAtFormation`) turns them into seconds. `--from` / `--to` (ISO times, as
// in the agents' logs) keep the samples taken between them only, to see one phase of a
// formation (a sample's time is read from V8's monotonic clock, so run this on the
// machine that wrote the profiles, before it reboots).
//
// The bundle is read to map lines to modules: it must be the one the agents ran (the
// lab rebuilds it when a source changes), so keep a copy and pass it with `--bundle`.
//
//   npx node bench/_cpu-profile.ts DIR [--bundle FILE] [--cpu-seconds S] [--top N] [--from ISO] [--to ISO]
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

interface CallFrame { functionName: string, url: string, lineNumber: number }
interface ProfileNode { id: number, callFrame: CallFrame, children?: number[] }
interface Profile { nodes: ProfileNode[], startTime: number, samples: number[], timeDeltas: number[] }

/** Packages by what they do for an agent. */
const GROUPS: Record<string, readonly string[]> = {
  'transport crypto (pnet, Noise, TCP)': ['@libp2p/pnet', 'xsalsa20', '@libp2p/noise', '@chainsafe/as-chacha20poly1305', '@noble/hashes', '@noble/curves', '@libp2p/tcp', '@libp2p/crypto'],
  'streams and muxing (yamux, stream utils)': ['@libp2p/yamux', '@libp2p/utils', 'uint8arraylist', 'it-pushable', 'it-queue', 'it-length-prefixed', 'p-event', 'race-signal', 'main-event', '@libp2p/interface', 'weald', 'it-byte-stream', 'abort-error', 'p-queue', 'progress-events', 'it-pipe', 'any-signal', 'uint8-varint'],
  gossipsub: ['@libp2p/gossipsub'],
  'libp2p core, peer store, identify, DHT, mDNS': ['libp2p', '@libp2p/peer-store', '@multiformats/multiaddr', 'multiformats', '@multiformats/multiaddr-matcher', 'protons-runtime', '@libp2p/peer-id', 'uint8arrays', '@libp2p/identify', '@libp2p/ping', 'datastore-core', 'interface-datastore', '@libp2p/peer-collections', '@libp2p/logger', '@chainsafe/is-ip', '@libp2p/kad-dht', '@libp2p/mdns', 'multicast-dns', 'dns-packet', '@multiformats/dns', '@libp2p/multistream-select', '@libp2p/peer-record', 'mortice'],
  'child processes (execa)': ['execa', 'get-stream', 'human-signals', 'signal-exit', 'npm-run-path', 'cross-spawn', 'strip-final-newline']
}
const OUR_DIRS = new Set(['p2p', 'roles', 'vpn', 'agent', 'util', 'config', 'token', 'cli', 'box'])

const { values, positionals } = parseArgs({ allowPositionals: true, options: { bundle: { type: 'string' }, 'cpu-seconds': { type: 'string' }, top: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' } } })
process.stdout.on('error', (err: NodeJS.ErrnoException) => { if (err.code === 'EPIPE') process.exit(0); throw err })
const dir = positionals[0]
if (dir === undefined) fail('expected a directory of .cpuprofile files: npx node bench/_cpu-profile.ts DIR [--bundle FILE] [--cpu-seconds S] [--top N]')
const cpuSeconds = values['cpu-seconds'] === undefined ? undefined : Number(values['cpu-seconds'])
if (cpuSeconds !== undefined && !(cpuSeconds > 0)) fail(`--cpu-seconds '${values['cpu-seconds'] ?? ''}': expected a positive number`)
const top = Number(values.top ?? 12)
if (!Number.isInteger(top) || top < 1) fail(`--top '${values.top ?? ''}': expected a positive integer`)
const time = (name: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined
  const t = Date.parse(v)
  if (Number.isNaN(t)) fail(`--${name} '${v}': expected an ISO time such as 2026-12-05T13:36:10.500Z`)
  return t
}
const from = time('from', values.from) ?? -Infinity
const to = time('to', values.to) ?? Infinity
/** Epoch ms of V8's profile clock at 0 (CLOCK_MONOTONIC, which `process.hrtime` reads too). */
const monotonicEpochMs = Date.now() - Number(process.hrtime.bigint() / 1_000_000n)

function fail (msg: string): never {
  process.stderr.write(`_cpu-profile: ${msg}\n`)
  process.exit(2)
}

/** Module paths of a bundle by line: the `// path` comment the bundler puts before each module. */
const bundles = new Map<string, Array<[number, string]>>()
async function moduleAt (url: string, line: number, newest: number): Promise<string | undefined> {
  let index = bundles.get(url)
  if (index === undefined) {
    const file = values.bundle ?? new URL(url)
    const changed = await stat(file).then((st) => st.mtimeMs > newest, () => fail(`cannot read the bundle ${String(file)} (pass the copy the agents ran with --bundle)`))
    if (changed && values.bundle === undefined) fail(`${String(file)} changed after the profiles were written: the lines no longer match; pass the copy the agents ran with --bundle`)
    const text = await readFile(file, 'utf8')
    index = []
    for (const [i, l] of text.split('\n').entries()) if (/^\/\/ [\w.@/-]+\.(m?[jt]s|cjs)$/.test(l)) index.push([i, l.slice(3).replace(/^.*node_modules\//, 'node_modules/')])
    bundles.set(url, index)
  }
  let lo = 0
  let hi = index.length - 1
  let found: string | undefined
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    const [at, path] = index[mid] as [number, string]
    if (at <= line) { found = path; lo = mid + 1 } else hi = mid - 1
  }
  return found
}

function groupOf (module: string): { group: string, file?: string } {
  if (module.startsWith('node_modules/')) {
    const parts = module.slice('node_modules/'.length).split('/')
    const pkg = parts[0]?.startsWith('@') === true ? `${parts[0]}/${parts[1] ?? ''}` : parts[0] ?? ''
    for (const [group, pkgs] of Object.entries(GROUPS)) if (pkgs.includes(pkg)) return { group }
    return { group: 'other packages' }
  }
  const top = module.split('/')[0] ?? ''
  return OUR_DIRS.has(top) ? { group: `our code: ${top}/`, file: module } : { group: 'other packages' }
}

const files = (await readdir(dir).catch((err: unknown) => fail(`cannot read ${dir}: ${String(err)}`))).filter((f) => f.endsWith('.cpuprofile'))
if (files.length === 0) fail(`${dir}: no .cpuprofile files (agents write them on a clean exit only)`)
const groups = new Map<string, number>()
const ours = new Map<string, number>()
const selfTime = new Map<string, number>()
let total = 0
const add = (m: Map<string, number>, k: string, v: number): void => { m.set(k, (m.get(k) ?? 0) + v) }
const newest = Math.max(...await Promise.all(files.map(async (f) => (await stat(join(dir, f))).mtimeMs)))
for (const f of files) {
  const p = JSON.parse(await readFile(join(dir, f), 'utf8')) as Profile
  const byId = new Map(p.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const ticks = new Map<number, number>()
  let at = p.startTime
  p.samples.forEach((id, i) => {
    at += p.timeDeltas[i] ?? 0
    const epochMs = monotonicEpochMs + at / 1000
    if (epochMs >= from && epochMs < to) ticks.set(id, (ticks.get(id) ?? 0) + (p.timeDeltas[i + 1] ?? 0))
  })
  for (const [id, us] of ticks) {
    const leaf = byId.get(id)?.callFrame
    if (leaf === undefined || leaf.functionName === '(idle)') continue
    total += us
    if (leaf.functionName === '(garbage collector)') { add(groups, 'garbage collection', us); continue }
    let cur: number | undefined = id
    let module: string | undefined
    while (cur !== undefined && module === undefined) {
      const c = byId.get(cur)?.callFrame
      if (c?.url.includes('/bundle/') === true) module = await moduleAt(c.url, c.lineNumber, newest)
      cur = parent.get(cur)
    }
    const g = module === undefined ? { group: 'Node itself (start-up, timers)' } : groupOf(module)
    add(groups, g.group, us)
    if (g.file !== undefined) add(ours, g.file, us)
    add(selfTime, `${leaf.functionName === '' ? '(anonymous)' : leaf.functionName} ${module ?? leaf.url.replace(/^.*\//, '')}`, us)
  }
}
const show = (label: string, m: Map<string, number>, n: number): void => {
  process.stdout.write(`${label}\n`)
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, n)) {
    const share = v / total
    process.stdout.write(`  ${(100 * share).toFixed(1).padStart(5)} %${cpuSeconds === undefined ? '' : `  ${(cpuSeconds * share).toFixed(2)} s`}  ${k}\n`)
  }
}
process.stdout.write(`${files.length} profiles\n`)
show('by what the code does', groups, groups.size)
show('our own files', ours, top)
show('self time, by function', selfTime, top)
