import { describe, expect, it } from 'vitest'
import { createRotation, GENERATION_KEY, type Rotation } from '../../agent/rotation.ts'
import type { ChosenToken, TokenState } from '../../agent/token-state.ts'
import { memorySealKeys, type SealKeys } from '../../roles/credentials.ts'
import { ROTATION_PREFIX, rotationEntries } from '../../roles/rotation.ts'
import { generateToken, parseToken } from '../../token/index.ts'
import { createFakeSite, type FakeSite } from '../../sim/cluster-state.ts'
import { ManualClock } from '../../util/clock.ts'
import { silentLogger } from '../../util/log.ts'
import { seededRandom } from '../../util/random.ts'
import { fingerprintOf } from '../../agent/token-state.ts'

const [I, S, A, X] = ['12D3KooWInit', '12D3KooWServer', '12D3KooWAgentA', '12D3KooWAgentX']
const random = seededRandom(11)
const oldText = generateToken(random)
const keys = new Map([I, S, A, X].map((id) => [id, memorySealKeys(random)]))

interface Member { rotation: Rotation, saved: TokenState[], restarts: string[] }

function siteWithCluster (): FakeSite {
  const site = createFakeSite()
  site.inject(I, `cred/${S}`, { kind: 'server', to: 'k', clusterId: 'c', box: 'x' })
  for (const id of [I, S, A]) site.inject(id, 'roles/node', { sealKey: (keys.get(id) as SealKeys).publicKey, role: 'auto', eligible: true })
  return site
}

function memberOn (site: FakeSite, self: string, clock = new ManualClock(1_000_000), current: ChosenToken = { token: parseToken(oldText), generation: 0, source: 'config', history: [] }): Member {
  const saved: TokenState[] = []
  const restarts: string[] = []
  const rotation = createRotation({
    node: { peerId: self, state: site.node(self), reseal: async () => 0 },
    current,
    acceptedInit: () => I,
    sealKeys: async () => keys.get(self) as SealKeys,
    save: (s) => { saved.push(s) },
    restart: (reason) => { restarts.push(reason) },
    clock,
    random,
    logger: silentLogger
  })
  rotation.start()
  return { rotation, saved, restarts }
}

const settle = async (): Promise<void> => { for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve)) }

describe('token rotation on an agent', () => {
  it('a server rotates: every member with a copy saves the new token with the old one until the grace end, and restarts', async () => {
    const site = siteWithCluster()
    const [server, agent] = [memberOn(site, S), memberOn(site, A)]
    const r = await server.rotation.rotate(60_000)
    expect(r).toMatchObject({ generation: 1, sealedTo: 3, until: 1_060_000 })
    await settle()
    // The publisher waits for its answer to go out before it follows.
    expect(server.restarts).toEqual([])
    server.rotation.release()
    await settle()
    for (const m of [server, agent]) {
      expect(m.restarts).toEqual(['token rotated to generation 1'])
      expect(m.saved[0]).toMatchObject({ generation: 1, previous: { token: oldText, until: 1_060_000 }, history: [fingerprintOf(parseToken(oldText))] })
      expect(fingerprintOf(parseToken(m.saved[0]?.token ?? ''))).toBe(r.fingerprint)
    }
  })

  it('refuses to rotate on a node that is not a server, and a grace out of bounds', async () => {
    const site = siteWithCluster()
    const agent = memberOn(site, A)
    await expect(agent.rotation.rotate(60_000)).rejects.toMatchObject({ name: 'TokenRotateRefusedError', message: expect.stringMatching(/not a server/) })
    const server = memberOn(site, S)
    await expect(server.rotation.rotate(1_000)).rejects.toMatchObject({ name: 'TokenRotateRefusedError', message: expect.stringMatching(/out of bounds/) })
  })

  it('ignores a record of a token holder that is not a server', async () => {
    const site = siteWithCluster()
    const agent = memberOn(site, A)
    const header = { generation: 1, from: fingerprintOf(parseToken(oldText)), to: fingerprintOf(parseToken(generateToken(random))), at: 1_000_000, until: 1_060_000 }
    const recipients = new Map([[A, (keys.get(A) as SealKeys).publicKey]])
    for (const e of rotationEntries(header, generateToken(random), recipients, random)) site.inject(X, e.key, e.value)
    await settle()
    expect(agent.saved).toEqual([])
    expect(agent.restarts).toEqual([])
  })

  it('a member the record has no copy for stays, and its status says what to do', async () => {
    const site = siteWithCluster()
    const outsider = memberOn(site, X)
    const server = memberOn(site, S)
    await server.rotation.rotate(60_000)
    server.rotation.release()
    await settle()
    expect(outsider.restarts).toEqual([])
    expect(outsider.rotation.status().problem).toMatch(/without a copy for this node .* put the new token \(fingerprint .*\) in this box's cloud-config/)
    expect(site.node(X).list(ROTATION_PREFIX).length).toBeGreaterThan(0)
  })

  it('a box set up with a rotated token takes its generation from a server\'s announcement, not from anyone else\'s', async () => {
    const site = siteWithCluster()
    const newText = generateToken(random)
    const fp = fingerprintOf(parseToken(newText))
    site.inject(X, GENERATION_KEY, { v: 1, generation: 9, fingerprint: fp })
    memberOn(site, S, new ManualClock(1_000_000), { token: parseToken(newText), generation: 2, source: 'state', history: [] })
    const fresh = memberOn(site, A, new ManualClock(1_000_000), { token: parseToken(newText), generation: 0, source: 'config', history: [] })
    await settle()
    expect(site.node(A).get(S, GENERATION_KEY)?.value).toEqual({ v: 1, generation: 2, fingerprint: fp })
    expect(fresh.rotation.status().generation).toBe(2)
    expect(fresh.saved).toEqual([{ generation: 2, token: newText, history: [] }])
  })
})
