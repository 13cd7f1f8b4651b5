// Readings of processes and of the machine, from /proc, shared by the lab benchmarks.
import { readFile } from 'node:fs/promises'

/** Median and max, rounded to two decimals; null without samples. */
export function stats (samples: readonly number[]): { median: number, max: number } | null {
  if (samples.length === 0) return null
  const s = [...samples].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  const median = s.length % 2 === 1 ? s[mid] as number : ((s[mid - 1] as number) + (s[mid] as number)) / 2
  const r = (x: number): number => Math.round(x * 100) / 100
  return { median: r(median), max: r(s.at(-1) as number) }
}

/** Seconds with two decimals, or null when the milestone was never reached. */
export function secs (ms: number | undefined): number | null {
  return ms === undefined ? null : Math.round(ms / 10) / 100
}

/** Resident memory of `pid`, kB: all of it (VmRSS), its private anonymous part and its file-backed part. */
export interface Memory { rss: number, anon: number, file: number }
export async function memoryKb (pid: number): Promise<Memory | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/status`, 'utf8')
    const kb = (field: string): number | undefined => {
      const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)
      return m?.[1] === undefined ? undefined : Number(m[1])
    }
    const rss = kb('VmRSS')
    const anon = kb('RssAnon')
    const file = kb('RssFile')
    return rss === undefined || anon === undefined || file === undefined ? undefined : { rss, anon, file }
  } catch { return undefined }
}

/** Median / max in MB of each part of the agents' memory. */
export function memoryStats (samples: ReadonlyArray<Memory | undefined>): Record<keyof Memory, ReturnType<typeof stats>> {
  const got = samples.filter((m) => m !== undefined)
  return {
    rss: stats(got.map((m) => m.rss / 1024)),
    anon: stats(got.map((m) => m.anon / 1024)),
    file: stats(got.map((m) => m.file / 1024))
  }
}

/** utime + stime of `pid`, in clock ticks. */
export async function cpuTicks (pid: number): Promise<number | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8')
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
    // Fields after the command: state is field 3, utime 14, stime 15 (1-based in proc(5)).
    return Number(fields[11]) + Number(fields[12])
  } catch { return undefined }
}

/** eth0 rx+tx bytes in the network namespace of `pid` (/proc/<pid>/net/dev is per namespace). */
export async function eth0Bytes (pid: number): Promise<number | undefined> {
  try {
    const line = (await readFile(`/proc/${pid}/net/dev`, 'utf8')).split('\n').find((l) => l.trim().startsWith('eth0:'))
    if (line === undefined) return undefined
    const f = line.slice(line.indexOf(':') + 1).trim().split(/\s+/)
    return Number(f[0]) + Number(f[8])
  } catch { return undefined }
}

export const CLOCK_TICKS_PER_S = 100

/** Busy and total jiffies of the whole machine (/proc/stat), to tell a CPU-bound formation from a waiting one. */
export async function machineTicks (): Promise<{ busy: number, total: number }> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0] ?? ''
  const f = line.trim().split(/\s+/).slice(1).map(Number)
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0)
  const idle = (f[3] ?? 0) + (f[4] ?? 0)
  return { busy: total - idle, total }
}
