// Whole agents on loopback through a token rotation: the init server rotates while one
// member is down; the member comes back within the grace and switches; after the grace
// a node holding only the old token is refused.
import { createServer } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../config/index.ts'
import { generateToken } from '../../token/index.ts'
import { createAgent, type Agent } from '../../agent/agent.ts'
import { postAgent, queryAgent } from '../../agent/api.ts'
import type { AgentStatus } from '../../agent/status.ts'
import { readTokenState } from '../../agent/token-state.ts'
import { waitFor } from '../helpers/wait.ts'

/** An agent run as `kairos-p2p agent` runs it: created again with the same config whenever it asks to restart. */
class RunningAgent {
  agent: Agent | undefined
  restarts = 0
  private stopped = false
  readonly stateDir: string
  private readonly config: ReturnType<typeof parseConfig>['config']
  private constructor (stateDir: string, config: ReturnType<typeof parseConfig>['config']) {
    this.stateDir = stateDir
    this.config = config
  }

  static async start (stateDir: string, config: ReturnType<typeof parseConfig>['config']): Promise<RunningAgent> {
    const r = new RunningAgent(stateDir, config)
    await r.boot()
    return r
  }

  private async boot (): Promise<void> {
    const agent = await createAgent({ config: this.config, onRestart: () => { void this.restart() } })
    this.agent = agent
    await agent.start()
  }

  private async restart (): Promise<void> {
    const a = this.agent
    this.agent = undefined
    await a?.stop()
    if (this.stopped) return
    this.restarts++
    await this.boot()
  }

  status (): AgentStatus | undefined { return this.agent?.status() }

  async stop (): Promise<void> {
    this.stopped = true
    await this.agent?.stop()
  }
}

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => { resolve(port) })
    })
  })
}

function configFor (stateDir: string, token: string, port: number, bootstrap: string[]): ReturnType<typeof parseConfig>['config'] {
  const yaml = [
    'p2p:',
    `  network_token: ${token}`,
    '  preset: lab',
    '  minimum_nodes: 3',
    '  mdns: false',
    `  listen: [/ip4/127.0.0.1/tcp/${port}]`,
    `  state_dir: ${stateDir}`,
    `  bootstrap_peers: ${JSON.stringify(bootstrap)}`,
    '  vpn: {create: false}',
    '  installer: dry-run'
  ].join('\n')
  return parseConfig([{ name: 'test.yaml', text: yaml }]).config
}

const running: RunningAgent[] = []
const dirs: string[] = []
afterAll(async () => {
  await Promise.allSettled(running.map(async (a) => { await a.stop() }))
  await Promise.allSettled(dirs.map(async (d) => { await rm(d, { recursive: true, force: true }) }))
})

describe('token rotation on agents', () => {
  it('rotates with a member down; it catches up within the grace; after the grace the old token admits nothing', async () => {
    const oldToken = generateToken()
    const root = await mkdtemp(join(tmpdir(), 'kp2p-rotate-'))
    dirs.push(root)
    const ports = [await freePort(), await freePort(), await freePort()]
    const first = await RunningAgent.start(join(root, 'n0'), configFor(join(root, 'n0'), oldToken, ports[0] as number, []))
    running.push(first)
    const boot = [`/ip4/127.0.0.1/tcp/${ports[0] as number}/p2p/${first.agent?.peerId ?? ''}`]
    for (const i of [1, 2]) {
      const a = await RunningAgent.start(join(root, `n${i}`), configFor(join(root, `n${i}`), oldToken, ports[i] as number, boot))
      running.push(a)
    }
    const [n0, n1, n2] = running as [RunningAgent, RunningAgent, RunningAgent]
    await waitFor('every agent joined', () => running.every((a) => a.status()?.phase === 'joined') || undefined, 60_000)
    const server = running.find((a) => a.status()?.role === 'init') as RunningAgent
    const down = running.find((a) => a !== server) as RunningAgent
    const up = running.find((a) => a !== server && a !== down) as RunningAgent
    expect([n0, n1, n2]).toContain(server)

    // Only a server may rotate.
    await expect(postAgent(up.stateDir, '/token/rotate', { graceMs: 60_000 })).rejects.toMatchObject({ remoteName: 'TokenRotateRefusedError' })
    await down.stop()
    const graceMs = 25_000
    const answer = JSON.parse(await postAgent(server.stateDir, '/token/rotate', { graceMs })) as { generation: number, fingerprint: string, until: number, sealedTo: number }
    expect(answer).toMatchObject({ generation: 1, sealedTo: 3 })

    // The live members switch, each through a restart, and see each other again.
    await waitFor('the live members switched', () => [server, up].every((a) => a.status()?.token?.generation === 1 && a.status()?.fingerprint === answer.fingerprint) || undefined, 30_000)
    expect(readTokenState(up.stateDir).state).toMatchObject({ generation: 1, previous: { until: answer.until } })
    const status = await waitFor('the status over the socket', async () => JSON.parse(await queryAgent(up.stateDir, '/status').catch(() => 'null')) as AgentStatus | null ?? undefined)
    expect(status.token).toMatchObject({ generation: 1, source: 'state', previous: { until: answer.until } })

    // The member that was down comes back with its old cloud-config, within the grace.
    const back = await RunningAgent.start(down.stateDir, configFor(down.stateDir, oldToken, ports[running.indexOf(down)] as number, boot))
    running.push(back)
    await waitFor('the returning member switched', () => back.status()?.token?.generation === 1 || undefined, 30_000)
    expect(back.restarts).toBeGreaterThanOrEqual(1)
    await waitFor('it is a member again on the new token', () => {
      const peers = server.status()?.peers.filter((p) => p.liveness === 'alive').map((p) => p.id) ?? []
      return peers.includes(back.agent?.peerId ?? '') || undefined
    }, 30_000)

    // After the grace: every member restarts with the new token alone, and a box with the old token is refused.
    const serverId = server.agent?.peerId as string
    // At the grace end each restarts, and token.json keeps the new token alone.
    await waitFor('the grace ended everywhere', () => [server, up, back].every((a) => a.status()?.token?.generation === 1 && readTokenState(a.stateDir).state?.previous === undefined) || undefined, graceMs + 30_000)
    const strangerDir = join(root, 'late')
    const serverPort = ports[running.indexOf(server)] as number
    const late = await RunningAgent.start(strangerDir, configFor(strangerDir, oldToken, await freePort(), [`/ip4/127.0.0.1/tcp/${serverPort}/p2p/${serverId}`]))
    running.push(late)
    await waitFor('the late box tried', () => (late.status()?.mesh?.dials.failed ?? 0) > 0 || undefined, 20_000)
    expect(late.status()?.peers.filter((p) => p.liveness === 'alive')).toEqual([])
    expect(server.status()?.peers.map((p) => p.id)).not.toContain(late.agent?.peerId)
    // The returning member stays on the site after the grace.
    await waitFor('the returning member is alive at the server after the grace', () => server.status()?.peers.some((p) => p.id === back.agent?.peerId && p.liveness === 'alive') || undefined, 30_000)
  }, 180_000)
})
