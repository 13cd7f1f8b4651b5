// Lab end-to-end of node removal: a box's disk is wiped and it boots as a new identity;
// `kairos-p2p node remove` of its old identity on the init server makes every node drop
// the old WireGuard peer, and the old identity, brought back from a copy of its disk,
// is refused. Runs as root (CI does); skipped without root or with KAIROS_LAB_E2E=0.
import { cp, lstat, mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { assertAgentsAlive, createLab, isFormed, type Lab, type LabStatus } from '../../netns-lab/lab.ts'
import type { AgentStatus } from '../../agent/status.ts'
import type { KnownNode } from '../../agent/nodes.ts'

const isRoot = process.getuid?.() === 0
const enabled = isRoot && process.env.KAIROS_LAB_E2E !== '0'
if (!enabled) console.warn(`test/netns-lab/remove.test.ts skipped: ${isRoot ? 'KAIROS_LAB_E2E=0' : 'needs root (network namespaces, wireguard-go)'}`)
const FORM_TIMEOUT_MS = 90_000
const SCENARIO_MS = 300_000

describe.skipIf(!enabled)('lab: remove a replaced box (root)', () => {
  let root = ''
  let lab: Lab | undefined

  beforeAll(async () => { root = await mkdtemp(join(tmpdir(), 'kairos-lab-remove-')) })
  afterEach(async () => { await lab?.down(); lab = undefined })
  afterAll(async () => { await rm(root, { recursive: true, force: true }) })

  it('wipe a box, remove its old identity: every node drops the old peer (wg show lists N−1), and the old identity is refused', async () => {
    const l = createLab({ id: `r${(process.pid % 1000).toString(36)}`, root, nodes: 3 })
    lab = l
    await l.up()
    const rec = await l.record()
    const host = (name: string): { stateDir: string } => {
      const h = rec.hosts.find((x) => x.name === name)
      if (h === undefined) throw new Error(`no host ${name}`)
      return h
    }
    /** Runs the CLI inside a host against its agent. */
    const cli = async (name: string, args: string[]): Promise<{ exitCode: number, stdout: string, stderr: string }> =>
      await l.exec(name, [rec.nodePath, join(rec.repoRoot, 'cli', 'main.ts'), ...args, '--state-dir', host(name).stateDir])
    const statusOf = async (name: string): Promise<AgentStatus> => {
      const r = await cli(name, ['status', '--json'])
      expect(r.exitCode, r.stderr).toBe(0)
      return JSON.parse(r.stdout) as AgentStatus
    }
    const wgPeers = async (name: string): Promise<string[]> => {
      const r = await l.exec(name, ['wg', 'show', 'all', 'peers'])
      expect(r.exitCode, r.stderr).toBe(0)
      return r.stdout.split('\n').filter((x) => x.trim() !== '').map((x) => x.split('\t')[1] ?? x)
    }
    const formed = async (): Promise<LabStatus> => {
      const s = await l.waitFor((st) => isFormed(st) || st.nodes.some((x) => x.powered && !x.running), { timeoutMs: FORM_TIMEOUT_MS, what: 'formation' })
      await assertAgentsAlive(l, s)
      return s
    }

    const before = await formed()
    const init = before.clusters[0]?.server ?? ''
    const victim = before.nodes.map((n) => n.name).find((n) => n !== init) as string
    const others = before.nodes.map((n) => n.name).filter((n) => n !== victim)
    const oldId = before.nodes.find((n) => n.name === victim)?.peerId as string
    expect(oldId).toMatch(/^12D3KooW/)

    // The disk dies: the box comes back with an empty state dir, so a new identity.
    await l.kill(victim)
    const oldDisk = join(root, 'old-disk')
    // The agent's socket is left behind: the copy is of what a disk holds.
    await cp(host(victim).stateDir, oldDisk, { recursive: true, filter: async (f) => !(await lstat(f)).isSocket() })
    await rm(host(victim).stateDir, { recursive: true, force: true })
    await mkdir(host(victim).stateDir, { recursive: true, mode: 0o700 })
    await l.restart(victim)
    const replaced = await formed()
    const newId = replaced.nodes.find((n) => n.name === victim)?.peerId as string
    expect(newId).not.toBe(oldId)
    // The ghost: the old identity still has its WireGuard peer on the others.
    for (const n of others) expect(await wgPeers(n)).toHaveLength(3)

    // Remove the old identity on the init server.
    const removeAt = Date.now()
    const removed = await cli(init, ['node', 'remove', oldId])
    expect(removed.exitCode, removed.stderr).toBe(0)
    expect(removed.stdout).toContain(`removed ${oldId}`)

    // Every node applies it: N−1 WireGuard peers, the old identity listed as removed.
    for (const n of [...others, victim]) {
      const deadline = Date.now() + 60_000
      let peers = await wgPeers(n)
      let st = await statusOf(n)
      while ((peers.length !== 2 || !(st.removed ?? []).some((r) => r.peerId === oldId)) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 500))
        peers = await wgPeers(n)
        st = await statusOf(n)
      }
      expect(peers, `${n}: WireGuard peers`).toHaveLength(2)
      expect(st.removed?.map((r) => r.peerId), `${n}: removed`).toContain(oldId)
      expect(st.peers.map((p) => p.id), `${n}: peers`).not.toContain(oldId)
    }
    // A figure, not a bound: from the command to the last node at N−1 peers (including the polling).
    console.log(`node remove → every node at ${others.length} WireGuard peers: ${Date.now() - removeAt} ms`)
    const list = await cli(others[0] as string, ['node', 'list', '--json'])
    expect(list.exitCode, list.stderr).toBe(0)
    const nodes = (JSON.parse(list.stdout) as { nodes: KnownNode[] }).nodes
    expect(nodes.find((n) => n.peerId === oldId)?.removed?.basis).toBe('init-server')
    expect(nodes.find((n) => n.peerId === newId)?.removed).toBeUndefined()

    // The old identity comes back from a copy of its disk: every node refuses it.
    await l.kill(victim)
    await rm(host(victim).stateDir, { recursive: true, force: true })
    await cp(oldDisk, host(victim).stateDir, { recursive: true })
    await l.restart(victim)
    const refusedBy = new Set<string>()
    const deadline = Date.now() + 60_000
    while (refusedBy.size < others.length && Date.now() < deadline) {
      for (const n of others) {
        const st = await statusOf(n)
        expect(st.peers.map((p) => p.id), `${n}: peers`).not.toContain(oldId)
        if ((st.admissionFailuresByReason?.revoked ?? 0) > 0) refusedBy.add(n)
      }
      await new Promise((resolve) => setTimeout(resolve, 500))
    }
    expect([...refusedBy].sort()).toEqual([...others].sort())
    const ghost = await statusOf(victim)
    expect(ghost.peerId).toBe(oldId)
    expect(ghost.peers.filter((p) => (p as { admitted?: boolean }).admitted === true)).toEqual([])
    for (const n of others) expect(await wgPeers(n)).toHaveLength(2)
  }, SCENARIO_MS)
})
