import { randomBytes } from 'node:crypto'
import { execa, type ResultPromise } from 'execa'

/**
 * Two throw-away hosts for root-only tests and benchmarks of the WireGuard driver: each is a network namespace plus its own
 * mount namespace (a private tmpfs on /run/wireguard, where wireguard-go keeps its
 * control socket), joined by a veth pair with 10.x addresses. Commands reach a host
 * through `prefix` (`nsenter --net=… --mount=/proc/<holder>/ns/mnt`). Names carry a
 * random suffix; `cleanup()` removes everything and never throws.
 */
export interface NetnsHost {
  /** Network namespace name (`ip netns`). */
  netns: string
  /** PID of the process that holds the mount namespace. */
  holderPid: number
  /** Prepend to a command to run it inside this host. */
  prefix: string[]
  /** The host's veth device and its address on the shared link. */
  device: string
  address: string
  prefixLength: number
  /** Runs a command inside the host; never rejects on a non-zero exit. */
  run(args: string[], signal?: AbortSignal): Promise<{ ok: boolean, stdout: string, stderr: string }>
}

export interface NetnsPair {
  hosts: [NetnsHost, NetnsHost]
  /** Kills `pids` and the holders (by PID), deletes the namespaces and links. Idempotent. */
  cleanup(pids?: number[]): Promise<void>
}

async function ip (args: string[]): Promise<void> {
  await execa('ip', args)
}

/** Starts a process in a new private mount namespace with a tmpfs on /run/wireguard; resolves once mounted. */
async function startHolder (): Promise<{ pid: number, subprocess: ResultPromise }> {
  const subprocess = execa('unshare', ['--mount', '--propagation', 'private', 'sh', '-c',
    'mkdir -p /run/wireguard && mount -t tmpfs -o mode=0700 tmpfs /run/wireguard && echo ready && exec sleep 3600'],
  { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe', reject: false, buffer: false })
  const pid = subprocess.pid
  if (pid === undefined) throw new Error('unshare: could not start')
  await new Promise<void>((resolve, reject) => {
    let seen = ''
    const onData = (chunk: Buffer): void => {
      seen += chunk.toString()
      if (seen.includes('ready')) { subprocess.stdout?.off('data', onData); resolve() }
    }
    subprocess.stdout?.on('data', onData)
    void subprocess.then((r) => { reject(new Error(`mount namespace holder exited: ${r.stderr ?? ''}`)) })
  })
  return { pid, subprocess }
}

/** Creates two connected hosts. On failure everything created so far is removed. */
export async function createNetnsPair (): Promise<NetnsPair> {
  const suffix = randomBytes(3).toString('hex')
  const names = [`kvt-${suffix}-a`, `kvt-${suffix}-b`] as const
  const devices = [`kv${suffix}a`, `kv${suffix}b`] as const
  const third = 1 + (randomBytes(1)[0] ?? 0) % 250
  const addresses = [`10.201.${third}.1`, `10.201.${third}.2`] as const
  const holders: Array<{ pid: number, subprocess: ResultPromise }> = []
  const created: string[] = []
  let cleaned = false

  const cleanup = async (pids: number[] = []): Promise<void> => {
    if (cleaned) return
    cleaned = true
    for (const pid of pids) { try { process.kill(pid, 'SIGKILL') } catch {} }
    for (const h of holders) {
      try { process.kill(h.pid, 'SIGKILL') } catch {}
      await h.subprocess.catch(() => {})
    }
    for (const name of created) await execa('ip', ['netns', 'del', name], { reject: false })
    await execa('ip', ['link', 'del', devices[0]], { reject: false })
  }

  try {
    for (const name of names) {
      await ip(['netns', 'add', name])
      created.push(name)
    }
    await ip(['link', 'add', devices[0], 'type', 'veth', 'peer', 'name', devices[1]])
    const hosts: NetnsHost[] = []
    for (const i of [0, 1] as const) {
      const netns = names[i]
      await ip(['link', 'set', devices[i], 'netns', netns])
      const holder = await startHolder()
      holders.push(holder)
      const prefix = ['nsenter', `--net=/run/netns/${netns}`, `--mount=/proc/${holder.pid}/ns/mnt`]
      const run = async (args: string[], signal?: AbortSignal): Promise<{ ok: boolean, stdout: string, stderr: string }> => {
        const all = [...prefix, ...args]
        const r = await execa(all[0] as string, all.slice(1), { reject: false, stdin: 'ignore', ...(signal === undefined ? {} : { cancelSignal: signal }) })
        return { ok: !r.failed, stdout: r.stdout, stderr: r.stderr }
      }
      for (const args of [
        ['ip', 'link', 'set', 'lo', 'up'],
        ['ip', 'address', 'add', `${addresses[i]}/24`, 'dev', devices[i]],
        ['ip', 'link', 'set', devices[i], 'up']
      ]) {
        const r = await run(args)
        if (!r.ok) throw new Error(`${args.join(' ')} in ${netns}: ${r.stderr}`)
      }
      hosts.push({ netns, holderPid: holder.pid, prefix, device: devices[i], address: addresses[i], prefixLength: 24, run })
    }
    return { hosts: hosts as [NetnsHost, NetnsHost], cleanup }
  } catch (err) {
    await cleanup()
    throw err
  }
}

/** True when the test process may create namespaces. */
export function isRoot (): boolean {
  return process.getuid?.() === 0
}
