import { execa } from 'execa'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AGENT_MALLOC_ENV, AGENT_NODE_OPTIONS } from '../../box/runtime.ts'
import { assertAgentsAlive, createLab, isFormed, type Lab, type LabStatus } from '../../netns-lab/lab.ts'
import { isRunning } from '../../netns-lab/processes.ts'
import { waitFor } from '../helpers/wait.ts'

const isRoot = process.getuid?.() === 0
const fakeAgent = fileURLToPath(new URL('./fixtures/fake-agent.ts', import.meta.url))
const id = `l${(process.pid % 1000).toString(36)}`

describe.skipIf(!isRoot)('lab operations with a fake agent (root)', () => {
  let root = ''
  let lab: Lab

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'kairos-lab-ops-'))
    lab = createLab({
      id, root, nodes: 3, installTimeoutMs: 20_000,
      agentCommand: (host, rec) => [rec.nodePath, fakeAgent, '--config', host.configPath, '--role', host.name === 'n1' ? 'init' : 'agent', '--server', rec.hosts[0]?.address ?? '']
    })
    await lab.up()
  })

  afterAll(async () => {
    await lab?.down()
    await rm(root, { recursive: true, force: true })
  })

  const node = (s: LabStatus, name: string): LabStatus['nodes'][number] => {
    const n = s.nodes.find((x) => x.name === name)
    if (n === undefined) throw new Error(`no node ${name}`)
    return n
  }

  it('forms: one stand-in cluster with the init server and two agents, registered from their own addresses', async () => {
    const s = await lab.waitFor((st) => isFormed(st), { timeoutMs: 30_000, what: 'all nodes registered' })
    expect(s.clusters).toHaveLength(1)
    const c = s.clusters[0]
    expect(c?.server).toBe('n1')
    expect(c?.running).toBe(true)
    expect(c?.nodes.map((n) => [n.name, n.role, n.init])).toEqual([['n1', 'server', true], ['n2', 'agent', false], ['n3', 'agent', false]])
    for (const n of c?.nodes ?? []) expect(n.remoteAddress).toBe(n.nodeIp)
    expect(node(s, 'n2')).toMatchObject({ running: true, powered: true, joined: true, registeredAs: 'agent', role: 'agent', phase: 'joined' })
    expect(node(s, 'n1').init).toBe(true)
  })

  it('runs each agent with the malloc settings a box\'s launcher gives it', async () => {
    const rec = await lab.record()
    for (const h of rec.hosts) {
      const environ = (await readFile(`/proc/${h.agentPid ?? 0}/environ`, 'utf8')).split('\0')
      for (const [name, value] of Object.entries(AGENT_MALLOC_ENV)) expect(environ).toContain(`${name}=${process.env[name] ?? value}`)
    }
  })

  it('the generated cloud-config is the lab preset with the host address, its state dir and the stand-in installer', async () => {
    const rec = await lab.record()
    const text = await readFile(rec.hosts[1]?.configPath ?? '', 'utf8')
    expect(text).toContain('preset: lab')
    expect(text).toContain(`/ip4/${rec.hosts[1]?.address}/tcp/4001`)
    expect(text).toContain('minimum_nodes: 2')
    // The stand-in's bundle (or its sources where the bundler is missing).
    expect(text).toMatch(/k3s-standin\.(mjs|ts)$/m)
    expect(text).toMatch(/network_token: kp1/)
  })

  it('per-host overrides give some hosts another token and extra config', async () => {
    const other = createLab({
      id: `${id}x`, root, nodes: 2, agents: false,
      hostOverrides: (h) => h.name === 'n2' ? { token: 'kp1-other-site', config: { p2p: { network_id: 'b' } } } : undefined
    })
    try {
      const rec = await other.up()
      const t1 = await readFile(rec.hosts[0]?.configPath ?? '', 'utf8')
      const t2 = await readFile(rec.hosts[1]?.configPath ?? '', 'utf8')
      expect(t2).toContain('network_token: kp1-other-site')
      expect(t2).toContain('network_id: b')
      expect(t1).not.toContain('kp1-other-site')
    } finally {
      await other.down()
    }
  })

  it('writes a timeline report: JSON and an SVG with one row per node', async () => {
    const out = join(root, 'report')
    const r = await lab.report(out)
    expect(r.report.nodes.map((n) => n.name)).toEqual(['n1', 'n2', 'n3'])
    expect(r.report.nodes[1]?.events.map((e) => e.event)).toEqual(expect.arrayContaining(['spawned', 'started', 'joined', 'registered']))
    const svg = await readFile(r.svg, 'utf8')
    expect(svg.match(/data-node="n3"/g)?.length).toBeGreaterThanOrEqual(3)
    expect(JSON.parse(await readFile(r.json, 'utf8'))).toMatchObject({ labId: id })
  })

  it('kill powers a host off (its agent and stand-in die); restart boots it and its stand-in again', async () => {
    const before = await lab.status()
    await lab.kill('n1')
    let s = await lab.status()
    expect(node(s, 'n1')).toMatchObject({ powered: false, running: false })
    expect(s.clusters[0]?.running).toBe(false)
    expect(node(s, 'n2').running).toBe(true)
    await expect(lab.exec('n1', ['true'])).rejects.toMatchObject({ name: 'LabCommandError' })
    await lab.restart('n1')
    s = await lab.waitFor((st) => st.clusters[0]?.running === true && node(st, 'n1').phase === 'joined', { timeoutMs: 20_000, what: 'n1 back' })
    expect(node(s, 'n1').agentPid).not.toBe(node(before, 'n1').agentPid)
    expect(s.clusters[0]?.nodes.map((n) => n.registeredAt)).toEqual(before.clusters[0]?.nodes.map((n) => n.registeredAt))
  })

  it('kill --agent ends only the agent; restart --agent starts a new one while the stand-in keeps running', async () => {
    const before = await lab.status()
    await lab.kill('n1', { agentOnly: true })
    let s = await lab.status()
    expect(node(s, 'n1')).toMatchObject({ powered: true, running: false })
    expect(s.clusters[0]?.running).toBe(true)
    await lab.restart('n1', { agentOnly: true })
    s = await lab.waitFor((st) => node(st, 'n1').phase === 'joined', { timeoutMs: 20_000, what: 'n1 agent back' })
    expect(node(s, 'n1').agentPid).not.toBe(node(before, 'n1').agentPid)
    expect(s.clusters[0]?.running).toBe(true)
  })

  it('power-cycle brings every host back with the same registry', async () => {
    const before = await lab.status()
    await lab.powerCycle()
    const s = await lab.waitFor((st) => st.clusters[0]?.running === true && st.nodes.every((n) => n.phase === 'joined'), { timeoutMs: 30_000, what: 'site back after power cycle' })
    for (const name of ['n1', 'n2', 'n3']) expect(node(s, name).agentPid).not.toBe(node(before, name).agentPid)
    expect(s.clusters).toEqual([{ ...before.clusters[0], running: true }])
  })

  it('exec runs inside the host: its address, its stand-in view, and a failing command\'s exit code', async () => {
    const rec = await lab.record()
    const r = await lab.exec('n2', ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0'])
    expect(r.stdout).toContain(rec.hosts[1]?.address)
    const ping = await lab.exec('n2', [rec.nodePath, '-e', `fetch('http://${rec.hosts[0]?.address}:6443/ping').then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(2))`])
    expect(ping.exitCode).toBe(0)
    expect((await lab.exec('n2', ['false'])).exitCode).toBe(1)
  })

  it('down removes namespaces, processes and the lab dir', async () => {
    const rec = await lab.record()
    const report = await lab.down()
    expect(report.problems).toEqual([])
    expect(report.processes.length).toBe(7) // 3 holders, 3 agents, 1 stand-in server
    const left = (await execa('ip', ['netns', 'list'])).stdout
    expect(left).not.toContain(`kl${id}-`)
    expect(existsSync(rec.dir)).toBe(false)
  })
})

describe.skipIf(!isRoot)('an agent that exits (root)', () => {
  it('assertAgentsAlive names the node and the end of its log', async () => {
    const root = await mkdtemp(join(tmpdir(), 'kairos-lab-dead-'))
    const lab = createLab({
      id: `${id}d`, root, nodes: 1,
      agentCommand: (_h, rec) => [rec.nodePath, '-e', 'console.error("cannot start: boom"); process.exit(3)']
    })
    try {
      await lab.up()
      const s = await lab.waitFor((st) => st.nodes.every((n) => !n.running), { timeoutMs: 10_000, what: 'agent exit' })
      await expect(assertAgentsAlive(lab, s)).rejects.toMatchObject({ name: 'LabAgentExitedError', message: expect.stringContaining('cannot start: boom') })
    } finally {
      await lab.down()
      await rm(root, { recursive: true, force: true })
    }
  })
})

describe.skipIf(!isRoot)('the compile cache (root)', () => {
  it('up compiles the agent script once, into the compile cache, under the agents\' Node options, before any agent starts', async () => {
    const root = await mkdtemp(join(tmpdir(), 'kairos-lab-cc-'))
    const calls = join(root, 'calls.log')
    // The agent script: records how it was run, answers --help, otherwise idles like an agent.
    const script = join(root, 'agent.mjs')
    await writeFile(script, [
      "import { appendFileSync } from 'node:fs'",
      `appendFileSync(${JSON.stringify(calls)}, JSON.stringify({ argv: process.argv.slice(2), execArgv: process.execArgv, cache: process.env.NODE_COMPILE_CACHE ?? null }) + '\\n')`,
      "if (!process.argv.includes('--help')) setInterval(() => {}, 1000)"
    ].join('\n'))
    const lab = createLab({ id: `${id}c`, root, nodes: 2, agentEntry: async () => script })
    try {
      await lab.up()
      await waitFor('three agent runs recorded', async () => (await readFile(calls, 'utf8').catch(() => '')).trim().split('\n').length >= 3 || undefined, 10_000)
      const runs = (await readFile(calls, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { argv: string[], execArgv: string[], cache: string | null })
      expect(runs[0]?.argv).toEqual(['agent', '--help'])
      expect(runs.slice(1).map((r) => r.argv[0])).toEqual(['agent', 'agent'])
      expect(new Set(runs.map((r) => r.cache)).size).toBe(1)
      expect(runs[0]?.cache).toMatch(/compile$/)
      // Under the agents' own Node options, which can change the cache's V8 tag.
      for (const r of runs) expect(r.execArgv).toEqual(AGENT_NODE_OPTIONS)
    } finally {
      await lab.down()
      await rm(root, { recursive: true, force: true })
    }
  })
})

describe.skipIf(!isRoot)('an agent that starts a process while it is stopped (root)', () => {
  it('down also ends what appeared in the host during the teardown', async () => {
    const root = await mkdtemp(join(tmpdir(), 'kairos-lab-respawn-'))
    const pidFile = join(root, 'late.pid')
    const readyFile = join(root, 'ready')
    // Like an agent whose VPN restarts wireguard-go when the teardown's SIGTERM killed it.
    const script = [
      "const { spawn } = require('node:child_process'); const { writeFileSync } = require('node:fs')",
      "process.on('SIGTERM', () => { const c = spawn('sleep', ['300'], { detached: true, stdio: 'ignore' }); c.unref(); writeFileSync(process.argv[1], String(c.pid)); setTimeout(() => process.exit(0), 100) })",
      "writeFileSync(process.argv[2], 'ready'); setInterval(() => {}, 1000)"
    ].join('\n')
    const lab = createLab({ id: `${id}r`, root, nodes: 1, agentCommand: (_h, rec) => [rec.nodePath, '-e', script, pidFile, readyFile] })
    let late: number | undefined
    try {
      await lab.up()
      await lab.waitFor(() => existsSync(readyFile), { timeoutMs: 10_000, what: 'agent ready' })
      await lab.down()
      late = Number(await readFile(pidFile, 'utf8'))
      expect(late).toBeGreaterThan(0)
      expect(await isRunning(late)).toBe(false)
    } finally {
      await lab.down()
      if (late !== undefined && await isRunning(late)) process.kill(late, 'SIGKILL')
      await rm(root, { recursive: true, force: true })
    }
  })
})

describe.skipIf(isRoot)('lab operations (needs root)', () => {
  it.skip('skipped: the lab needs root for network namespaces', () => {})
})
