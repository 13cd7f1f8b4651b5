import type { Command, CliIO } from './io.ts'
import { parseCommandArgs } from './io.ts'
import { AgentUnreachableError, queryAgent } from '../agent/api.ts'
import { formatStatus, type AgentStatus } from '../agent/status.ts'
import { shortPeer } from '../agent/reason.ts'
import { UsageError, errorMessage } from '../util/errors.ts'
import { systemClock } from '../util/clock.ts'

const HELP = `Usage: kairos-p2p status [--json | --metrics | --watch] [--state-dir DIR | --config FILE…]

Shows the running agent's view of the site: identity and network fingerprint,
phase and why it waits, role and init server, peers with liveness, overlay address
and WireGuard handshakes, state size, rejection counters and the formation
timeline. Read from the agent's local socket (<state dir>/agent.sock).

Options:
  --json            print the status as JSON (with no agent: {"error": …} and exit 1)
  --metrics         print Prometheus metrics instead
  --watch           a live view of the site, redrawn in place on a terminal; on a pipe,
                    one line per change (phase, members, timeline). Ctrl-C ends it
  --interval SEC    --watch refresh period (default 1)
  --count N         --watch: stop after N refreshes (default: until Ctrl-C)
  --state-dir DIR   the agent's state dir
  --config FILE     read p2p.state_dir from these cloud-configs (repeatable)
  --help            show this help
`

/** `--watch` refresh period, seconds. @default 1 */
export const DEFAULT_WATCH_INTERVAL_S = 1

const CLEAR = '\x1b[H\x1b[2J'

function ago (now: number, at: number | undefined): string {
  if (at === undefined || at <= 0) return '-'
  const s = Math.max(0, Math.round((now - at) / 1000))
  return s < 120 ? `${s}s ago` : `${Math.round(s / 60)}m ago`
}

function table (rows: string[][]): string[] {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? []
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd())
}

/**
 * The live site view: this node's phase, reason and election, then one row per member
 * (liveness, role and phase it published, overlay address, WireGuard handshake age),
 * then the timeline so far. `width` cuts long lines on a terminal.
 */
export function formatSite (s: AgentStatus, width = Infinity): string {
  const lines: string[] = []
  const clock = new Date(s.now).toISOString().slice(11, 19)
  lines.push(`node ${shortPeer(s.peerId)}   fingerprint ${s.fingerprint}${s.networkId === '' ? '' : `   network id ${s.networkId}`}   ${clock}`)
  lines.push(`phase ${s.phase}   role ${s.role ?? '-'}   init server ${s.leader === undefined ? '-' : shortPeer(s.leader)}   term ${s.term ?? 0}`)
  if (s.reason !== undefined) lines.push(`why   ${s.reason.text}`)
  for (const w of s.warnings) lines.push(`warn  ${w}`)
  lines.push('')
  const peers = new Map(s.peers.map((p) => [p.id, p]))
  const overlay = new Map((s.overlay?.peers ?? []).map((p) => [p.peerId, p]))
  const site = s.site ?? [{ peerId: s.peerId }, ...s.peers.map((p) => ({ peerId: p.id }))]
  const rows = [['MEMBER', 'LIVENESS', 'LAST SEEN', 'ROLE', 'PHASE', 'OVERLAY', 'HANDSHAKE']]
  for (const m of site) {
    const self = m.peerId === s.peerId
    const p = peers.get(m.peerId)
    const o = overlay.get(m.peerId)
    rows.push([
      `${shortPeer(m.peerId)}${self ? ' (self)' : ''}`,
      self ? 'self' : (p?.liveness ?? 'unknown'),
      self ? '-' : ago(s.now, p?.lastSeen),
      self ? (s.role ?? m.role ?? '-') : (m.role ?? '-'),
      self ? s.phase : (m.phase ?? '-'),
      self ? (s.overlay?.address ?? '-') : (o?.allowedIps?.[0]?.replace(/\/32$/, '') ?? '-'),
      self ? '-' : o === undefined ? '-' : `${o.up ? 'up' : 'down'} ${ago(s.now, o.latestHandshake)}`
    ])
  }
  lines.push(`members (${site.length})`, ...table(rows))
  lines.push('', 'timeline')
  for (const e of s.timeline) lines.push(`  +${((e.at - s.startedAt) / 1000).toFixed(2).padStart(7)}s  ${e.event}`)
  return lines.map((l) => (l.length > width ? `${l.slice(0, Math.max(0, width - 1))}…` : l)).join('\n') + '\n'
}

/**
 * What changed between two statuses, one line each, for `--watch` on a pipe: phase and
 * reason, role and init server, members joining or changing liveness, timeline events.
 */
export function statusChanges (prev: AgentStatus | undefined, next: AgentStatus): string[] {
  const t = new Date(next.now).toISOString().slice(11, 19)
  const out: string[] = []
  if (prev === undefined) {
    out.push(`${t} node ${next.peerId} phase ${next.phase}${next.role === undefined ? '' : ` role ${next.role}`}`)
  } else if (prev.phase !== next.phase || prev.role !== next.role) {
    out.push(`${t} phase ${next.phase}${next.role === undefined ? '' : ` role ${next.role}`}`)
  }
  if (next.reason !== undefined && (prev?.reason?.code !== next.reason.code || prev.phase !== next.phase)) out.push(`${t} why ${next.reason.text}`)
  if (next.leader !== undefined && prev?.leader !== next.leader) out.push(`${t} init server ${next.leader}`)
  const before = new Map((prev?.peers ?? []).map((p) => [p.id, p.liveness]))
  for (const p of next.peers) {
    const was = before.get(p.id)
    if (was !== p.liveness) out.push(`${t} member ${p.id} ${was === undefined ? '' : `${was} → `}${p.liveness}`)
  }
  const seen = new Set((prev?.timeline ?? []).map((e) => e.event))
  for (const e of next.timeline) if (!seen.has(e.event)) out.push(`${t} timeline +${((e.at - next.startedAt) / 1000).toFixed(2)}s ${e.event}`)
  const warned = new Set(prev?.warnings ?? [])
  for (const w of next.warnings) if (!warned.has(w) && !/^installer failed/.test(w)) out.push(`${t} warning ${w}`)
  return out
}

/** `--watch`: redraw in place on a terminal, lines of changes otherwise; ends on the signal or after `count` refreshes. */
async function watch (stateDir: string, io: CliIO, intervalMs: number, count: number | undefined, tty: { isTTY: boolean, columns: number }): Promise<number> {
  let prev: AgentStatus | undefined
  let lastError: string | undefined
  for (let i = 0; count === undefined || i < count; i++) {
    if (io.signal.aborted) break
    try {
      const s = JSON.parse(await queryAgent(stateDir, '/status')) as AgentStatus
      lastError = undefined
      if (tty.isTTY) io.stdout(`${CLEAR}${formatSite(s, tty.columns)}\n(every ${intervalMs / 1000} s; Ctrl-C ends)\n`)
      else for (const l of statusChanges(prev, s)) io.stdout(l + '\n')
      prev = s
    } catch (err) {
      const msg = errorMessage(err)
      if (tty.isTTY) io.stdout(`${CLEAR}${msg}\nretrying every ${intervalMs / 1000} s; Ctrl-C ends\n`)
      else if (msg !== lastError) io.stdout(`${new Date().toISOString().slice(11, 19)} ${msg}\n`)
      lastError = msg
    }
    if (count !== undefined && i + 1 >= count) break
    try { await systemClock.sleep(intervalMs, io.signal) } catch { break }
  }
  return 0
}

export const command: Command = {
  summary: 'show the running agent\'s view of the site',
  run: async (argv, io) => {
    const { values } = parseCommandArgs('status', argv, {
      json: { type: 'boolean' },
      metrics: { type: 'boolean' },
      watch: { type: 'boolean' },
      interval: { type: 'string' },
      count: { type: 'string' },
      'state-dir': { type: 'string' },
      config: { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h' }
    }, false)
    if (values.help === true) { io.stdout(HELP); return 0 }
    const modes = [values.json, values.metrics, values.watch].filter((v) => v === true).length
    if (modes > 1) throw new UsageError('status: give one of --json, --metrics and --watch')
    if (values.watch !== true && (values.interval !== undefined || values.count !== undefined)) throw new UsageError('status: --interval and --count go with --watch')
    const interval = values.interval === undefined ? DEFAULT_WATCH_INTERVAL_S : Number(values.interval)
    if (!(Number.isFinite(interval) && interval >= 0.1 && interval <= 3600)) throw new UsageError(`status: --interval '${values.interval ?? ''}' is invalid; expected seconds from 0.1 to 3600`)
    const count = values.count === undefined ? undefined : Number(values.count)
    if (count !== undefined && !(Number.isInteger(count) && count >= 1)) throw new UsageError(`status: --count '${values.count ?? ''}' is invalid; expected a positive integer`)
    let stateDir = values['state-dir']
    if (stateDir === undefined) {
      const { loadConfig } = await import('../config/index.ts')
      const files = values.config ?? []
      if (files.length === 0) stateDir = (await loadConfig([])).config.p2p.stateDir
      else stateDir = (await loadConfig(files)).config.p2p.stateDir
    }
    if (stateDir === '') throw new UsageError('status: empty --state-dir; expected the agent\'s state directory')
    if (values.watch === true) {
      return await watch(stateDir, io, interval * 1000, count, { isTTY: process.stdout.isTTY, columns: process.stdout.columns > 0 ? process.stdout.columns : Infinity })
    }
    if (values.metrics === true) {
      io.stdout(await queryAgent(stateDir, '/metrics'))
      return 0
    }
    let text: string
    try {
      text = await queryAgent(stateDir, '/status')
    } catch (err) {
      // A script reading --json gets JSON either way; the message goes to stderr as well.
      if (values.json === true && err instanceof AgentUnreachableError) io.stdout(JSON.stringify({ error: { name: err.name, message: err.message, socket: err.socketPath } }) + '\n')
      throw err
    }
    if (values.json === true) { io.stdout(text.endsWith('\n') ? text : text + '\n'); return 0 }
    io.stdout(formatStatus(JSON.parse(text) as AgentStatus))
    return 0
  }
}
