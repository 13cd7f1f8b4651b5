// A site that loses its init server, and hosts whose local files are damaged: real
// agents in namespaces (root); skipped without root or with KAIROS_LAB_E2E=0, like
// e2e.test.ts. Hosts are booted one by one with `restart` (a host of a lab built
// without agents boots on its first restart).
import { readFile, readdir, writeFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { isFormed, type Lab, type LabStatus } from '../../netns-lab/lab.ts'
import { labEnabled, labNode, labScenarios } from './scenario.ts'
import { HA_DIR, REGISTRY_FILE, type StandinRegistry } from '../../netns-lab/k3s-standin.ts'
import type { HostRecord } from '../../netns-lab/meta.ts'

const WAIT_MS = 150_000
const SCENARIO_MS = 900_000

describe.skipIf(!labEnabled)('credential issuing and damaged files, in the lab (root)', () => {
  const { start } = labScenarios('i')
  const node = labNode
  const host = async (l: Lab, name: string): Promise<HostRecord> => {
    const h = (await l.record()).hosts.find((x) => x.name === name)
    if (h === undefined) throw new Error(`no host ${name}`)
    return h
  }
  const back = async (l: Lab, name: string, what: string): Promise<LabStatus> =>
    await l.waitFor((s) => node(s, name).running && node(s, name).phase === 'joined', { timeoutMs: WAIT_MS, what })

  it('an HA site: each damaged file of a host is set aside and rebuilt; the init server dies hard and a new box joins through another server; a damaged identity of the init server stops it, naming the file', async () => {
    const l = await start({ nodes: 6, minimumNodes: 3, agents: false, baseConfig: { p2p: { auto: { ha: { enable: true, master_nodes: 2 } } } } })
    const first = ['n1', 'n2', 'n3', 'n4', 'n5']
    for (const x of first) await l.restart(x)
    const formed = await l.waitFor((s) => isFormed(s, first), { timeoutMs: WAIT_MS, what: 'n1–n5 formed' })
    const init = formed.clusters[0]?.server ?? ''
    const servers = first.filter((x) => node(formed, x).role === 'server')
    const agent = first.find((x) => node(formed, x).role === 'agent') ?? ''
    expect(servers).toHaveLength(2)
    expect(agent).not.toBe('')

    // Damaged files, one at a time: the host is powered off hard, the file overwritten,
    // the host booted again. It joins again, and its log says what was set aside.
    const damage: Array<[string, string, string]> = [
      [agent, 'roles.json', '{"promised": 3'],
      [agent, 'seal-key.json', '{"v":1,"x25519":"short"}'],
      [agent, 'vpn/claim.json', '{"cidr": '],
      [agent, 'vpn/wireguard.key', 'not a key\n'],
      [servers[0] as string, 'cluster-secrets.json', '{"serverToken": ']
    ]
    for (const [name, file, content] of damage) {
      const h = await host(l, name)
      const before = node(await l.status(), name)
      await l.kill(name)
      await writeFile(join(h.stateDir, file), content, { mode: 0o600 })
      await l.restart(name)
      const s = await back(l, name, `${name} joined again after a damaged ${file}`)
      expect(node(s, name).role).toBe(before.role)
      const log = await readFile(h.logPath, 'utf8')
      expect(log).toMatch(new RegExp(`${file.replace(/[./]/g, '\\$&')} is damaged.*set aside as ${basename(file).replace(/\./g, '\\.')}\\.corrupt-\\d{8}T\\d{6}Z`))
      expect((await readdir(join(h.stateDir, dirname(file)))).some((f) => f.startsWith(`${basename(file)}.corrupt-`))).toBe(true)
      if (file === 'vpn/claim.json') expect(node(s, name).overlayAddress).toBe(before.overlayAddress)
    }
    await l.waitFor((s) => isFormed(s, first), { timeoutMs: WAIT_MS, what: 'n1–n5 formed again' })

    // The init server dies hard. A new box gets its credential from an HA server and
    // registers with that server's k3s stand-in.
    await l.kill(init)
    await l.restart('n6')
    const joined = await back(l, 'n6', 'n6 joined with the init server down')
    expect(node(joined, 'n6').role).toBe('agent')
    const via: string[] = []
    for (const x of servers) {
      const reg = JSON.parse(await readFile(join((await host(l, x)).dir, 'k3s', HA_DIR, REGISTRY_FILE), 'utf8').catch(() => 'null')) as StandinRegistry | null
      if (reg?.nodes.some((r) => r.name === 'n6' && r.role === 'agent' && r.nodeIp === node(joined, 'n6').overlayAddress) === true) via.push(x)
    }
    expect(via).toHaveLength(1)

    // Its identity damaged, the init server cannot come back as itself: it stops with
    // the file and the way back.
    const ih = await host(l, init)
    await writeFile(join(ih.stateDir, 'identity.key'), 'not a key', { mode: 0o600 })
    await l.restart(init)
    await l.waitFor((s) => node(s, init).powered && !node(s, init).running, { timeoutMs: WAIT_MS, what: 'the init server to stop' })
    const log = await readFile(ih.logPath, 'utf8')
    expect(log).toContain(join(ih.stateDir, 'identity.key'))
    expect(log).toMatch(/This node is the init server of cluster \S+ \(roles\.json\).*a new identity cannot take its place\. Restore identity\.key from a backup/)
  }, SCENARIO_MS)
})
