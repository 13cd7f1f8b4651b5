import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import type { Command, CliIO } from './io.ts'
import { parseCommandArgs } from './io.ts'
import { UsageError } from '../util/errors.ts'
import { parseDocument } from '../config/load.ts'
import { assertAgentsAlive, createLab, isFormed, type Lab, type LabInit, type LabStatus } from '../netns-lab/lab.ts'
import type { TimelineReport } from '../netns-lab/report.ts'
import { DEFAULT_LAB_ROOT, listLabIds } from '../netns-lab/meta.ts'

const USAGE = `Usage: kairos-p2p lab <command> [options]

Build and drive a whole edge site on this machine: one network namespace (plus a
private mount namespace) per host, bridges, an optional router between segments,
one agent per host and a k3s stand-in. Needs root.

Commands:
  up --nodes N [--segments S] [--loss PCT] [--delay MS] [--token T | --token-file F]
     [--config FILE] [--min M] [--id ID] [--wait] [--timeout SEC] [--json] [--no-agents]
     [--from-artefact [--artefact DIR]]
                          build the site and start one agent per host
                          (--no-agents: the network only, to test it or run agents by hand;
                          --from-artefact: every host runs the self-contained executable
                          from 'npm run build' as its systemd unit does, state in
                          /var/lib/kairos/p2p; --artefact: another unpacked artefact)
  status [--json]         per node: agent, phase, role, overlay address, WireGuard
                          handshakes, joined; plus the stand-in registry (kubectl get nodes)
  partition A B           cut node group A off from group B (groups: n1,n2)
  heal                    remove every partition
  kill [--agent] NODE     power a host off hard (agent, stand-in, wireguard-go);
                          --agent: kill only the agent process (a crash)
  restart [--agent] NODE  boot a host again (powering it off first when it runs);
                          --agent: restart only the agent (SIGTERM, then start)
  power-cycle             power every host off hard and boot them all again
  exec NODE -- CMD...     run a command inside a host
  report [--out DIR]      write timeline.json and timeline.svg (default: the lab dir)
  down [--keep-files] [--all]
                          remove everything of the lab (also after a crashed run);
                          --all: every lab recorded under --dir
  demo [--nodes N] [--keep]
                          up, wait until formed, print status and the timeline, down

Options for every command:
  --id ID                 lab id ([a-z0-9]{1,6}); default: the only lab (up: random)
  --dir DIR               where labs live (default ${DEFAULT_LAB_ROOT}, or KAIROS_LAB_DIR)
  --help                  show this help

A token given with --token is visible in the process list; --token-file is not.
`

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
      n.joined ? `${n.registeredAs ?? 'yes'}${n.init ? ' (init)' : ''}` : 'no'
    ])
  }
  let out = `lab ${s.id}: ${s.nodes.length} nodes, ${s.clusters.length} cluster${s.clusters.length === 1 ? '' : 's'}${isFormed(s) ? ', formed' : ''}\n\n` + pad(rows)
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

/** Waits until formed; fails early, with the end of its log, when an agent exits meanwhile. */
async function waitFormed (lab: Lab, timeoutMs: number, signal: AbortSignal): Promise<LabStatus> {
  const s = await lab.waitFor((st) => isFormed(st) || st.nodes.some((n) => n.powered && !n.running), { timeoutMs, signal, what: 'every node joined one cluster' })
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
    'from-artefact': { type: 'boolean' },
    artefact: { type: 'string' }
  }, false)
  if (values.help === true) { io.stdout(USAGE); return 0 }
  if (values.artefact !== undefined && values['from-artefact'] !== true) throw new UsageError('lab up: --artefact DIR goes with --from-artefact')
  if (values['no-agents'] === true && values.wait === true) throw new UsageError('lab up: --wait needs agents; drop --no-agents or --wait')
  if (values.nodes === undefined) throw new UsageError("lab up: --nodes N is required (see 'lab --help')")
  if (values.token !== undefined && values['token-file'] !== undefined) throw new UsageError('lab up: give --token or --token-file, not both')
  const init: LabInit = { agents: values['no-agents'] !== true }
  init.nodes = intOption('nodes', values.nodes, 1, 200)
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
  const timeoutMs = (intOption('timeout', values.timeout, 1, 86_400) ?? 120) * 1000
  const lab = labFor(values, io, init)
  const rec = await lab.up(io.signal)
  if (values.json !== true) {
    io.stdout(`lab ${rec.id} up: ${rec.hosts.length} hosts on ${rec.plan.segments.length} segment${rec.plan.segments.length === 1 ? '' : 's'}` +
      `${rec.impairment === 'none' ? '' : ` (loss ${rec.lossPct}%, delay ${rec.delayMs} ms via ${rec.impairment})`}, minimum_nodes ${rec.minimumNodes}\n` +
      `lab dir ${rec.dir}\n`)
  }
  if (values.wait !== true) {
    if (values.json === true) io.stdout(JSON.stringify(rec, null, 2) + '\n')
    return 0
  }
  const s = await waitFormed(lab, timeoutMs, io.signal)
  io.stdout(values.json === true ? JSON.stringify(s, null, 2) + '\n' : formatLabStatus(s))
  return 0
}

const status: Sub = async (argv, io) => {
  const { values } = parseCommandArgs('lab status', argv, { ...COMMON, json: { type: 'boolean' } }, false)
  if (values.help === true) { io.stdout(USAGE); return 0 }
  const s = await labFor(values, io).status(io.signal)
  io.stdout(values.json === true ? JSON.stringify(s, null, 2) + '\n' : formatLabStatus(s))
  return 0
}

const partition: Sub = async (argv, io) => {
  const { values, positionals } = parseCommandArgs('lab partition', argv, COMMON)
  if (values.help === true) { io.stdout(USAGE); return 0 }
  const [a, b, ...rest] = positionals
  if (a === undefined || b === undefined || rest.length > 0) throw new UsageError('lab partition: expected two node groups, e.g. lab partition n1 n2,n3')
  await labFor(values, io).partition(a, b)
  io.stdout(`partitioned ${a} | ${b}\n`)
  return 0
}

const simple = (name: string, act: (lab: Lab, io: CliIO) => Promise<string>): Sub => async (argv, io) => {
  const { values } = parseCommandArgs(`lab ${name}`, argv, COMMON, false)
  if (values.help === true) { io.stdout(USAGE); return 0 }
  io.stdout(await act(labFor(values, io), io))
  return 0
}

const onNode = (name: string, act: (lab: Lab, node: string, agentOnly: boolean, io: CliIO) => Promise<string>): Sub => async (argv, io) => {
  const { values, positionals } = parseCommandArgs(`lab ${name}`, argv, { ...COMMON, agent: { type: 'boolean' } })
  if (values.help === true) { io.stdout(USAGE); return 0 }
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
  if (values.help === true) { io.stdout(USAGE); return 0 }
  const [node, ...rest] = positionals
  if (node === undefined || rest.length > 0 || cmd.length === 0) throw new UsageError('lab exec: expected NODE -- CMD..., e.g. lab exec n1 -- wg show')
  const r = await labFor(values, io).exec(node, cmd, io.signal)
  if (r.stdout !== '') io.stdout(r.stdout + '\n')
  if (r.stderr !== '') io.stderr(r.stderr + '\n')
  return r.exitCode
}

const report: Sub = async (argv, io) => {
  const { values } = parseCommandArgs('lab report', argv, { ...COMMON, out: { type: 'string' } }, false)
  if (values.help === true) { io.stdout(USAGE); return 0 }
  io.stdout(formatMilestones(await labFor(values, io).report(values.out, io.signal)))
  return 0
}

const down: Sub = async (argv, io) => {
  const { values } = parseCommandArgs('lab down', argv, { ...COMMON, 'keep-files': { type: 'boolean' }, all: { type: 'boolean' } }, false)
  if (values.help === true) { io.stdout(USAGE); return 0 }
  if (values.all === true && values.id !== undefined) throw new UsageError('lab down: give --id or --all, not both')
  const root = values.dir ?? io.env.KAIROS_LAB_DIR ?? DEFAULT_LAB_ROOT
  const ids = values.all === true ? await listLabIds(root) : [undefined]
  let problems = 0
  for (const id of ids) {
    const lab = labFor({ ...values, id }, io)
    const r = await lab.down({ keepFiles: values['keep-files'] === true })
    io.stdout(`lab ${await lab.id()} down: ${r.namespaces.length} namespaces, ${r.processes.length} processes, ${r.links.length} stray links removed\n`)
    for (const p of r.problems) io.stderr(`warning: ${p}\n`)
    problems += r.problems.length
  }
  if (ids.length === 0) io.stdout(`no labs under ${root}\n`)
  return problems === 0 ? 0 : 1
}

const demo: Sub = async (argv, io) => {
  const { values } = parseCommandArgs('lab demo', argv, { ...COMMON, nodes: { type: 'string' }, keep: { type: 'boolean' }, timeout: { type: 'string' } }, false)
  if (values.help === true) { io.stdout(USAGE); return 0 }
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
    if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
      io.stdout(USAGE)
      return name === undefined ? 2 : 0
    }
    const sub = subcommands[name]
    if (sub === undefined) throw new UsageError(`lab: unknown command '${name}'; expected one of: ${Object.keys(subcommands).join(', ')}`)
    return await sub(rest, io)
  }
}
