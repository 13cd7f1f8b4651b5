import { readdir, readFile, readlink, stat } from 'node:fs/promises'
import { systemClock, type Clock } from '../util/clock.ts'

/**
 * Finding and ending lab processes by PID. A lab process is recognised by its
 * network namespace (the inode behind /proc/<pid>/ns/net), never by its name, so
 * nothing outside the lab is ever signalled, even after PID reuse.
 */

/** Inode of a named network namespace (/run/netns/<ns>), or undefined when it does not exist. */
export async function namespaceInode (ns: string): Promise<number | undefined> {
  try {
    return (await stat(`/run/netns/${ns}`)).ino
  } catch {
    return undefined
  }
}

/** Inode of the network namespace of `pid`, or undefined when the process is gone. */
export async function processNetInode (pid: number): Promise<number | undefined> {
  try {
    const link = await readlink(`/proc/${pid}/ns/net`)
    const m = /\[(\d+)\]/.exec(link)
    return m?.[1] === undefined ? undefined : Number(m[1])
  } catch {
    return undefined
  }
}

/** PIDs of every process whose network namespace is one of `inodes` (our own process excluded). */
export async function processesInNamespaces (inodes: ReadonlySet<number>): Promise<number[]> {
  if (inodes.size === 0) return []
  const found: number[] = []
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const pid = Number(entry)
    if (pid === process.pid) continue
    const ino = await processNetInode(pid)
    if (ino !== undefined && inodes.has(ino)) found.push(pid)
  }
  return found
}

/** The command name of `pid` (/proc/<pid>/comm), or undefined when it is gone. */
export async function processComm (pid: number): Promise<string | undefined> {
  try {
    return (await readFile(`/proc/${pid}/comm`, 'utf8')).trim()
  } catch {
    return undefined
  }
}

/** True while `pid` exists and is not a zombie. */
export async function isRunning (pid: number): Promise<boolean> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8')
    const state = text.slice(text.lastIndexOf(')') + 2, text.lastIndexOf(')') + 3)
    return state !== 'Z' && state !== 'X' && state !== ''
  } catch {
    return false
  }
}

/** Options of `terminate`. */
export interface TerminateOptions {
  /** Time between SIGTERM and SIGKILL, ms; 0 sends SIGKILL at once. @default 2000 */
  graceMs?: number
  /** Give up waiting for exits after SIGKILL, ms. @default 5000 */
  killWaitMs?: number
  clock?: Clock
  signal?: AbortSignal
}

/** Polling interval while waiting for processes to exit, ms. */
const EXIT_POLL_MS = 25

async function waitGone (pids: number[], deadline: number, clock: Clock, signal?: AbortSignal): Promise<number[]> {
  let left = pids
  for (;;) {
    const still: number[] = []
    for (const pid of left) if (await isRunning(pid)) still.push(pid)
    left = still
    if (left.length === 0 || clock.now() >= deadline) return left
    await clock.sleep(EXIT_POLL_MS, signal)
  }
}

function send (pid: number, sig: NodeJS.Signals): void {
  try { process.kill(pid, sig) } catch { /* already gone */ }
}

/**
 * Ends `pids`: SIGTERM, then SIGKILL for those still running after the grace time.
 * Resolves with the PIDs that were still running at the end (normally none).
 */
export async function terminate (pids: readonly number[], options: TerminateOptions = {}): Promise<number[]> {
  const clock = options.clock ?? systemClock
  const graceMs = options.graceMs ?? 2000
  let left = [...pids]
  if (left.length === 0) return []
  if (graceMs > 0) {
    for (const pid of left) send(pid, 'SIGTERM')
    left = await waitGone(left, clock.now() + graceMs, clock, options.signal)
  }
  for (const pid of left) send(pid, 'SIGKILL')
  return await waitGone(left, clock.now() + (options.killWaitMs ?? 5000), clock, options.signal)
}
