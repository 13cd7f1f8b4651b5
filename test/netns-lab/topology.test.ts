import { execa } from 'execa'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, unlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { createLab, type Lab } from '../../netns-lab/lab.ts'
import { planTopology } from '../../netns-lab/plan.ts'
import { DEFAULT_NEIGHBOUR_LIMITS, ensureNeighbourLimits, neighbourLimitsFor } from '../../netns-lab/topology.ts'
import { namespaceInode, processesInNamespaces } from '../../netns-lab/processes.ts'
import { createRunner, hostArgv } from '../../netns-lab/run.ts'

const isRoot = process.getuid?.() === 0
const mcast = fileURLToPath(new URL('./fixtures/mcast.ts', import.meta.url))
const mainTs = fileURLToPath(new URL('../../cli/main.ts', import.meta.url))
const labs: Lab[] = []
let root = ''

async function newLab (id: string, nodes: number, extra: Parameters<typeof createLab>[0] = {}): Promise<Lab> {
  root ||= await mkdtemp(join(tmpdir(), 'kairos-lab-test-'))
  const lab = createLab({ id, root, nodes, agents: false, ...extra })
  labs.push(lab)
  await lab.up()
  return lab
}

async function ping (lab: Lab, from: string, to: string): Promise<boolean> {
  const r = await lab.exec(from, ['ping', '-c', '1', '-W', '2', to])
  return r.exitCode === 0
}

/** A ping expected to fail: one second is enough on a local bridge. */
async function cut (lab: Lab, from: string, to: string): Promise<boolean> {
  const r = await lab.exec(from, ['ping', '-c', '1', '-W', '1', to])
  return r.exitCode !== 0
}

/** Namespaces, processes and root links of the lab with prefix `kl<id>-`. */
async function traces (id: string): Promise<{ namespaces: string[], links: string[] }> {
  const ns = (await execa('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(`kl${id}-`))
  const links = (await execa('ip', ['-o', 'link', 'show'])).stdout.split('\n').filter((l) => l.includes(`kl${id}-`))
  return { namespaces: ns, links }
}

const suffix = (process.pid % 1000).toString(36)

afterAll(async () => {
  for (const lab of labs) await lab.down().catch(() => {})
  if (root !== '') await rm(root, { recursive: true, force: true })
})

describe.skipIf(!isRoot)('lab topology (root)', () => {
  it('3 hosts on one segment reach each other over the bridge, each with a private /run/wireguard and a multicast route', async () => {
    const lab = await newLab(`a${suffix}`, 3)
    const rec = await lab.record()
    const [n1, n2, n3] = rec.hosts
    if (n1 === undefined || n2 === undefined || n3 === undefined) throw new Error('expected 3 hosts')
    expect(await ping(lab, 'n1', n2.address)).toBe(true)
    expect(await ping(lab, 'n1', n3.address)).toBe(true)
    expect(await ping(lab, 'n3', n2.address)).toBe(true)
    expect((await lab.exec('n1', ['findmnt', '-n', '-o', 'FSTYPE', '/run/wireguard'])).stdout.trim()).toBe('tmpfs')
    expect((await lab.exec('n1', ['touch', '/run/wireguard/n1-only'])).exitCode).toBe(0)
    expect((await lab.exec('n2', ['test', '-e', '/run/wireguard/n1-only'])).exitCode).not.toBe(0)
    expect(existsSync('/run/wireguard/n1-only')).toBe(false)
    expect((await lab.exec('n2', ['ip', 'route', 'show', '224.0.0.0/4'])).stdout).toContain('dev eth0')
  })

  it('2 segments: hosts reach each other through the router, multicast stays on its segment', async () => {
    const lab = await newLab(`b${suffix}`, 3, { segments: 2 })
    const rec = await lab.record()
    const [n1, n2, n3] = rec.hosts
    if (n1 === undefined || n2 === undefined || n3 === undefined) throw new Error('expected 3 hosts')
    expect([n1.segment, n2.segment, n3.segment]).toEqual([0, 1, 0])
    expect(await ping(lab, 'n1', n2.address)).toBe(true)
    expect(await ping(lab, 'n2', n3.address)).toBe(true)
    // A listener on each segment; n1 sends to the mDNS group.
    const listen = (h: typeof n1): ReturnType<typeof execa> => {
      const [file, ...args] = hostArgv(h.ns, h.holderPid ?? 0, [process.execPath, mcast, 'listen', h.address, '3000'])
      return execa(file ?? 'nsenter', args, { reject: false })
    }
    const same = listen(n3)
    const other = listen(n2)
    // Both ready-waits are attached before either is awaited, so no 'ready' line is missed.
    await Promise.all([same, other].map(async (p) => {
      await new Promise<void>((resolve, reject) => {
        p.stdout?.once('data', () => { resolve() })
        p.then(() => { reject(new Error('listener ended before it was ready')) }, reject)
      })
    }))
    expect((await lab.exec('n1', [process.execPath, mcast, 'send', n1.address])).exitCode).toBe(0)
    expect(String((await same).stdout).split('\n').at(-1)).toBe('1')
    expect(String((await other).stdout).split('\n').at(-1)).toBe('0')
    // Only the DHT can join the segments: every other host bootstraps from n1, whose identity is pre-made.
    expect(rec.bootstrapPeers).toEqual([expect.stringMatching(new RegExp(`^/ip4/${n1.address}/tcp/4001/p2p/12D3Koo\\w+$`))])
    expect(await readFile(n2.configPath, 'utf8')).toContain(rec.bootstrapPeers[0])
    expect(await readFile(n1.configPath, 'utf8')).not.toContain('bootstrap_peers')
  })

  it('packet loss is applied on every host veth (100 % loss: nothing gets through)', async () => {
    const lab = await newLab(`c${suffix}`, 2, { lossPct: 100 })
    const rec = await lab.record()
    expect(rec.impairment).not.toBe('none')
    expect(await cut(lab, 'n1', rec.hosts[1]?.address ?? '')).toBe(true)
  })

  it('a delay on a kernel without netem is refused and leaves nothing behind', async () => {
    const probe = await execa('tc', ['qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '1ms'], { reject: false })
    if (probe.exitCode === 0) {
      await execa('tc', ['qdisc', 'del', 'dev', 'lo', 'root'], { reject: false })
      const lab = await newLab(`d${suffix}`, 2, { delayMs: 50 })
      const r = await lab.exec('n1', ['tc', 'qdisc', 'show', 'dev', 'eth0'])
      expect(r.stdout).toMatch(/netem.*delay 50ms/)
      return
    }
    const lab = createLab({ id: `d${suffix}`, root: root || await mkdtemp(join(tmpdir(), 'kairos-lab-test-')), nodes: 2, agents: false, delayMs: 50 })
    labs.push(lab)
    await expect(lab.up()).rejects.toMatchObject({ name: 'LabCapabilityError' })
    expect(await traces(`d${suffix}`)).toEqual({ namespaces: [], links: [] })
  })

  it('partition cuts two hosts apart and heal joins them again', async () => {
    const lab = await newLab(`e${suffix}`, 3)
    const rec = await lab.record()
    const addr = (i: number): string => rec.hosts[i]?.address ?? ''
    await lab.partition('n1', 'n2,n3')
    expect(await cut(lab, 'n1', addr(1))).toBe(true)
    expect(await cut(lab, 'n3', addr(0))).toBe(true)
    expect(await ping(lab, 'n2', addr(2))).toBe(true)
    await lab.heal()
    expect(await ping(lab, 'n1', addr(1))).toBe(true)
  })

  it('two labs coexist; down removes every namespace, link and process of one and leaves the other', async () => {
    const a = await newLab(`f${suffix}`, 2)
    const b = await newLab(`g${suffix}`, 2)
    const ra = await a.record()
    const rb = await b.record()
    expect(await ping(a, 'n1', ra.hosts[1]?.address ?? '')).toBe(true)
    expect(await ping(b, 'n1', rb.hosts[1]?.address ?? '')).toBe(true)
    const inodes = new Set<number>()
    for (const ns of [ra.plan.switchNs, ...ra.hosts.map((h) => h.ns)]) inodes.add(await namespaceInode(ns) ?? -1)
    expect((await processesInNamespaces(inodes)).length).toBeGreaterThanOrEqual(2)
    const report = await a.down()
    expect(report.problems).toEqual([])
    expect(await traces(`f${suffix}`)).toEqual({ namespaces: [], links: [] })
    expect(await processesInNamespaces(inodes)).toEqual([])
    expect(existsSync(ra.dir)).toBe(false)
    expect(await ping(b, 'n2', rb.hosts[0]?.address ?? '')).toBe(true)
  })

  it('down after a crash: without lab.json it finds the namespaces by prefix and their processes (recorded or not) by inode', async () => {
    const lab = await newLab(`h${suffix}`, 2)
    const rec = await lab.record()
    const holders = rec.hosts.map((h) => h.holderPid ?? 0)
    // A daemon nobody recorded (as wireguard-go forks itself away) inside n1.
    const n1 = rec.hosts[0]
    if (n1?.holderPid === undefined) throw new Error('n1 has no holder')
    const [file, ...args] = hostArgv(n1.ns, n1.holderPid, ['sleep', '600'])
    const stray = spawn(file ?? 'nsenter', args, { detached: true, stdio: 'ignore' })
    stray.unref()
    await unlink(join(rec.dir, 'lab.json'))
    const fresh = createLab({ id: `h${suffix}`, root })
    const report = await fresh.down()
    expect(report.namespaces.sort()).toEqual([rec.plan.switchNs, ...rec.hosts.map((h) => h.ns)].sort())
    expect(report.processes.sort()).toEqual([...holders, stray.pid].sort())
    expect(await traces(`h${suffix}`)).toEqual({ namespaces: [], links: [] })
    expect(await fresh.down()).toMatchObject({ namespaces: [], processes: [] })
  })

  it('down after the building process was killed mid-build leaves nothing', async () => {
    const id = `k${suffix}`
    const dir = root || await mkdtemp(join(tmpdir(), 'kairos-lab-test-'))
    root = dir
    const child = spawn(process.execPath, [mainTs, 'lab', 'up', '--nodes', '6', '--segments', '2', '--no-agents', '--id', id, '--dir', dir], { stdio: 'ignore' })
    const deadline = Date.now() + 20_000
    while ((await traces(id)).namespaces.length < 4 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    child.kill('SIGKILL')
    await new Promise((resolve) => child.once('exit', resolve))
    expect((await traces(id)).namespaces.length).toBeGreaterThanOrEqual(4)
    const report = await createLab({ id, root: dir }).down()
    expect(report.problems).toEqual([])
    expect(await traces(id)).toEqual({ namespaces: [], links: [] })
  })

  it('plans addresses, names within 15 characters, and refuses bad input', () => {
    const plan = planTopology({ id: 'abcdef', index: 3, nodes: 120, segments: 50 })
    expect(plan.hosts[0]).toMatchObject({ name: 'n1', segment: 0, address: '10.103.0.10', gateway: '10.103.0.1' })
    expect(plan.hosts[50]).toMatchObject({ segment: 0, address: '10.103.0.11' })
    for (const h of plan.hosts) expect(h.switchPort.length).toBeLessThanOrEqual(15)
    for (const s of plan.segments) expect(s.router?.switchPort.length).toBeLessThanOrEqual(15)
    expect(() => planTopology({ id: 'TooLong1', nodes: 2 })).toThrowError(expect.objectContaining({ name: 'LabInputError' }))
    expect(() => planTopology({ id: 'a', nodes: 2, segments: 3 })).toThrowError(/--segments 3/)
  })
})

describe.skipIf(isRoot)('lab topology (needs root)', () => {
  it.skip('skipped: building network namespaces needs root (run the suite as root)', () => {})
})

describe('neighbour-table limits for a lab', () => {
  it('raises the hard limit past twice the lab\'s 2 (N - 1) entries per host, never lowers a limit', () => {
    const d = DEFAULT_NEIGHBOUR_LIMITS
    expect(neighbourLimitsFor(10, d)).toEqual(d) // 360 entries: the defaults hold
    const n50 = neighbourLimitsFor(50, d) // 4 900 entries, 9 800 with another lab beside it
    expect(n50.gcThresh3).toBeGreaterThanOrEqual(2 * 50 * 2 * 49)
    expect(n50).toEqual({ gcThresh1: 128, gcThresh2: 8192, gcThresh3: 16384 })
    expect(neighbourLimitsFor(200, d).gcThresh3).toBeGreaterThanOrEqual(2 * 200 * 2 * 199)
    const raised = { gcThresh1: 4096, gcThresh2: 65536, gcThresh3: 131072 }
    expect(neighbourLimitsFor(50, raised)).toEqual(raised)
  })

  it.runIf(isRoot)('leaves the machine with limits a 50-host lab fits in', async () => {
    const seen: string[][] = []
    const real = createRunner()
    const limits = await ensureNeighbourLimits(50, async (argv, options) => { seen.push([...argv]); return await real(argv, options) })
    expect(limits.gcThresh3).toBeGreaterThanOrEqual(2 * 50 * 2 * 49)
    expect(Number((await readFile('/proc/sys/net/ipv4/neigh/default/gc_thresh3', 'utf8')).trim())).toBe(limits.gcThresh3)
    expect(seen.every((argv) => argv[0] === 'sysctl')).toBe(true)
  })
})
