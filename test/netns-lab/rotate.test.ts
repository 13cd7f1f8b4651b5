// Lab end-to-end of a token rotation: on a 5-node site with two boxes powered off,
// `kairos-p2p token rotate --grace 60s` on the init server; every live node switches;
// one box powered on again within the grace rejoins and switches, the other, powered on
// after the grace with only the old token, is refused. Runs as root (CI does); skipped
// without root or with KAIROS_LAB_E2E=0.
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { isFormed, type Lab } from '../../netns-lab/lab.ts'
import type { AgentStatus } from '../../agent/status.ts'
import type { HostRecord } from '../../netns-lab/meta.ts'
import { labEnabled, labNode, labScenarios } from './scenario.ts'

if (!labEnabled) console.warn(`test/netns-lab/rotate.test.ts skipped: ${process.getuid?.() === 0 ? 'KAIROS_LAB_E2E=0' : 'needs root (network namespaces, wireguard-go)'}`)
const WAIT_MS = 120_000
const GRACE_S = 60
const SCENARIO_MS = 600_000

describe.skipIf(!labEnabled)('lab: rotate the token (root)', () => {
  const { start } = labScenarios('t')

  it('rotate with two boxes down: the one back within the grace rejoins on the new token, the one back after it is refused', async () => {
    const l: Lab = await start({ nodes: 5, minimumNodes: 3 })
    const rec = await l.record()
    const host = (name: string): HostRecord => {
      const h = rec.hosts.find((x) => x.name === name)
      if (h === undefined) throw new Error(`no host ${name}`)
      return h
    }
    const cli = async (name: string, args: string[]): Promise<{ exitCode: number, stdout: string, stderr: string }> =>
      await l.exec(name, [rec.nodePath, join(rec.repoRoot, 'cli', 'main.ts'), ...args, '--state-dir', host(name).stateDir])
    const statusOf = async (name: string): Promise<AgentStatus | undefined> => {
      const r = await cli(name, ['status', '--json'])
      return r.exitCode === 0 ? JSON.parse(r.stdout) as AgentStatus : undefined
    }
    /** Polls `probe` on the hosts until it holds for each (the lab's wait reads the lab status, not the token). */
    const until = async (what: string, names: string[], probe: (s: AgentStatus) => boolean, timeoutMs = WAIT_MS): Promise<void> => {
      const deadline = Date.now() + timeoutMs
      let last = ''
      for (;;) {
        const states = await Promise.all(names.map(async (n) => [n, await statusOf(n)] as const))
        const missing = states.filter(([, s]) => s === undefined || !probe(s)).map(([n, s]) => `${n}: ${s === undefined ? 'no status' : `generation ${s.token?.generation ?? '?'}, ${s.peers.filter((p) => p.liveness === 'alive').length} alive peers`}`)
        if (missing.length === 0) return
        last = missing.join('; ')
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${last}`)
        await new Promise((resolve) => setTimeout(resolve, 1_000))
      }
    }

    const formed = await l.waitFor((s) => isFormed(s), { timeoutMs: WAIT_MS, what: 'formation' })
    const init = formed.clusters[0]?.server ?? ''
    const names = formed.nodes.map((n) => n.name)
    const [early, late] = names.filter((n) => n !== init).slice(-2) as [string, string]
    const live = names.filter((n) => n !== early && n !== late)
    const ids = new Map(names.map((n) => [n, labNode(formed, n).peerId as string]))
    await l.kill(early)
    await l.kill(late)

    // Only a server may rotate; a bad --grace is refused by name.
    const agentNode = live.find((n) => labNode(formed, n).role === 'agent')
    if (agentNode !== undefined) {
      const refused = await cli(agentNode, ['token', 'rotate', '--grace', '60s'])
      expect(refused.exitCode).toBe(2)
      expect(refused.stderr).toMatch(/not a server/)
    }
    const bad = await cli(init, ['token', 'rotate', '--grace', '7w'])
    expect(bad.exitCode).toBe(2)
    expect(bad.stderr).toMatch(/--grace got '7w'/)

    const rotatedAt = Date.now()
    const rotated = await cli(init, ['token', 'rotate', '--grace', `${GRACE_S}s`, '--json'])
    expect(rotated.exitCode, rotated.stderr).toBe(0)
    const answer = JSON.parse(rotated.stdout) as { generation: number, fingerprint: string, until: number, sealedTo: number }
    expect(answer).toMatchObject({ generation: 1, sealedTo: 5 })

    // Every live node switches, rolling, and the live site stays whole.
    await until('the live nodes on generation 1', live, (s) => s.token?.generation === 1 && s.fingerprint === answer.fingerprint && s.peers.filter((p) => p.liveness === 'alive').length >= live.length - 1)
    console.log(`token rotate → every live node on the new token: ${Date.now() - rotatedAt} ms`)
    const inspect = await cli(live[0] as string, ['token', 'inspect', '--json'])
    expect(inspect.exitCode, inspect.stderr).toBe(0)
    expect(JSON.parse(inspect.stdout)).toMatchObject({ generation: 1, fingerprint: answer.fingerprint, source: 'state' })

    // A box powered on within the grace, with its old cloud-config: it rejoins and switches.
    expect(Date.now()).toBeLessThan(answer.until - 15_000)
    await l.restart(early)
    await until(`${early} on generation 1 and seen alive`, [early], (s) => s.token?.generation === 1)
    await until(`${init} sees ${early} alive`, [init], (s) => s.peers.some((p) => p.id === ids.get(early) && p.liveness === 'alive'))
    await l.waitFor((s) => isFormed(s, [...live, early]), { timeoutMs: WAIT_MS, what: `${early} joined again` })

    // After the grace every node drops the old token; a box powered on with only it is refused.
    await until('the grace ended everywhere', [...live, early], (s) => s.token?.generation === 1 && s.token.previous === undefined, answer.until - Date.now() + WAIT_MS)
    await l.restart(late)
    const deadline = Date.now() + 30_000
    while (Date.now() < deadline) {
      for (const n of [...live, early]) {
        const s = await statusOf(n)
        expect(s?.peers.filter((p) => p.liveness === 'alive').map((p) => p.id), `${n}: alive peers`).not.toContain(ids.get(late))
      }
      await new Promise((resolve) => setTimeout(resolve, 2_000))
    }
    const lateStatus = await statusOf(late)
    expect(lateStatus?.token?.generation).toBe(0)
    expect(lateStatus?.peers.filter((p) => p.liveness === 'alive')).toEqual([])
  }, SCENARIO_MS)
})
