import { readdir, rm } from 'node:fs/promises'
import { systemClock, type Clock } from '../util/clock.ts'
import { errorMessage } from '../util/errors.ts'
import { join } from 'node:path'
import { LAB_RECORD_FILE, labDir, readLabRecord } from './meta.ts'
import { labPrefix, planNamespaces } from './plan.ts'
import { namespaceInode, processesInNamespaces, terminate } from './processes.ts'
import type { Runner } from './run.ts'

/** Scans of a lab's namespaces for processes to end before giving up on stragglers. */
const KILL_ROUNDS = 5

/** What `teardownLab` removed, and what it could not. */
export interface TeardownReport {
  namespaces: string[]
  /** PIDs that were ended (agents, stand-ins, wireguard-go, holders…). */
  processes: number[]
  /** Root-namespace links with the lab prefix (left by a crash mid-build). */
  links: string[]
  /** Problems that did not stop the teardown. */
  problems: string[]
  /** Files left in place: the reports (by default), or the whole lab dir with `keepFiles`. */
  kept: string[]
}

/** What `lab report` writes into the lab dir: kept by `lab down` unless told otherwise. */
export const REPORT_FILES: readonly string[] = Object.freeze(['timeline.json', 'timeline.svg'])

/** Options of `teardownLab`. */
export interface TeardownInit {
  root: string
  id: string
  run: Runner
  /** SIGTERM → SIGKILL grace for lab processes, ms. @default 1500 */
  graceMs?: number
  /** Keep the lab dir (logs, state dirs, reports; lab.json is still removed) instead of removing it. @default false */
  keepFiles?: boolean
  /** Keep the report files (REPORT_FILES) in the lab dir when removing the rest. @default true */
  keepReports?: boolean
  clock?: Clock
  signal?: AbortSignal
}

/** Names of namespaces in `ip netns list` output that carry `prefix`. */
export function parseNetnsList (text: string, prefix: string): string[] {
  return text.split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter((n) => n.startsWith(prefix))
}

/** Names of links in `ip -o link show` output that carry `prefix` (`@peer` suffix removed). */
export function parseLinkList (text: string, prefix: string): string[] {
  const names: string[] = []
  for (const line of text.split('\n')) {
    const m = /^\d+:\s+([^:@\s]+)/.exec(line)
    if (m?.[1] !== undefined && m[1].startsWith(prefix)) names.push(m[1])
  }
  return names
}

/**
 * Removes every trace of lab `id`: processes living in its namespaces (found by
 * namespace inode, never by name), the namespaces (their veths and bridges go with
 * them), stray root-namespace links with the lab prefix, and the lab dir. Works from
 * lab.json and, without it, from the namespaces' names alone. Idempotent.
 */
export async function teardownLab (init: TeardownInit): Promise<TeardownReport> {
  const clock = init.clock ?? systemClock
  const prefix = labPrefix(init.id)
  const report: TeardownReport = { namespaces: [], processes: [], links: [], problems: [], kept: [] }
  let recorded: string[] = []
  try {
    const rec = await readLabRecord(init.root, init.id)
    if (rec !== undefined) recorded = planNamespaces({ ...rec.plan, hosts: rec.hosts })
  } catch (err) {
    report.problems.push(`lab.json unreadable: ${errorMessage(err)}`)
  }
  const listed = await init.run(['ip', 'netns', 'list'], { reject: false })
  const names = [...new Set([...recorded, ...parseNetnsList(listed.stdout, prefix)])]
  const inodes = new Map<string, number>()
  for (const ns of names) {
    const ino = await namespaceInode(ns)
    if (ino !== undefined) inodes.set(ns, ino)
  }
  // A process being stopped can start another one in its host (a dying agent's VPN
  // restarting wireguard-go): scan again until the namespaces hold nothing we have not
  // signalled, SIGKILL at once from the second round on.
  const spaces = new Set(inodes.values())
  const pids: number[] = []
  const left: number[] = []
  for (let round = 0; round < KILL_ROUNDS; round++) {
    const found = (await processesInNamespaces(spaces)).filter((pid) => !left.includes(pid))
    if (found.length === 0) break
    pids.push(...found.filter((pid) => !pids.includes(pid)))
    const graceMs = round === 0 ? init.graceMs ?? 1500 : 0
    left.push(...await terminate(found, { graceMs, clock, ...(init.signal === undefined ? {} : { signal: init.signal }) }))
  }
  report.processes = pids
  for (const pid of left) report.problems.push(`PID ${pid} still running after SIGKILL`)
  const listedNames = new Set(parseNetnsList(listed.stdout, prefix))
  for (const ns of names.filter((n) => inodes.has(n) || listedNames.has(n))) {
    const r = await init.run(['ip', 'netns', 'del', ns], { reject: false })
    if (r.exitCode === 0) report.namespaces.push(ns)
    else report.problems.push(`ip netns del ${ns}: ${r.stderr.trim()}`)
  }
  const links = await init.run(['ip', '-o', 'link', 'show'], { reject: false })
  for (const link of parseLinkList(links.stdout, prefix)) {
    const r = await init.run(['ip', 'link', 'del', link], { reject: false })
    if (r.exitCode === 0) report.links.push(link)
    else report.problems.push(`ip link del ${link}: ${r.stderr.trim()}`)
  }
  // With keepFiles the logs, state dirs and reports stay, but lab.json goes: the lab no longer exists.
  const dir = labDir(init.root, init.id)
  if (init.keepFiles === true) {
    await rm(join(dir, LAB_RECORD_FILE), { force: true })
    if (await exists(dir)) report.kept.push(dir)
    return report
  }
  const entries = await readdir(dir).catch(() => [] as string[])
  const reports = init.keepReports === false ? [] : entries.filter((e) => REPORT_FILES.includes(e))
  if (reports.length === 0) await rm(dir, { recursive: true, force: true })
  else {
    for (const e of entries) if (!reports.includes(e)) await rm(join(dir, e), { recursive: true, force: true })
    report.kept.push(...reports.map((e) => join(dir, e)))
  }
  return report
}

async function exists (path: string): Promise<boolean> {
  return await readdir(path).then(() => true, () => false)
}
