import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterEach, describe, expect, it } from 'vitest'
import { generateToken } from '../../token/index.ts'
import { waitFor } from '../helpers/wait.ts'
import { MEMBER_KEY } from '../../p2p/node.ts'
import type { PeerAdvert } from '../../p2p/sync.ts'
import { Cluster, alivePeers, newToken } from './harness.ts'
import { peerIds } from './fake-net.ts'

const FIXTURE = join(import.meta.dirname, 'fixtures', 'p2p-process.ts')

interface Status {
  peers: Array<{ id: string, liveness: string, admitted: boolean }>
  rejections: Record<string, number>
  refutations: number
  loopErrors?: number
}

/** A p2p node in its own process (see fixtures/p2p-process.ts), with its last status line. */
class NodeProcess {
  readonly child: ChildProcess
  peerId?: string
  address?: string
  status?: Status
  statusLines = 0
  exit?: { code: number | null, signal: NodeJS.Signals | null }
  stderr = ''

  constructor (env: Record<string, string>) {
    this.child = spawn(process.execPath, [FIXTURE], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    createInterface({ input: this.child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      let msg: { ready?: { peerId: string, address: string }, status?: Status }
      try { msg = JSON.parse(line) as typeof msg } catch { return }
      if (msg.ready !== undefined) { this.peerId = msg.ready.peerId; this.address = msg.ready.address }
      if (msg.status !== undefined) { this.status = msg.status; this.statusLines++ }
    })
    this.child.stderr?.on('data', (d: Buffer) => { this.stderr += d.toString() })
    this.child.on('exit', (code, signal) => { this.exit = { code, signal } })
  }

  /** Throws, with the end of its stderr, once the process has exited. */
  running (): void {
    if (this.exit !== undefined) throw new Error(`the node process exited (${JSON.stringify(this.exit)}): ${this.stderr.slice(-1500)}`)
  }

  /** How this node holds `peer` (undefined: not in its status). */
  sees (peer: string | undefined): Status['peers'][number] | undefined {
    return this.status?.peers.find((p) => p.id === peer)
  }

  async stop (): Promise<void> {
    if (this.exit !== undefined || this.child.pid === undefined) return
    const exited = new Promise<void>((resolve) => { this.child.once('exit', () => { resolve() }) })
    this.child.kill('SIGTERM')
    await Promise.race([exited, waitFor('the process to exit', () => this.exit !== undefined ? true : undefined, 10_000).catch(() => { this.child.kill('SIGKILL') })])
  }
}

describe('a member running modified code, in real processes on loopback', () => {
  const procs: NodeProcess[] = []
  const dirs: string[] = []
  afterEach(async () => {
    await Promise.all(procs.splice(0).map(async (p) => { await p.stop() }))
    await Promise.all(dirs.splice(0).map(async (d) => { await rm(d, { recursive: true, force: true, maxRetries: 5 }) }))
  })
  const start = async (env: Record<string, string>): Promise<NodeProcess> => {
    const dir = await mkdtemp(join(tmpdir(), 'kp2p-proc-'))
    dirs.push(dir)
    const p = new NodeProcess({ KP2P_DIR: dir, ...env })
    procs.push(p)
    await waitFor('the node process to be ready', () => p.address ?? (p.exit !== undefined ? Promise.reject(new Error(`node process exited ${JSON.stringify(p.exit)}: ${p.stderr}`)) : undefined), 30_000)
    return p
  }

  it('a node told it is dead at incarnation 2^53 - 1 refuses the row, keeps running and stays alive to its peer', async () => {
    const token = generateToken()
    const victim = await start({ KP2P_TOKEN: token })
    const attacker = await start({ KP2P_TOKEN: token, KP2P_BOOTSTRAP: victim.address as string, KP2P_ATTACK: 'dead-row-max-incarnation' })
    await waitFor('the two admitted each other', () => victim.sees(attacker.peerId)?.admitted === true && attacker.sees(victim.peerId)?.admitted === true ? true : undefined, 30_000)
    // Every exchange with the attacker carries the row: the victim refuses each, and counts it.
    await waitFor('the victim refused the row', () => victim.running() ?? (victim.status?.rejections['malformed-frame'] ?? 0) >= 1 ? true : undefined, 20_000)
    // Many heartbeat rounds later (100 ms each), the victim still runs, heartbeats, and never refuted.
    const lines = victim.statusLines
    await waitFor('30 more status lines from the victim', () => victim.running() ?? (victim.statusLines >= lines + 30 ? true : undefined), 20_000)
    victim.running()
    expect(victim.status?.refutations).toBe(0)
    expect(victim.status?.loopErrors).toBe(0)
    expect(attacker.sees(victim.peerId)?.liveness).toBe('alive')
    expect(victim.sees(attacker.peerId)?.liveness).toBe('alive')
  }, 90_000)
})

describe('a member that makes up other members', () => {
  let cluster: Cluster
  afterEach(async () => { await cluster.close() })

  it('rows about ids nobody has heard first-hand and that signed nothing do not count as members, so they cannot raise the quorum', async () => {
    cluster = new Cluster()
    const token = newToken()
    const made = await peerIds(12)
    const rows = (): PeerAdvert[] => made.map((id, i) => ({ id, addresses: [], ageMs: 0, liveness: i % 2 === 0 ? 'dead' : 'suspect', incarnation: 5 }))
    const a = await cluster.node(token)
    const liar = await cluster.node(token, { bootstrapPeers: [a.addresses()[0] as string] }, { hooks: { tamperAdverts: (_to, list) => [...list, ...rows()] } })
    // One exchange runs as the two admit each other; both sides hand over their rows in it.
    await waitFor('a admitted the liar and exchanged with it', () => alivePeers(a).includes(liar.peerId) && a.status().syncs.ok >= 1 ? true : undefined)
    await waitFor('a second exchange (a safety round or the liar\'s)', () => a.status().syncs.ok + liar.status().syncs.ok >= 2 ? true : undefined)
    expect(a.state.members().map((m) => m.peerId)).toEqual([liar.peerId])
    expect(a.status().peers.map((p) => p.id)).toEqual([liar.peerId])
    // A real member counts: heard first-hand, or by its signed presence when it is not a link of ours.
    const c = await cluster.node(token, { bootstrapPeers: [liar.addresses()[0] as string] })
    await waitFor('a counts c', () => a.state.members().some((m) => m.peerId === c.peerId) ? true : undefined)
    await waitFor('c\'s presence entry reached a', () => a.state.get(c.peerId, MEMBER_KEY) !== undefined ? true : undefined)
  }, 60_000)
})
