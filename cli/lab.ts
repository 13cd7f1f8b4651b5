import { readdir, readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import type { Command, CliIO } from './io.ts'
import { parseCommandArgs } from './io.ts'
import { UsageError } from '../util/errors.ts'
import { parseDocument } from '../config/load.ts'
import { assertAgentsAlive, createLab, isFormed, type Lab, type LabInit, type LabStatus } from '../netns-lab/lab.ts'
import type { TimelineReport } from '../netns-lab/report.ts'
import { DEFAULT_LAB_ROOT, listLabIds } from '../netns-lab/meta.ts'
import { strictMajority } from '../netns-lab/plan.ts'
import { hostOverridesOf, mainSite, parseNodeSet, parsePartition, splitAssignment, type HostOverride } from '../netns-lab/sites.ts'
import { generateToken } from '../token/index.ts'
import { LabNotFoundError } from '../netns-lab/errors.ts'

const COMMON_HELP = `Options of every lab command:
  --id ID           lab id ([a-z0-9]{1,6}); default: the only lab under --dir (up: a random one)
  --dir DIR         where labs live (default ${DEFAULT_LAB_ROOT}, or $KAIROS_LAB_DIR)
  --help            show this help
`

const USAGE = `Usage: kairos-p2p lab <command> [options]

Build and drive a whole edge site on this machine: one network namespace (plus a
private mount namespace) per host, bridges, an optional router between segments,
one agent per host and a k3s stand-in. Needs root.

Commands:
  up            build the site and start one agent per host
  status        per node: agent, phase and why it waits, role, overlay, handshakes;
                plus the stand-in registry (kubectl get nodes)
  partition     cut one group of nodes off from another
  heal          remove every partition
  kill          power a host off hard (or crash only its agent)
  restart       boot a host again (or restart only its agent)
  power-cycle   power every host off hard and boot them all again
  exec          run a command inside a host
  report        write timeline.json and timeline.svg
  down          remove everything of the lab but its reports
  demo          up, wait until formed, print status and the timeline, down

'kairos-p2p lab <command> --help' shows a command's options and defaults.

${COMMON_HELP}`

/** Each subcommand's own help: its options and their defaults. */
const HELP: Record<string, string> = {
  up: `Usage: kairos-p2p lab up --nodes N [options]

Builds the site (namespaces, bridges, router, nft tables), writes one cloud-config per
host and starts one agent per host. Nodes are n1…nN, placed round-robin over segments.

Options:
  --nodes N             hosts, 1–200 (required)
  --segments S          routed segments, no multicast between them (default 1)
  --loss PCT            packet loss on every host, percent (default 0)
  --delay MS            delay on every host veth, needs tc netem (default 0)
  --token T             the network token (default: --config's, else a new one);
                        visible in the process list, unlike --token-file
  --token-file F        read the network token from F
  --config FILE         a cloud-config merged under the lab's keys on every host
  --min M               p2p.minimum_nodes of every host (default: --config's, else a
                        strict majority of the hosts of its site, so one cluster-init
                        is guaranteed; a cloud-config without the key means 2)
  --host NODES=FILE     a cloud-config for these hosts only, merged over --config
                        (repeatable); its p2p.network_token and p2p.minimum_nodes apply
  --token-for NODES=T   these hosts get network token T, or read it from @FILE (repeatable)
  --site NODES[=T]      these hosts form a site of their own on the same switch: a new
                        token (or T, or @FILE) and minimum_nodes a strict majority of
                        them (repeatable)
  --partition A/B       cut group A off from group B before any agent starts (repeatable);
                        groups like n1-n4 or n1,n3,n5-n7
  --from-artefact       every host runs the self-contained executable from 'npm run
                        build' as its systemd unit does, state in /var/lib/kairos/p2p
  --artefact DIR        another unpacked artefact (with --from-artefact)
  --no-agents           build the network only (boot hosts later with 'lab restart NODE')
  --wait                wait until every host joined one cluster, then print the status
  --timeout SEC         how long --wait waits (default 120)
  --json                print the lab record (or, with --wait, the status) as JSON

NODES is a node, a range or a list: n4, n5-n7, n1,n3.

Examples:
  lab up --nodes 7 --min 4 --partition n1-n4/n5-n7      a split site from boot
  lab up --nodes 6 --site n4-n6                          two sites on one switch
  lab up --nodes 4 --host n4=worker.yaml --token-for n3=@other.token

${COMMON_HELP}`,
  status: `Usage: kairos-p2p lab status [--json]

Per node: address, agent state, phase, role, overlay address, WireGuard handshakes up,
peers, registration at the stand-in; below, why each node not done yet waits (the
agent's own words) and its warnings; then each stand-in's registry (kubectl get nodes).

Options:
  --json            the whole status as JSON

${COMMON_HELP}`,
  partition: `Usage: kairos-p2p lab partition GROUP GROUP

Cuts every host of the first group off from every host of the second, both ways.
Groups: n1 or n1,n2 or n1-n3. Partitions add up until 'lab heal'.

${COMMON_HELP}`,
  heal: `Usage: kairos-p2p lab heal

Removes every partition.

${COMMON_HELP}`,
  kill: `Usage: kairos-p2p lab kill [--agent] NODE

Powers a host off hard: SIGKILL to every process in it (agent, stand-in, wireguard-go).
Its state dir stays.

Options:
  --agent           kill only the agent process (a crash); overlay and stand-in stay

${COMMON_HELP}`,
  restart: `Usage: kairos-p2p lab restart [--agent] NODE

Boots a host again, powering it off first when it runs: a fresh /run, the agent, and
the k3s stand-in server if the host ran one. A host of a lab built with --no-agents
boots for the first time.

Options:
  --agent           restart only the agent (SIGTERM, then a new process)

${COMMON_HELP}`,
  'power-cycle': `Usage: kairos-p2p lab power-cycle

Powers every host off hard and boots them all again; state dirs stay.

${COMMON_HELP}`,
  exec: `Usage: kairos-p2p lab exec NODE -- CMD...

Runs CMD inside a host (its network and mount namespaces); exits with CMD's code.
Example: lab exec n2 -- wg show

${COMMON_HELP}`,
  report: `Usage: kairos-p2p lab report [--out DIR]

Writes timeline.json and timeline.svg (each node's milestones from agent start to
registration at the stand-in) and prints when the last node reached each milestone.

Options:
  --out DIR         where to write them (default: the lab dir, which 'lab down' keeps)

${COMMON_HELP}`,
  down: `Usage: kairos-p2p lab down [--all] [--keep-files | --purge]

Removes the lab's namespaces, links and processes (also after a crashed run) and its
files, but keeps the report files (timeline.json, timeline.svg) that 'lab report'
wrote into the lab dir.

Options:
  --all             every lab recorded under --dir
  --keep-files      keep the whole lab dir (logs, state dirs, cloud-configs)
  --purge           remove the report files too

${COMMON_HELP}`,
  demo: `Usage: kairos-p2p lab demo [--nodes N] [--timeout SEC] [--keep]

Builds a site, waits until it formed, prints the status and the timeline, and takes
it down again (keeping the report files).

Options:
  --nodes N         hosts (default 5)
  --timeout SEC     how long to wait for formation (default 120)
  --keep            leave the lab running

${COMMON_HELP}`
}

function helpOf (name: string): string {
  return HELP[name] ?? USAGE
}

const COMMON = {
  id: { type: 'string' },
  dir: { type: 'string' },
  help: { type: 'boolean', short: 'h' }
} as const

function intOption (name: string, text: string | undefined, min: number, max: number): number | undefined {
  if (text === undefined) return undefined
  const v = Number(text)
  if (!Number.isInteger(v) || v < min || v > max) throw new UsageError(`lab: --${name} '${text}' is invalid; expected an integer from ${min} to ${max}`)
  return v
}

function numOption (name: string, text: string | undefined, min: number, max: number): number | undefined {
  if (text === undefined) return undefined
  const v = Number(text)
  if (text.trim() === '' || !Number.isFinite(v) || v < min || v > max) throw new UsageError(`lab: --${name} '${text}' is invalid; expected a number from ${min} to ${max}`)
  return v
}

function pad (cells: string[][]): string {
  const widths = cells[0]?.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length))) ?? []
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd()).join('\n') + '\n'
}

/** The human status view: one row per node, then each stand-in's registry. */
export function formatLabStatus (s: LabStatus): string {
  const rows = [['NODE', 'ADDRESS', 'AGENT', 'PHASE', 'ROLE', 'OVERLAY', 'WG UP', 'PEERS', 'JOINED']]
  for (const n of s.nodes) {
    rows.push([
      n.name, n.address,
      n.running ? (n.error === undefined ? 'running' : 'no-answer') : (n.powered ? 'stopped' : 'off'),
      n.phase ?? '-', n.role ?? '-', n.overlayAddress ?? '-',
      n.handshakes.total === 0 ? '-' : `${n.handshakes.up}/${n.handshakes.total}`,
      String(n.peers),
      n.joined ? `${n.registeredAs ?? 'yes'}${n.init ? ' (init)' : ''}` : n.registeredEarlier === undefined ? 'no' : `no (${n.registeredEarlier} is an earlier ${n.name})`
    ])
  }
  let out = `lab ${s.id}: ${s.nodes.length} nodes, ${s.clusters.length} cluster${s.clusters.length === 1 ? '' : 's'}${isFormed(s) ? ', formed' : ''}\n\n` + pad(rows)
  // Each node not done yet, in the agent's own words.
  const why = s.nodes.flatMap((n) => [
    ...(n.reason === undefined ? [] : [`${n.name.padEnd(4)} ${n.phase ?? ''}: ${n.reason}`]),
    ...(n.warnings ?? []).map((w) => `${n.name.padEnd(4)} warning: ${w}`),
    ...(n.error === undefined ? [] : [`${n.name.padEnd(4)} no answer: ${n.error}`])
  ])
  if (why.length > 0) out += `\n${why.join('\n')}\n`
  for (const c of s.clusters) {
    out += `\nk3s stand-in on ${c.server} (${c.address}:${c.port}, ${c.running ? 'running' : 'down'}): kubectl get nodes\n`
    const reg = [['NAME', 'ROLE', 'INTERNAL-IP', 'FROM', 'REGISTERED']]
    for (const n of c.nodes) {
      reg.push([n.name, n.init ? 'control-plane (init)' : (n.role === 'server' ? 'control-plane' : 'agent'), n.nodeIp, n.remoteAddress, new Date(n.registeredAt).toISOString()])
    }
    out += pad(reg)
  }
  return out
}

/**
 * Waits until formed (with several sites on the switch: one cluster per site, every
 * node joined); fails early, with the end of its log, when an agent exits meanwhile.
 */
async function waitFormed (lab: Lab, timeoutMs: number, signal: AbortSignal, sites = 1): Promise<LabStatus> {
  const formed = (st: LabStatus): boolean => sites <= 1
    ? isFormed(st)
    : st.clusters.filter((c) => c.running).length === sites && st.nodes.every((n) => n.joined && n.running && n.phase === 'joined')
  const what = sites <= 1 ? 'every node joined one cluster' : `every node joined, in ${sites} clusters`
  const s = await lab.waitFor((st) => formed(st) || st.nodes.some((n) => n.powered && !n.running), { timeoutMs, signal, what })
  await assertAgentsAlive(lab, s)
  return s
}

/** Where the report went, and per event how many nodes reached it and when the last one did. */
export function formatMilestones (r: { json: string, svg: string, report: TimelineReport }): string {
  const lines = r.report.milestones.map((m) => `  ${m.event.padEnd(12)} ${String(m.nodes).padStart(3)} node${m.nodes === 1 ? ' ' : 's'}  last at +${(m.lastMs / 1000).toFixed(2)} s`)
  return `timeline ${r.json}\nchart    ${r.svg}\n${lines.join('\n')}\n`
}

function labFor (values: { id?: string | undefined, dir?: string | undefined }, io: CliIO, extra: LabInit = {}): Lab {
  const root = values.dir ?? io.env.KAIROS_LAB_DIR ?? DEFAULT_LAB_ROOT
  return createLab({ root, ...(values.id === undefined ? {} : { id: values.id }), ...extra })
}

type Sub = (argv: string[], io: CliIO) => Promise<number>

const up: Sub = async (argv, io) => {
  const { values } = parseCommandArgs('lab up', argv, {
    ...COMMON,
    nodes: { type: 'string' },
    segments: { type: 'string' },
    loss: { type: 'string' },
    delay: { type: 'string' },
    token: { type: 'string' },
    'token-file': { type: 'string' },
    config: { type: 'string' },
    min: { type: 'string' },
    wait: { type: 'boolean' },
    timeout: { type: 'string' },
    json: { type: 'boolean' },
    'no-agents': { type: 'boolean' },
    host: { type: 'string', multiple: true },
    'token-for': { type: 'string', multiple: true },
    site: { type: 'string', multiple: true },
    partition: { type: 'string', multiple: true },
    'from-artefact': { type: 'boolean' },
    artefact: { type: 'string' }
  }, false)
  if (values.help === true) { io.stdout(helpOf('up')); return 0 }
  if (values.artefact !== undefined && values['from-artefact'] !== true) throw new UsageError('lab up: --artefact DIR goes with --from-artefact')
  if (values['no-agents'] === true && values.wait === true) throw new UsageError('lab up: --wait needs agents; drop --no-agents or --wait')
  if (values.nodes === undefined) throw new UsageError("lab up: --nodes N is required (see 'lab up --help')")
  if (values.token !== undefined && values['token-file'] !== undefined) throw new UsageError('lab up: give --token or --token-file, not both')
  const partitionSpecs = values.partition ?? []
  if (partitionSpecs.length > 0 && values.wait === true) throw new UsageError("lab up: --wait waits for one cluster of every host, which a partitioned site never forms; drop --wait and watch 'lab status'")
  const init: LabInit = { agents: values['no-agents'] !== true }
  const nodes = intOption('nodes', values.nodes, 1, 200) as number
  init.nodes = nodes
  const segments = intOption('segments', values.segments, 1, 50)
  if (segments !== undefined) init.segments = segments
  const loss = numOption('loss', values.loss, 0, 100)
  if (loss !== undefined) init.lossPct = loss
  const delay = intOption('delay', values.delay, 0, 60_000)
  if (delay !== undefined) init.delayMs = delay
  const min = intOption('min', values.min, 1, 10_000)
  if (min !== undefined) init.minimumNodes = min
  if (values.token !== undefined) init.token = values.token.trim()
  if (values['token-file'] !== undefined) init.token = (await readFile(values['token-file'], 'utf8')).trim()
  if (values.config !== undefined) init.baseConfig = parseDocument(values.config, await readFile(values.config, 'utf8'))
  if (values['from-artefact'] === true) init.artefact = values.artefact === undefined ? true : resolve(values.artefact)
  const sites = await sitesOf(values, nodes)
  if (partitionSpecs.length > 0) init.partitions = partitionSpecs.map((p) => parsePartition(p, nodes))
  if (sites.overrides.size > 0) init.hostOverrides = (h) => sites.overrides.get(h.name)
  // The main site's strict majority, when other sites share the switch.
  const baseMin = (init.baseConfig?.p2p as { minimum_nodes?: unknown } | undefined)?.minimum_nodes
  if (min === undefined && typeof baseMin !== 'number' && sites.main.length < nodes && sites.main.length > 0) init.minimumNodes = strictMajority(sites.main.length)
  const timeoutMs = (intOption('timeout', values.timeout, 1, 86_400) ?? 120) * 1000
  const lab = labFor(values, io, init)
  const rec = await lab.up(io.signal)
  if (values.json !== true) {
    io.stdout(`lab ${rec.id} up: ${rec.hosts.length} hosts on ${rec.plan.segments.length} segment${rec.plan.segments.length === 1 ? '' : 's'}` +
      `${rec.impairment === 'none' ? '' : ` (loss ${rec.lossPct}%, delay ${rec.delayMs} ms via ${rec.impairment})`}, minimum_nodes ${rec.minimumNodes}\n` +
      `lab dir ${rec.dir}\n`)
    for (const [a, b] of rec.partitions) io.stdout(`partitioned from boot: ${a.join(',')} | ${b.join(',')}\n`)
    for (const site of sites.list) io.stdout(`site of its own (its own token, minimum_nodes ${sites.overrides.get(site[0] ?? '')?.minimumNodes ?? '-'}): ${site.join(',')}\n`)
  }
  if (values.wait !== true) {
    if (values.json === true) io.stdout(JSON.stringify(rec, null, 2) + '\n')
    return 0
  }
  const s = await waitFormed(lab, timeoutMs, io.signal, sites.count)
  io.stdout(values.json === true ? JSON.stringify(s, null, 2) + '\n' : formatLabStatus(s))
  return 0
}

/** A token given on the command line as text or as @FILE. */
async function tokenValue (option: string, value: string | undefined): Promise<string> {
  if (value === undefined || value.trim() === '') throw new UsageError(`lab up: --${option} needs a token after '=', or @FILE`)
  return value.startsWith('@') ? (await readFile(value.slice(1), 'utf8')).trim() : value.trim()
}

/** `--host`, `--token-for` and `--site` read into per-host overrides, with the number of sites. */
async function sitesOf (values: { host?: string[] | undefined, 'token-for'?: string[] | undefined, site?: string[] | undefined, min?: string | undefined }, nodes: number): Promise<{ overrides: Map<string, HostOverride>, main: string[], count: number, list: string[][] }> {
  const hosts = await Promise.all((values.host ?? []).map(async (spec) => {
    const { nodes: set, value } = splitAssignment('host', spec)
    if (value === undefined || value === '') throw new UsageError(`lab up: --host '${spec}' needs a cloud-config file after '='`)
    return { nodes: parseNodeSet(set, nodes, '--host'), config: parseDocument(value, await readFile(value, 'utf8')) }
  }))
  const tokenFor = await Promise.all((values['token-for'] ?? []).map(async (spec) => {
    const { nodes: set, value } = splitAssignment('token-for', spec)
    return { nodes: parseNodeSet(set, nodes, '--token-for'), token: await tokenValue('token-for', value) }
  }))
  const siteList = await Promise.all((values.site ?? []).map(async (spec) => {
    const { nodes: set, value } = splitAssignment('site', spec, true)
    return { nodes: parseNodeSet(set, nodes, '--site'), token: value === undefined ? generateToken() : await tokenValue('site', value) }
  }))
  const minimumNodes = values.min === undefined ? undefined : Number(values.min)
  const overrides = hostOverridesOf({ nodes, hosts, tokenFor, sites: siteList, minimumNodes })
  const main = mainSite(nodes, siteList)
  return { overrides, main, count: siteList.length + (main.length > 0 ? 1 : 0), list: siteList.map((x) => x.nodes) }
}

const status: Sub = async (argv, io) => {
  const { values } = parseCommandArgs('lab status', argv, { ...COMMON, json: { type: 'boolean' } }, false)
  if (values.help === true) { io.stdout(helpOf('status')); return 0 }
  const s = await labFor(values, io).status(io.signal)
  io.stdout(values.json === true ? JSON.stringify(s, null, 2) + '\n' : formatLabStatus(s))
  return 0
}

const partition: Sub = async (argv, io) => {
  const { values, positionals } = parseCommandArgs('lab partition', argv, COMMON)
  if (values.help === true) { io.stdout(helpOf('partition')); return 0 }
  const [a, b, ...rest] = positionals
  if (a === undefined || b === undefined || rest.length > 0) throw new UsageError('lab partition: expected two node groups, e.g. lab partition n1 n2,n3')
  const lab = labFor(values, io)
  const count = (await lab.record()).hosts.length
  await lab.partition(parseNodeSet(a, count, 'partition group'), parseNodeSet(b, count, 'partition group'))
  io.stdout(`partitioned ${a} | ${b}\n`)
  return 0
}

const simple = (name: string, act: (lab: Lab, io: CliIO) => Promise<string>): Sub => async (argv, io) => {
  const { values } = parseCommandArgs(`lab ${name}`, argv, COMMON, false)
  if (values.help === true) { io.stdout(helpOf(name)); return 0 }
  io.stdout(await act(labFor(values, io), io))
  return 0
}

const onNode = (name: string, act: (lab: Lab, node: string, agentOnly: boolean, io: CliIO) => Promise<string>): Sub => async (argv, io) => {
  const { values, positionals } = parseCommandArgs(`lab ${name}`, argv, { ...COMMON, agent: { type: 'boolean' } })
  if (values.help === true) { io.stdout(helpOf(name)); return 0 }
  const [node, ...rest] = positionals
  if (node === undefined || rest.length > 0) throw new UsageError(`lab ${name}: expected one node name, e.g. lab ${name} n2`)
  io.stdout(await act(labFor(values, io), node, values.agent === true, io))
  return 0
}

const exec: Sub = async (argv, io) => {
  const split = argv.indexOf('--')
  const own = split < 0 ? argv : argv.slice(0, split)
  const cmd = split < 0 ? [] : argv.slice(split + 1)
  const { values, positionals } = parseCommandArgs('lab exec', own, COMMON)
  if (values.help === true) { io.stdout(helpOf('exec')); return 0 }
  const [node, ...rest] = positionals
  if (node === undefined || rest.length > 0 || cmd.length === 0) throw new UsageError('lab exec: expected NODE -- CMD..., e.g. lab exec n1 -- wg show')
  const r = await labFor(values, io).exec(node, cmd, io.signal)
  if (r.stdout !== '') io.stdout(r.stdout + '\n')
  if (r.stderr !== '') io.stderr(r.stderr + '\n')
  return r.exitCode
}

const report: Sub = async (argv, io) => {
  const { values } = parseCommandArgs('lab report', argv, { ...COMMON, out: { type: 'string' } }, false)
  if (values.help === true) { io.stdout(helpOf('report')); return 0 }
  io.stdout(formatMilestones(await labFor(values, io).report(values.out, io.signal)))
  return 0
}

const down: Sub = async (argv, io) => {
  const { values } = parseCommandArgs('lab down', argv, { ...COMMON, 'keep-files': { type: 'boolean' }, purge: { type: 'boolean' }, all: { type: 'boolean' } }, false)
  if (values.help === true) { io.stdout(helpOf('down')); return 0 }
  if (values.all === true && values.id !== undefined) throw new UsageError('lab down: give --id or --all, not both')
  if (values.purge === true && values['keep-files'] === true) throw new UsageError('lab down: give --keep-files or --purge, not both')
  const root = values.dir ?? io.env.KAIROS_LAB_DIR ?? DEFAULT_LAB_ROOT
  const existing = await listLabIds(root)
  if (values.all === true && existing.length === 0) { io.stdout(`no labs under ${root}\n`); return 0 }
  const ids: Array<string | undefined> = values.all === true ? existing : [values.id]
  let problems = 0
  for (const id of ids) {
    const lab = labFor({ ...values, id }, io)
    const name = await lab.id()
    const dir = await lab.dir()
    const leftovers = existing.includes(name) ? [] : await readdir(dir).catch(() => [] as string[])
    const r = await lab.down({ keepFiles: values['keep-files'] === true, keepReports: values.purge !== true })
    const removed = r.namespaces.length + r.processes.length + r.links.length
    if (!existing.includes(name) && removed === 0) {
      // Only the reports of an earlier down were left, or nothing at all: say what exists.
      if (leftovers.length > 0) {
        io.stdout(values.purge === true ? `lab ${name} was down already; removed what it left in ${dir}\n` : `lab ${name} is down already; ${dir} holds ${leftovers.join(', ')} (--purge removes them)\n`)
        continue
      }
      throw new LabNotFoundError(`no lab '${name}' under ${root}: nothing removed; ${existing.length === 0 ? 'no labs there' : `labs there: ${existing.join(', ')}`}`)
    }
    io.stdout(`lab ${name} down: ${r.namespaces.length} namespaces, ${r.processes.length} processes, ${r.links.length} stray links removed\n`)
    if (r.kept.length > 0) io.stdout(`kept ${r.kept.join(', ')}${values['keep-files'] === true ? '' : ' (--purge removes them)'}\n`)
    for (const p of r.problems) io.stderr(`warning: ${p}\n`)
    problems += r.problems.length
  }
  return problems === 0 ? 0 : 1
}

const demo: Sub = async (argv, io) => {
  const { values } = parseCommandArgs('lab demo', argv, { ...COMMON, nodes: { type: 'string' }, keep: { type: 'boolean' }, timeout: { type: 'string' } }, false)
  if (values.help === true) { io.stdout(helpOf('demo')); return 0 }
  const nodes = intOption('nodes', values.nodes, 1, 200) ?? 5
  const timeoutMs = (intOption('timeout', values.timeout, 1, 86_400) ?? 120) * 1000
  const lab = labFor(values, io, { nodes })
  const rec = await lab.up(io.signal)
  io.stdout(`lab ${rec.id}: ${nodes} hosts up, agents starting…\n`)
  try {
    const s = await waitFormed(lab, timeoutMs, io.signal)
    io.stdout(formatLabStatus(s))
    const r = await lab.report(undefined, io.signal)
    io.stdout(`\n${formatMilestones(r)}`)
    return 0
  } finally {
    if (values.keep !== true) await lab.down({ keepFiles: true })
  }
}

const subcommands: Record<string, Sub> = {
  up,
  status,
  partition,
  heal: simple('heal', async (lab) => { await lab.heal(); return 'partitions removed\n' }),
  kill: onNode('kill', async (lab, node, agentOnly) => {
    await lab.kill(node, { agentOnly })
    return agentOnly ? `agent on ${node} killed\n` : `${node} powered off\n`
  }),
  restart: onNode('restart', async (lab, node, agentOnly, io) => {
    await lab.restart(node, { agentOnly, signal: io.signal })
    return agentOnly ? `agent on ${node} restarted\n` : `${node} booted\n`
  }),
  'power-cycle': simple('power-cycle', async (lab, io) => { await lab.powerCycle(io.signal); return 'every host power-cycled\n' }),
  exec,
  report,
  down,
  demo
}

/** `kairos-p2p lab`: dispatches to the lab subcommands. */
export const command: Command = {
  summary: 'build and drive a whole edge site in network namespaces',
  run: async (argv, io) => {
    const [name, ...rest] = argv
    if (name === 'help' && rest[0] !== undefined) { io.stdout(helpOf(rest[0])); return HELP[rest[0]] === undefined ? 2 : 0 }
    if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
      io.stdout(USAGE)
      return name === undefined ? 2 : 0
    }
    const sub = subcommands[name]
    if (sub === undefined) throw new UsageError(`lab: unknown command '${name}'; expected one of: ${Object.keys(subcommands).join(', ')}`)
    return await sub(rest, io)
  }
}
