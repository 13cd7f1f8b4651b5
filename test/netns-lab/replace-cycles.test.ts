// Lab end-to-end of a box replaced again and again: each cycle wipes its disk, it boots
// as a new identity and joins, and `node remove` of the old identity on the init server
// brings every node back to N−1 WireGuard peers. Over the cycles nothing piles up: the
// peers stay N−1, every old identity is listed as removed, and the new one joins each
// time although the init server seals a credential per identity (LIFE-7 collects
// them). Runs as root (CI does); skipped without root or with KAIROS_LAB_E2E=0.
import { mkdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { assertAgentsAlive, isFormed, type Lab, type LabStatus } from '../../netns-lab/lab.ts'
import type { AgentStatus } from '../../agent/status.ts'
import type { KnownNode } from '../../agent/nodes.ts'
import { labEnabled, labNode, labScenarios } from './scenario.ts'
import { deriveKeys, parseToken } from '../../token/index.ts'
import { decodeSnapshot, STATE_FILE } from '../../p2p/state/persist.ts'
import { decodeWire, openValue } from '../../p2p/state/wire.ts'

if (!labEnabled) console.warn('test/netns-lab/replace-cycles.test.ts skipped: needs root (network namespaces, wireguard-go), and KAIROS_LAB_E2E not 0')
const CYCLES = 4
const FORM_TIMEOUT_MS = 120_000
const APPLY_TIMEOUT_MS = 60_000
const SCENARIO_MS = 600_000

describe.skipIf(!labEnabled)('lab: a box replaced again and again (root)', () => {
  const { start } = labScenarios('rc')

  it(`${CYCLES} wipe-and-replace cycles with node remove: N−1 WireGuard peers after each, every old identity removed, the new one joined`, async () => {
    const l: Lab = await start({ nodes: 3 })
    const rec = await l.record()
    const stateDir = (name: string): string => {
      const h = rec.hosts.find((x) => x.name === name)
      if (h === undefined) throw new Error(`no host ${name}`)
      return h.stateDir
    }
    const cli = async (name: string, args: string[]): Promise<{ exitCode: number, stdout: string, stderr: string }> =>
      await l.exec(name, [rec.nodePath, join(rec.repoRoot, 'cli', 'main.ts'), ...args, '--state-dir', stateDir(name)])
    const statusOf = async (name: string): Promise<AgentStatus> => {
      const r = await cli(name, ['status', '--json'])
      expect(r.exitCode, r.stderr).toBe(0)
      return JSON.parse(r.stdout) as AgentStatus
    }
    const wgPeers = async (name: string): Promise<number> => {
      const r = await l.exec(name, ['wg', 'show', 'all', 'peers'])
      expect(r.exitCode, r.stderr).toBe(0)
      return r.stdout.split('\n').filter((x) => x.trim() !== '').length
    }
    const formed = async (): Promise<LabStatus> => {
      const s = await l.waitFor((st) => isFormed(st) || st.nodes.some((x) => x.powered && !x.running), { timeoutMs: FORM_TIMEOUT_MS, what: 'formation' })
      await assertAgentsAlive(l, s)
      expect(isFormed(s), 'every node joined').toBe(true)
      return s
    }

    const first = await formed()
    const init = first.clusters[0]?.server ?? ''
    const victim = first.nodes.map((n) => n.name).find((n) => n !== init) as string
    const names = first.nodes.map((n) => n.name)
    const removed: string[] = []
    let current = labNode(first, victim).peerId as string
    for (let cycle = 1; cycle <= CYCLES; cycle++) {
      await l.kill(victim)
      await rm(stateDir(victim), { recursive: true, force: true })
      await mkdir(stateDir(victim), { recursive: true, mode: 0o700 })
      await l.restart(victim)
      const s = await formed()
      const fresh = labNode(s, victim).peerId as string
      expect(fresh, `cycle ${cycle}: a new identity`).not.toBe(current)
      const r = await cli(init, ['node', 'remove', current])
      expect(r.exitCode, r.stderr).toBe(0)
      removed.push(current)
      current = fresh
      for (const n of names) {
        const deadline = Date.now() + APPLY_TIMEOUT_MS
        let peers = await wgPeers(n)
        while (peers !== names.length - 1 && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 500))
          peers = await wgPeers(n)
        }
        expect(peers, `cycle ${cycle}, ${n}: WireGuard peers`).toBe(names.length - 1)
      }
      expect((await statusOf(victim)).phase, `cycle ${cycle}: the new identity joined`).toBe('joined')
    }
    const list = await cli(init, ['node', 'list', '--json'])
    expect(list.exitCode, list.stderr).toBe(0)
    const nodes = (JSON.parse(list.stdout) as { nodes: KnownNode[] }).nodes
    expect(nodes.filter((n) => n.removed !== undefined).map((n) => n.peerId).sort()).toEqual([...removed].sort())
    expect(nodes.filter((n) => n.removed === undefined).map((n) => n.peerId)).toHaveLength(names.length)

    // The init server's state file: every agent credential it sealed is collected (null)
    // once its recipient joined; none is left live although it sealed one per identity.
    const initId = labNode(first, init).peerId as string
    const stateKey = deriveKeys(parseToken((await readFile(rec.tokenFile, 'utf8')).trim())).stateKey
    const deadline = Date.now() + APPLY_TIMEOUT_MS
    let creds: Array<{ key: string, value: unknown }> = []
    for (;;) {
      const snap = decodeSnapshot(new Uint8Array(await readFile(join(stateDir(init), 'state', STATE_FILE))))
      creds = (snap?.wires ?? []).map((w) => decodeWire(w)).filter((d) => d !== undefined && d.owner === initId && d.key.startsWith('cred/'))
        .map((d) => { const o = openValue(stateKey, d as NonNullable<typeof d>); return { key: (d as NonNullable<typeof d>).key, value: 'value' in o ? o.value : undefined } })
      if (creds.every((c) => c.value === null) || Date.now() > deadline) break
      await new Promise((resolve) => setTimeout(resolve, 500))
    }
    expect(creds.length, 'credentials sealed: the first agent, then one per new identity').toBeGreaterThanOrEqual(CYCLES)
    expect(creds.filter((c) => c.value !== null).map((c) => c.key), 'credentials left live').toEqual([])
  }, SCENARIO_MS)
})
