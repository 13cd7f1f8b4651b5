// The reasons a stuck node gives in `status`, for each stuck state a lab site can be put
// in: waiting for more nodes, waiting on a dead init server, the installer rejected by
// the server, partitioned from the quorum. Real agents in namespaces (root); skipped
// without root or with KAIROS_LAB_E2E=0, like e2e.test.ts. Hosts are booted one by one
// with `restart` (a host of a lab built without agents boots on its first restart).
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { isFormed, type Lab, type LabStatus } from '../../netns-lab/lab.ts'
import { labEnabled, labNode, labScenarios } from './scenario.ts'
import { TOKENS_FILE } from '../../netns-lab/k3s-standin.ts'

const WAIT_MS = 120_000
const SCENARIO_MS = 400_000

describe.skipIf(!labEnabled)('why a node waits, in the lab (root)', () => {
  const { start } = labScenarios('w')
  const node = labNode
  /** Waits until each named node's reason matches; returns the last status. */
  const reasons = async (l: Lab, names: string[], re: RegExp, what: string): Promise<LabStatus> =>
    await l.waitFor((s) => names.every((x) => re.test(node(s, x).reason ?? '')), { timeoutMs: WAIT_MS, what })

  it('waiting for more nodes; the installer rejected by the server; waiting on a dead init server', async () => {
    const l = await start({ nodes: 5, minimumNodes: 3, agents: false })

    // Two of three: both say how many more they need and what to do.
    await l.restart('n1')
    await l.restart('n2')
    const waiting = await reasons(l, ['n1', 'n2'], /^waiting for 1 more node: minimum_nodes is 3, 2 nodes alive/, 'n1 and n2 waiting for one more node')
    expect(node(waiting, 'n1').phase).toBe('waiting')
    expect(node(waiting, 'n1').reason).toContain('boot more boxes')

    // The third forms the cluster.
    await l.restart('n3')
    const formed = await l.waitFor((s) => isFormed(s, ['n1', 'n2', 'n3']), { timeoutMs: WAIT_MS, what: 'n1–n3 formed' })
    const init = formed.clusters[0]?.server ?? ''
    expect(node(formed, init).init).toBe(true)
    for (const x of ['n1', 'n2', 'n3']) expect(node(formed, x).reason).toBeUndefined()

    // The k3s server's tokens change behind the site's back (as after `k3s token rotate`):
    // the next node's installer is refused, and says so with the server's words and the next try.
    const tokensPath = join(await l.dir(), 'hosts', init, 'k3s', TOKENS_FILE)
    const tokens = JSON.parse(await readFile(tokensPath, 'utf8')) as { server: string, agent: string }
    await writeFile(tokensPath, JSON.stringify({ server: randomBytes(16).toString('hex'), agent: randomBytes(16).toString('hex') }), { mode: 0o600 })
    expect(tokens.agent).not.toBe('')
    await l.restart(init)
    await l.waitFor((s) => s.clusters[0]?.running === true && node(s, init).phase === 'joined', { timeoutMs: WAIT_MS, what: 'the init server back with its stand-in' })
    await l.restart('n4')
    const refused = await reasons(l, ['n4'], /^the installer failed (once|\d+ times), last \d+ s ago: .*HTTP 401 token not accepted.*; retried (in \d+ s|at the next step)/, 'n4 refused by the stand-in')
    expect(node(refused, 'n4').phase).toBe('installing')
    expect(node(refused, 'n4').warnings?.join('\n')).toMatch(/installer failed .*HTTP 401 token not accepted.*next try/)

    // The init server dies hard; a node booted now waits for a credential only it can seal.
    await l.kill(init)
    await l.restart('n5')
    const orphan = await reasons(l, ['n5'], /^waiting for a credential(: the only server that can issue credentials, \S+ \(init server\), is gone \(dead for \d+ s\): boot the init server again| from \S+ \(init server\), suspect for \d+ s: restart the init server)/, 'n5 waiting on the dead init server')
    expect(node(orphan, 'n5').phase).toBe('waiting')
  }, SCENARIO_MS)

  it('partitioned from the quorum', async () => {
    // A long settle period holds the election back while all five see each other.
    const l = await start({ nodes: 5, minimumNodes: 3, baseConfig: { p2p: { timing: { election_settle_ms: 600_000 } } } })
    await l.waitFor((s) => s.nodes.every((x) => x.peers === 4 && x.phase === 'electing'), { timeoutMs: WAIT_MS, what: 'all five electing, each knowing four peers' })
    await l.partition(['n1', 'n2', 'n3'], ['n4', 'n5'])
    const cut = await reasons(l, ['n4', 'n5'], /^partitioned from the quorum: reaches 2 of the 5 nodes it knows/, 'n4 and n5 partitioned from the quorum')
    expect(node(cut, 'n4').reason).toContain('check the network between these nodes')
    // The other side holds a quorum: it does not say it is partitioned from it.
    expect(node(cut, 'n1').reason ?? '').not.toContain('partitioned from the quorum')
  }, SCENARIO_MS)
})
