import { createHash } from 'node:crypto'
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { Config, InstallerConfig, StaticRole } from '../../config/types.ts'
import { PRESETS } from '../../config/presets.ts'
import * as credentials from '../../roles/credentials.ts'
import type { InstallPlan } from '../../roles/install-plan.ts'
import { JOINED_TICK_MS, createRolesController, type Installer, type RolesController } from '../../roles/controller.ts'
import { FACTS_FILE, SECRETS_FILE } from '../../roles/local-store.ts'
import { preferenceKey } from '../../roles/election.ts'
import type { StateEntry } from '../../p2p/types.ts'
import { ManualClock, type Clock } from '../../util/clock.ts'
import { silentLogger, type Logger } from '../../util/log.ts'
import { LOW_ORDER_KEYS } from '../helpers/seal-keys.ts'
import { waitFor } from '../helpers/wait.ts'
import { createFakeSite, type FakeClusterState, type FakeSite } from '../../sim/cluster-state.ts'

interface ConfigOver { role?: StaticRole, minimumNodes?: number, haEnable?: boolean, haMasterNodes?: number, installer?: InstallerConfig, k3sArgs?: string[] }

function testConfig (stateDir: string, over: ConfigOver = {}): Config {
  const section = { enabled: true, args: [], env: {} }
  return {
    p2p: {
      networkToken: 'x', networkId: 'test', role: over.role ?? 'auto', minimumNodes: over.minimumNodes ?? 3, disableDht: true,
      autoEnable: true, haEnable: over.haEnable ?? false, haMasterNodes: over.haMasterNodes ?? 0,
      vpn: { create: true, use: true, cidr: '10.88.0.0/16', interface: 'kairos0', port: 51820, mtu: 1420 },
      bootstrapPeers: [], listen: [], mdns: false, stateDir, installer: over.installer ?? { kind: 'dry-run' }, preset: 'lab', timing: PRESETS.lab
    },
    k3s: { ...section, args: over.k3sArgs ?? [] },
    k3sAgent: section
  }
}

interface Node {
  id: string
  dir: string
  milestones: string[]
  state: FakeClusterState
  controller: RolesController
  plans: InstallPlan[]
}

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function until (what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  await waitFor(what, () => check() || undefined, timeoutMs, 20)
}

async function startNode (net: FakeSite, index: number, opts: ConfigOver & { dir?: string, entries?: StateEntry[], overlay?: () => { address?: string, interface?: string }, clock?: Clock, logger?: Logger, install?: (plan: InstallPlan) => Promise<void> } = {}): Promise<Node> {
  const id = `12D3KooWnode${index}`
  const dir = opts.dir ?? await mkdtemp(join(tmpdir(), 'roles-ctl-'))
  if (opts.dir === undefined) cleanups.push(async () => { await rm(dir, { recursive: true, force: true }) })
  const state = net.node(id, opts.entries)
  const plans: InstallPlan[] = []
  const milestones: string[] = []
  const installer: Installer = {
    install: async (plan) => { plans.push(plan); await opts.install?.(plan); return { changed: true } }
  }
  const controller = createRolesController({
    config: testConfig(dir, opts),
    state,
    stateDir: dir,
    credentials,
    installer,
    overlay: opts.overlay ?? (() => ({ address: `10.88.0.${index + 1}`, interface: 'kairos0' })),
    ...(opts.clock === undefined ? {} : { clock: opts.clock }),
    ...(opts.logger === undefined ? {} : { logger: opts.logger }),
    onMilestone: (event) => { milestones.push(event) }
  })
  await controller.start()
  const node = { id, dir, state, controller, plans, milestones }
  cleanups.push(async () => { await controller.stop() })
  return node
}

describe('roles controller', () => {
  it('forms a cluster: one init server, agents with the agent token only, timeline and phases', async () => {
    const net = createFakeSite()
    const nodes = [await startNode(net, 0), await startNode(net, 1)]
    await until('waiting phase', () => nodes[0]?.controller.status().phase === 'waiting')
    expect(nodes[0]?.controller.status().awaiting).toBe(1)
    nodes.push(await startNode(net, 2))
    await until('all joined', () => nodes.every((n) => n.controller.status().phase === 'joined'))

    const statuses = nodes.map((n) => n.controller.status())
    expect(statuses.filter((s) => s.role === 'init')).toHaveLength(1)
    expect(statuses.filter((s) => s.role === 'agent')).toHaveLength(2)
    expect(new Set(statuses.map((s) => s.clusterId)).size).toBe(1)
    const init = nodes.find((n) => n.controller.status().role === 'init') as Node
    const initPlan = init.plans[0] as InstallPlan
    expect(initPlan.config['cluster-init']).toBe(true)
    const serverToken = initPlan.config.token as string
    const agentToken = initPlan.config['agent-token'] as string
    for (const n of nodes.filter((x) => x !== init)) {
      const plan = n.plans[0] as InstallPlan
      expect(plan.role).toBe('agent')
      expect(plan.config.token).toBe(agentToken)
      expect(plan.config.server).toBe('https://10.88.0.' + String(nodes.indexOf(init) + 1) + ':6443')
      expect(JSON.stringify(plan)).not.toContain(serverToken)
    }
    for (const e of nodes[0]?.state.list() ?? []) {
      const text = JSON.stringify(e.value)
      expect(text).not.toContain(serverToken)
      expect(text).not.toContain(agentToken)
      expect(text.toLowerCase()).not.toContain('kubeconfig')
    }
    const events = statuses[0]?.timeline.map((t) => t.event) ?? []
    for (const e of ['discovered', 'elected', 'credential', 'installing', 'joined']) expect(events).toContain(e)
    // Each milestone is announced once, as it happens (the agent writes its compile cache on 'joined').
    for (const n of nodes) expect([...n.milestones].sort()).toEqual(n.controller.status().timeline.map((t) => t.event).sort())
    // Facts and secrets are private files.
    expect((await stat(join(init.dir, FACTS_FILE))).mode & 0o777).toBe(0o600)
    expect((await stat(join(init.dir, SECRETS_FILE))).mode & 0o777).toBe(0o600)
  })

  it('once joined, a node steps when something happens, not on every tick; a newcomer still gets its credential at once', async () => {
    const clock = new ManualClock(1_000_000)
    const net = createFakeSite({ clock })
    const nodes = [await startNode(net, 0, { clock }), await startNode(net, 1, { clock }), await startNode(net, 2, { clock })]
    // Time moves only when the test moves it, a tick of the roles ticker at a time.
    const tick = async (): Promise<void> => {
      clock.advance(PRESETS.lab.rolesTickMs)
      await new Promise((resolve) => { setImmediate(resolve) })
    }
    await until('all joined', () => { void tick(); return nodes.every((n) => n.controller.status().phase === 'joined') })
    // Let the last entries of the formation settle.
    for (let i = 0; i < 3; i++) await tick()
    const before = nodes.map((n) => n.controller.status().steps)
    for (let i = 0; i < 5; i++) await tick()
    const idleSteps = nodes.map((n, i) => n.controller.status().steps - (before[i] ?? 0))
    expect(Math.max(...idleSteps)).toBeLessThanOrEqual(1)
    expect(JOINED_TICK_MS).toBeGreaterThan(5 * PRESETS.lab.rolesTickMs)

    // The newcomer is served at once: no tick passes before it has joined.
    const late = await startNode(net, 3, { minimumNodes: 3, clock })
    await until('the newcomer joined', () => late.controller.status().phase === 'joined')
    expect(late.controller.status().role).toBe('agent')
  })

  it('keeps roles and hands off nothing again after a whole-site power cycle (kairos#3834)', async () => {
    const net = createFakeSite()
    const nodes = [await startNode(net, 0), await startNode(net, 1), await startNode(net, 2)]
    await until('all joined', () => nodes.every((n) => n.controller.status().phase === 'joined'))
    const before = nodes.map((n) => n.controller.status().role)
    const saved: Array<{ dir: string, entries: StateEntry[] }> = []
    for (const n of nodes) {
      await n.controller.stop()
      saved.push({ dir: n.dir, entries: net.leave(n.id) })
    }
    const net2 = createFakeSite()
    // Reverse boot order, so a naive election would pick differently.
    const again: Node[] = []
    for (let i = 2; i >= 0; i--) again.unshift(await startNode(net2, i, { dir: saved[i]?.dir ?? '', entries: saved[i]?.entries ?? [] }))
    await until('all joined again', () => again.every((n) => n.controller.status().phase === 'joined'))
    expect(again.map((n) => n.controller.status().role)).toEqual(before)
    expect(again.every((n) => n.plans.length === 0)).toBe(true)
    const facts = JSON.parse(await readFile(join(nodes[0]?.dir ?? '', FACTS_FILE), 'utf8')) as { role: { role: string } }
    expect(facts.role.role).toBe(before[0])
  })

  it('admits HA servers one at a time, each with the server token', async () => {
    const net = createFakeSite()
    const nodes: Node[] = []
    const admittedBeforeJoin: string[] = []
    for (let i = 0; i < 4; i++) {
      nodes.push(await startNode(net, i, { minimumNodes: 3, haEnable: true, haMasterNodes: 2 }))
      if (i === 0) {
        const watch = nodes[0]?.state as FakeClusterState
        watch.addEventListener('change', (evt) => {
          const { entry } = evt.detail
          if (!entry.key.startsWith('cred/') || (entry.value as { kind?: string } | null)?.kind !== 'server') return
          // Every server admitted earlier (and the init server) must have reported joined.
          for (const other of watch.list('cred/')) {
            if (other.key === entry.key || (other.value as { kind?: string } | null)?.kind !== 'server') continue
            const peer = other.key.slice('cred/'.length)
            if ((watch.get(peer, 'roles/status')?.value as { phase?: string } | undefined)?.phase !== 'joined') admittedBeforeJoin.push(peer)
          }
          if ((watch.get(entry.owner, 'roles/status')?.value as { phase?: string } | undefined)?.phase !== 'joined') admittedBeforeJoin.push(entry.owner)
        })
      }
    }
    await until('all joined', () => nodes.every((n) => n.controller.status().phase === 'joined'))
    const roles = nodes.map((n) => n.controller.status().role).sort()
    expect(roles).toEqual(['agent', 'init', 'server', 'server'])
    expect(admittedBeforeJoin).toEqual([])
    const init = nodes.find((n) => n.controller.status().role === 'init') as Node
    const serverToken = init.plans[0]?.config.token
    for (const n of nodes.filter((x) => x.controller.status().role === 'server')) {
      expect(n.plans[0]?.config.token).toBe(serverToken)
      expect(n.plans[0]?.config['agent-token']).toBe(init.plans[0]?.config['agent-token'])
    }
  })

  it('a static worker never stands and becomes an agent; stop() is prompt and idempotent', async () => {
    const net = createFakeSite()
    const nodes = [await startNode(net, 0, { role: 'worker', minimumNodes: 2 }), await startNode(net, 1, { role: 'master', minimumNodes: 2 })]
    await until('all joined', () => nodes.every((n) => n.controller.status().phase === 'joined'))
    expect(nodes[0]?.controller.status().role).toBe('agent')
    expect(nodes[1]?.controller.status().role).toBe('init')
    // Prompt: the stop aborts the ticker's sleep, on a clock that never moves.
    await nodes[0]?.controller.stop()
    await nodes[0]?.controller.stop()
  })

  it('waits for the overlay address before handing off when the VPN is used', async () => {
    const net = createFakeSite()
    let up = false
    const nodes: Node[] = []
    for (let i = 0; i < 3; i++) {
      nodes.push(await startNode(net, i, { overlay: () => (up ? { address: `10.88.0.${i + 1}`, interface: 'kairos0' } : {}) }))
    }
    await until('init waiting for its overlay', () => nodes.some((n) => n.controller.status().role === 'init' && n.controller.status().reason === 'waiting for the overlay address'))
    expect(nodes.every((n) => n.plans.length === 0)).toBe(true)
    up = true
    await until('all joined', () => nodes.every((n) => n.controller.status().phase === 'joined'))
    expect(nodes.every((n) => n.plans[0]?.config['node-ip'] === `10.88.0.${nodes.indexOf(n) + 1}`)).toBe(true)
  })

  it('a lost gossip message strands workers — provider-kairos#909: a node cut off while the cluster forms joins after the heal', async () => {
    const net = createFakeSite()
    const nodes = [await startNode(net, 0), await startNode(net, 1), await startNode(net, 2)]
    net.isolate(nodes[2]?.id ?? '')
    const late = await startNode(net, 3)
    await until('three joined', () => [nodes[0], nodes[1], late].every((n) => n?.controller.status().phase === 'joined'))
    expect(nodes[2]?.controller.status().role).toBeUndefined()
    net.heal(nodes[2]?.id ?? '')
    await until('the cut node joined', () => nodes[2]?.controller.status().phase === 'joined')
    expect([...nodes, late].filter((n) => n.controller.status().role === 'init')).toHaveLength(1)
    expect(nodes[2]?.controller.status().role).toBe('agent')
  })

  it('a refused credential entry holds back only its recipient: the init server still hands off', async () => {
    const net = createFakeSite()
    const nodes = [await startNode(net, 0), await startNode(net, 1), await startNode(net, 2)]
    // The least preferred node is never the init server, so it needs a credential.
    const [victim] = nodes.map((n) => n.id).sort((a, b) => (preferenceKey(a, 'test') > preferenceKey(b, 'test') ? -1 : 1))
    const held = nodes.find((n) => n.id === victim) as Node
    for (const n of nodes) n.state.refusePut = (key) => key === `cred/${victim ?? ''}`
    await until('two joined', () => nodes.filter((n) => n.controller.status().phase === 'joined').length === 2)
    expect(held.controller.status().phase).toBe('waiting')
    for (const n of nodes) n.state.refusePut = () => false
    await until('all joined', () => nodes.every((n) => n.controller.status().phase === 'joined'))
  })

  it('a credential sealed to a node by another token holder is never opened: every joiner hands off with the init server\'s token', async () => {
    const net = createFakeSite()
    const mallory = net.node('12D3KooWmallory')
    const evil = 'e'.repeat(64)
    const sealed = new Set<string>()
    // Mallory seals a credential of its own to every node as soon as its seal key shows.
    mallory.addEventListener('change', (evt) => {
      const { entry } = evt.detail
      if (entry.key !== 'roles/node' || entry.owner === mallory.self || sealed.has(entry.owner)) return
      sealed.add(entry.owner)
      const to = (entry.value as { sealKey: string }).sealKey
      const box = credentials.sealCredential('server', { serverToken: evil, agentToken: 'f'.repeat(64) }, to)
      void mallory.put(`cred/${entry.owner}`, { kind: 'server', to, clusterId: 'any', box: box as unknown as Record<string, string> })
    })
    const nodes = [await startNode(net, 0), await startNode(net, 1), await startNode(net, 2)]
    await until('all joined', () => nodes.every((n) => n.controller.status().phase === 'joined'))
    expect(sealed.size).toBe(3)
    const init = nodes.find((n) => n.controller.status().role === 'init') as Node
    for (const n of nodes.filter((x) => x !== init)) {
      expect(n.controller.status().role).toBe('agent')
      expect(n.plans.map((p) => p.config.token)).toEqual([init.plans[0]?.config['agent-token']])
    }
    expect(JSON.stringify(nodes.map((n) => n.plans))).not.toContain(evil)
  })

  it('the init server publishes the hash of the CA its k3s created; joiners wait for it, then hand off with a K10 token pinning it', async () => {
    const net = createFakeSite()
    const dataDir = await mkdtemp(join(tmpdir(), 'roles-k3s-'))
    cleanups.push(async () => { await rm(dataDir, { recursive: true, force: true }) })
    // An exec installer runs k3s with this data dir; the fake installer stands for k3s,
    // which creates its CA only when the test says so.
    const exec = { installer: { kind: 'exec' as const, command: ['/bin/true'] }, k3sArgs: ['--data-dir', dataDir] }
    const nodes = [await startNode(net, 0, exec), await startNode(net, 1, exec), await startNode(net, 2, exec)]
    await until('the init server handed off', () => nodes.some((n) => n.controller.status().role === 'init' && n.plans.length === 1))
    const init = nodes.find((n) => n.controller.status().role === 'init') as Node
    const joiners = nodes.filter((n) => n !== init)
    await until('joiners wait for the CA hash', () => joiners.every((n) => n.controller.status().reason?.includes('k3s CA') === true))
    expect(joiners.map((n) => n.plans.length)).toEqual([0, 0])
    expect(init.state.get(init.id, 'roles/ca')).toBeUndefined()

    const pem = join(import.meta.dirname, '..', 'fixtures', 'ca', 'server-ca.crt')
    await mkdir(join(dataDir, 'server', 'tls'), { recursive: true })
    await copyFile(pem, join(dataDir, 'server', 'tls', 'server-ca.crt'))
    const hash = createHash('sha256').update(await readFile(pem)).digest('hex')
    await until('all joined', () => nodes.every((n) => n.controller.status().phase === 'joined'))
    expect(init.state.get(init.id, 'roles/ca')?.value).toEqual({ clusterId: init.controller.status().clusterId, caHash: hash })
    const agentToken = init.plans[0]?.config['agent-token'] as string
    for (const n of joiners) {
      expect(n.plans.map((p) => p.config.token)).toEqual([`K10${hash}::node:${agentToken}`])
      const facts = JSON.parse(await readFile(join(n.dir, FACTS_FILE), 'utf8')) as { role: { caHash?: string } }
      expect(facts.role.caHash).toBe(hash)
    }
  })

  it('the init server pins its CA while its hand-off still runs, only once two reads a tick apart agree; joiners hand off before k3s is up', async () => {
    const clock = new ManualClock(1_000_000)
    const net = createFakeSite({ clock })
    const dataDir = await mkdtemp(join(tmpdir(), 'roles-k3s-'))
    cleanups.push(async () => { await rm(dataDir, { recursive: true, force: true }) })
    const logs: string[] = []
    const logger: Logger = { ...silentLogger, debug: (msg) => { logs.push(msg) }, info: (msg, fields) => { logs.push(`${msg} ${String(fields?.why ?? '')}`) } }
    // The init server's k3s is still starting: its hand-off does not return until the test says so.
    let k3sUp = (): void => {}
    const started = new Promise<void>((resolve) => { k3sUp = resolve })
    const exec = { installer: { kind: 'exec' as const, command: ['/bin/true'] }, k3sArgs: ['--data-dir', dataDir], clock, install: async (plan: InstallPlan) => { if (plan.role === 'init') await started } }
    const nodes = [await startNode(net, 0, { ...exec, logger }), await startNode(net, 1, { ...exec, logger }), await startNode(net, 2, { ...exec, logger })]
    const tick = async (): Promise<void> => {
      clock.advance(PRESETS.lab.rolesTickMs)
      await new Promise((resolve) => { setImmediate(resolve) })
    }
    await until('the init server is handing off', () => { void tick(); return nodes.some((n) => n.controller.status().role === 'init' && n.plans.length === 1) })
    const init = nodes.find((n) => n.controller.status().role === 'init') as Node
    const joiners = nodes.filter((n) => n !== init)
    await until('joiners wait for the CA hash', () => { void tick(); return joiners.every((n) => n.controller.status().reason?.includes('k3s CA') === true) })

    const pem = await readFile(join(import.meta.dirname, '..', 'fixtures', 'ca', 'server-ca.crt'))
    const file = join(dataDir, 'server', 'tls', 'server-ca.crt')
    await mkdir(join(dataDir, 'server', 'tls'), { recursive: true })
    const seen = (): number => logs.filter((l) => l.startsWith('k3s cluster CA found')).length
    // Caught half written: no whole certificate, nothing taken.
    await writeFile(file, pem.subarray(0, pem.length >> 1))
    await until('the half-written CA is refused', () => { void tick(); return logs.some((l) => l.startsWith('waiting for the k3s cluster CA') && l.includes('CA bundle')) })
    // Whole but for its last newline (it parses; k3s would serve more): seen once, then the whole file differs, so neither read is pinned.
    await writeFile(file, pem.subarray(0, pem.length - 1))
    await until('the CA read once', () => { if (seen() === 0) void tick(); return seen() === 1 })
    await writeFile(file, pem)
    await until('the whole CA read once', () => { if (seen() === 1) void tick(); return seen() === 2 })
    expect(init.state.get(init.id, 'roles/ca')).toBeUndefined()
    const hash = createHash('sha256').update(pem).digest('hex')
    await until('joiners hand off', () => { void tick(); return joiners.every((n) => n.plans.length === 1) })
    expect(init.controller.status().phase).toBe('installing')
    expect(init.state.get(init.id, 'roles/ca')?.value).toEqual({ clusterId: init.controller.status().clusterId, caHash: hash })
    const agentToken = init.plans[0]?.config['agent-token'] as string
    for (const n of joiners) expect(n.plans.map((p) => p.config.token)).toEqual([`K10${hash}::node:${agentToken}`])
    k3sUp()
    await until('all joined', () => { void tick(); return nodes.every((n) => n.controller.status().phase === 'joined') })
  })

  it('a roles/ca entry from any node but the init server of the record is never pinned', async () => {
    const net = createFakeSite()
    const mallory = net.node('12D3KooWmallory')
    const exec = { installer: { kind: 'exec' as const, command: ['/bin/true'] }, k3sArgs: ['--data-dir', '/nonexistent-kairos-test'] }
    const nodes = [await startNode(net, 0, exec), await startNode(net, 1, exec), await startNode(net, 2, exec)]
    await until('a cluster id', () => nodes.some((n) => n.controller.status().clusterId !== undefined))
    const clusterId = nodes.find((n) => n.controller.status().clusterId !== undefined)?.controller.status().clusterId as string
    await mallory.put('roles/ca', { clusterId, caHash: 'e'.repeat(64) })
    await until('joiners wait for the init server\'s CA', () => nodes.filter((n) => n.controller.status().role !== 'init').every((n) => n.controller.status().reason?.includes('k3s CA') === true))
    expect(nodes.flatMap((n) => n.plans).filter((p) => p.role === 'agent')).toEqual([])
  })

  it('says once why it ignores a node whose seal key is a low-order point', async () => {
    const net = createFakeSite()
    const warnings: Array<Record<string, unknown> | undefined> = []
    const logger: Logger = { ...silentLogger, warn: (msg, fields) => { if (msg.includes('seal key')) warnings.push(fields) } }
    const mallory = net.node('12D3KooWmallory')
    await mallory.put('roles/node', { sealKey: LOW_ORDER_KEYS[0] as string, role: 'master', eligible: true, k3s: true })
    const nodes = [await startNode(net, 0, { logger }), await startNode(net, 1), await startNode(net, 2)]
    await until('all joined', () => nodes.every((n) => n.controller.status().phase === 'joined'))
    expect(warnings).toEqual([{ owner: '12D3KooWmallory', problem: expect.stringMatching(/low-order point/) as unknown }])
  })
})

