import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { Config } from '../../config/types.ts'
import { PRESETS } from '../../config/presets.ts'
import * as credentials from '../../roles/credentials.ts'
import type { InstallPlan } from '../../roles/install-plan.ts'
import { createRolesController, type Installer, type RolesController } from '../../roles/controller.ts'
import { FACTS_FILE, SECRETS_FILE } from '../../roles/local-store.ts'
import { SEAL_KEY_FILE } from '../../roles/credentials.ts'
import type { StateEntry } from '../../p2p/types.ts'
import type { Logger } from '../../util/log.ts'
import { waitFor } from '../helpers/wait.ts'
import { createFakeSite, type FakeClusterState, type FakeSite } from '../../sim/cluster-state.ts'

/**
 * The roles layer when a server is lost or a local file is damaged: credentials
 * issued by another server, and each file set aside and rebuilt from the state, or
 * a start refused with the file and the way back.
 */

function testConfig (stateDir: string, ha: number): Config {
  const section = { enabled: true, args: [], env: {} }
  return {
    p2p: {
      networkToken: 'x', networkId: 'test', role: 'auto', minimumNodes: 3, disableDht: true,
      autoEnable: true, haEnable: ha > 0, haMasterNodes: ha,
      vpn: { create: true, use: true, cidr: '10.88.0.0/16', interface: 'kairos0', port: 51820, mtu: 1420 },
      bootstrapPeers: [], listen: [], mdns: false, stateDir, installer: { kind: 'dry-run' }, preset: 'lab', timing: PRESETS.lab
    },
    k3s: section,
    k3sAgent: section
  }
}

interface Node {
  id: string
  index: number
  dir: string
  state: FakeClusterState
  controller: RolesController
  plans: InstallPlan[]
  logs: string[]
}

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

function recordingLogger (lines: string[]): Logger {
  const log = (level: string) => (msg: string, fields?: Record<string, unknown>): void => { lines.push(`${level} ${msg}${fields === undefined ? '' : ' ' + JSON.stringify(fields)}`) }
  const logger: Logger = { debug: () => {}, info: log('info'), warn: log('warn'), error: log('error'), child: () => logger }
  return logger
}

async function until (what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  await waitFor(what, () => check() || undefined, timeoutMs, 20)
}

function createNode (net: FakeSite, index: number, opts: { dir: string, ha?: number, entries?: StateEntry[] }): Node {
  const id = `12D3KooWnode${index}`
  const state = net.node(id, opts.entries)
  const plans: InstallPlan[] = []
  const logs: string[] = []
  const installer: Installer = { install: async (plan) => { plans.push(plan); return { changed: true } } }
  const controller = createRolesController({
    config: testConfig(opts.dir, opts.ha ?? 0),
    state,
    stateDir: opts.dir,
    credentials,
    installer,
    logger: recordingLogger(logs),
    overlay: () => ({ address: `10.88.0.${index + 1}`, interface: 'kairos0' })
  })
  cleanups.push(async () => { await controller.stop() })
  return { id, index, dir: opts.dir, state, controller, plans, logs }
}

async function newDir (): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'roles-rec-'))
  cleanups.push(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

async function startNode (net: FakeSite, index: number, opts: { dir?: string, ha?: number, entries?: StateEntry[] } = {}): Promise<Node> {
  const node = createNode(net, index, { ...opts, dir: opts.dir ?? await newDir() })
  await node.controller.start()
  return node
}

/** Stops a node and takes it off the site; returns what its replica held (its state file). */
async function powerOff (net: FakeSite, node: Node): Promise<StateEntry[]> {
  await node.controller.stop()
  return net.leave(node.id)
}

async function formedSite (count: number, ha = 0): Promise<{ net: FakeSite, nodes: Node[], init: Node }> {
  const net = createFakeSite()
  const nodes: Node[] = []
  for (let i = 0; i < count; i++) nodes.push(await startNode(net, i, { ha }))
  await until('all joined', () => nodes.every((n) => n.controller.status().phase === 'joined'))
  return { net, nodes, init: nodes.find((n) => n.controller.status().role === 'init') as Node }
}

const asideFiles = async (dir: string, file: string): Promise<string[]> => (await readdir(dir)).filter((f) => f.startsWith(`${file}.corrupt-`))
const secretsIn = async (dir: string): Promise<unknown> => JSON.parse(await readFile(join(dir, SECRETS_FILE), 'utf8'))

describe('credential issuing without a single point', () => {
  it('an HA site whose init server is gone admits a new box through another server, which k3s is reached at', async () => {
    const { net, nodes, init } = await formedSite(4, 2)
    expect(nodes.map((n) => n.controller.status().role).sort()).toEqual(['agent', 'init', 'server', 'server'])
    const tokens = await secretsIn(init.dir)
    for (const s of nodes.filter((n) => n.controller.status().role === 'server')) {
      // Each server keeps the secrets its credential carries, and says so once.
      expect(await secretsIn(s.dir)).toEqual(tokens)
      expect(s.logs.filter((l) => l.includes(`${SECRETS_FILE} written from`))).toHaveLength(1)
    }
    await powerOff(net, init)
    const late = await startNode(net, 4, { ha: 2 })
    await until('the new box joined', () => late.controller.status().phase === 'joined')
    expect(late.controller.status().role).toBe('agent')
    const plan = late.plans[0] as InstallPlan
    const sealer = late.state.list('cred/').find((e) => e.key === `cred/${late.id}`)?.owner
    const server = nodes.find((n) => n.id === sealer) as Node
    expect(server.controller.status().role).toBe('server')
    expect(plan.config.server).toBe(`https://10.88.0.${server.index + 1}:6443`)
    expect(plan.config.token).toBe((tokens as { agentToken: string }).agentToken)
  })

  it('without HA, a new box waits and says the only server that can issue credentials is gone', async () => {
    const { net, init } = await formedSite(3)
    await powerOff(net, init)
    const late = await startNode(net, 3)
    await until('waiting with the reason', () => late.controller.status().issuing !== undefined)
    const s = late.controller.status()
    expect(s.phase).toBe('waiting')
    expect(s.issuing).toEqual({ able: [init.id] })
    expect(s.reason).toContain('the only server that can issue credentials')
  })
})

describe('damaged local files', () => {
  it('cluster-secrets.json of the init server, damaged or lost: set aside and rebuilt from its sealed copy, the same tokens, one log line', async () => {
    const { net, nodes, init } = await formedSite(3)
    const tokens = await secretsIn(init.dir)
    for (const damage of ['{"serverToken":', null]) {
      const entries = await powerOff(net, nodes[init.index] as Node)
      if (damage === null) await rm(join(init.dir, SECRETS_FILE))
      else await writeFile(join(init.dir, SECRETS_FILE), damage)
      const again = await startNode(net, init.index, { dir: init.dir, entries })
      nodes[init.index] = again
      expect(await secretsIn(init.dir)).toEqual(tokens)
      const lines = again.logs.filter((l) => l.includes(SECRETS_FILE))
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(damage === null ? /is missing; rebuilt from its sealed copy/ : /is damaged .*set aside as cluster-secrets\.json\.corrupt-\d{8}T\d{6}Z; rebuilt from its sealed copy/)
      await until('joined again', () => again.controller.status().phase === 'joined')
    }
    expect(await asideFiles(init.dir, SECRETS_FILE)).toHaveLength(1)
    // A new box still gets the old tokens.
    const late = await startNode(net, 3)
    await until('the new box joined', () => late.controller.status().phase === 'joined')
    expect(late.plans[0]?.config.token).toBe((tokens as { agentToken: string }).agentToken)
  })

  it('cluster-secrets.json of an HA server: rebuilt from its sealed copy', async () => {
    const { net, nodes } = await formedSite(3, 1)
    const server = nodes.find((n) => n.controller.status().role === 'server') as Node
    const tokens = await secretsIn(server.dir)
    const entries = await powerOff(net, server)
    await writeFile(join(server.dir, SECRETS_FILE), 'not json')
    const again = await startNode(net, server.index, { dir: server.dir, entries, ha: 1 })
    expect(await secretsIn(server.dir)).toEqual(tokens)
    expect(again.logs.filter((l) => l.includes(SECRETS_FILE))).toEqual([expect.stringMatching(/set aside as .*; rebuilt from its sealed copy in the state/)])
  })

  it('the only copy of the secrets gone: the init server refuses to start, naming the file and the way back, and never makes new ones', async () => {
    const { net, nodes, init } = await formedSite(3)
    const entries = await powerOff(net, init)
    await rm(join(init.dir, SECRETS_FILE))
    // Its sealed copy no longer opens: sealed to a seal key that was replaced.
    await rm(join(init.dir, SEAL_KEY_FILE))
    const again = createNode(net, init.index, { dir: init.dir, entries })
    await expect(again.controller.start()).rejects.toMatchObject({ name: 'RolesStoreError', exitCode: 2, message: expect.stringMatching(/cluster-secrets\.json is missing, and no sealed copy in the state opens.*Restore cluster-secrets\.json .* from a backup of the state dir, or copy it from an HA server/) })
    await expect(readFile(join(init.dir, SECRETS_FILE))).rejects.toMatchObject({ code: 'ENOENT' })
    expect(nodes.length).toBe(3)
  })

  it('roles.json: set aside and rebuilt from the cluster record and credentials in the state; the same role', async () => {
    const { net, nodes, init } = await formedSite(3)
    for (const node of [nodes.find((n) => n !== init) as Node, init]) {
      const role = node.controller.status().role
      const entries = await powerOff(net, node)
      await writeFile(join(node.dir, FACTS_FILE), '{"promised": 3')
      const again = await startNode(net, node.index, { dir: node.dir, entries })
      await until('joined again', () => again.controller.status().phase === 'joined')
      expect(again.controller.status().role).toBe(role)
      expect(again.logs.filter((l) => l.includes(FACTS_FILE))).toEqual([expect.stringMatching(/roles\.json is damaged .*: set aside as roles\.json\.corrupt-\d{8}T\d{6}Z; the role is rebuilt/)])
      expect(await asideFiles(node.dir, FACTS_FILE)).toHaveLength(1)
      const facts = JSON.parse(await readFile(join(node.dir, FACTS_FILE), 'utf8')) as { role: { role: string } }
      expect(facts.role.role).toBe(role)
    }
    expect(nodes.filter((n) => n.controller.status().role === 'init')).toHaveLength(1)
  })

  it('roles.json lost after the agent\'s credential was collected: the role comes back from its own status, and a new credential is sealed and collected again', async () => {
    const { net, nodes, init } = await formedSite(3)
    const agent = nodes.find((n) => n !== init) as Node
    const key = `cred/${agent.id}`
    await until('credential collected', () => init.state.get(init.id, key)?.value === null)
    const collectedAt = init.state.get(init.id, key)?.version ?? 0
    const entries = await powerOff(net, agent)
    await rm(join(agent.dir, FACTS_FILE))
    const again = await startNode(net, agent.index, { dir: agent.dir, entries })
    await until('joined again', () => again.controller.status().phase === 'joined')
    expect(again.controller.status().role).toBe('agent')
    expect(again.plans).toHaveLength(1)
    expect(again.plans[0]?.config.token).toBe((await secretsIn(init.dir) as { agentToken: string }).agentToken)
    await until('collected again', () => init.state.get(init.id, key)?.value === null && (init.state.get(init.id, key)?.version ?? 0) > collectedAt + 1)
  })

  it('roles.json before any cluster record: refused, since a forgotten vote could give two cluster-inits', async () => {
    const net = createFakeSite()
    const dir = await newDir()
    await writeFile(join(dir, FACTS_FILE), '[]')
    const node = createNode(net, 0, { dir })
    await expect(node.controller.start()).rejects.toMatchObject({ name: 'RolesStoreError', exitCode: 2, message: expect.stringMatching(/roles\.json.*No cluster record is in the state yet.*restore .*roles\.json from a backup/) })
    expect(await asideFiles(dir, FACTS_FILE)).toEqual([])
  })

  it('seal-key.json: set aside, a new key published, and the credential sealed to it again', async () => {
    const { net, nodes, init } = await formedSite(3)
    const agent = nodes.find((n) => n !== init) as Node
    const before = (agent.state.get(agent.id, 'roles/node')?.value as { sealKey: string }).sealKey
    const entries = await powerOff(net, agent)
    await writeFile(join(agent.dir, SEAL_KEY_FILE), '{"v":1,"x25519":"short"}')
    // Its hand-off record gone too, so the hand-off runs again with the credential sealed anew.
    const facts = JSON.parse(await readFile(join(agent.dir, FACTS_FILE), 'utf8')) as Record<string, unknown>
    await writeFile(join(agent.dir, FACTS_FILE), JSON.stringify({ ...facts, joined: null }))
    const again = await startNode(net, agent.index, { dir: agent.dir, entries })
    await until('joined again', () => again.controller.status().phase === 'joined')
    const after = (again.state.get(agent.id, 'roles/node')?.value as { sealKey: string }).sealKey
    expect(after).not.toBe(before)
    // Sealed to the new key (the hand-off opened it), then collected once it joined.
    expect(again.plans).toHaveLength(1)
    await until('credential collected', () => again.state.get(init.id, `cred/${agent.id}`)?.value === null)
    expect(again.plans[0]?.config.token).toBe((await secretsIn(init.dir) as { agentToken: string }).agentToken)
    expect(again.logs.filter((l) => l.includes(SEAL_KEY_FILE))).toEqual([expect.stringMatching(/seal-key\.json is damaged: set aside as seal-key\.json\.corrupt-\d{8}T\d{6}Z; a new seal key is published/)])
  })
})
