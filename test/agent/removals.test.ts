import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { createRemovals, type Removals } from '../../agent/removals.ts'
import { startApiServer, type ApiServer } from '../../agent/api.ts'
import { command as nodeCommand } from '../../cli/node.ts'
import type { CliIO } from '../../cli/io.ts'
import type { P2PStatus } from '../../p2p/node-api.ts'
import { createFakeSite, type FakeSite } from '../../sim/cluster-state.ts'
import { ManualClock } from '../../util/clock.ts'
import { silentLogger } from '../../util/log.ts'
import { waitFor } from '../helpers/wait.ts'

// init server I, HA server S, agents A and B, and O: the old identity of a reinstalled box.
const [I, S, A, B, O] = ['12D3KooWInit', '12D3KooWServer', '12D3KooWAgentA', '12D3KooWAgentB', '12D3KooWOldBox']

function status (self: string): P2PStatus {
  return {
    peerId: self, fingerprint: 'f', networkId: '', addresses: [], peers: [], state: { entries: 0, bytes: 0 }, rejections: {},
    admissionFailures: 0, admissionFailuresByReason: { 'bad-proof': 0, timeout: 0, protocol: 0, revoked: 0 }, syncs: { ok: 0, failed: 0 },
    dials: { ok: 0, failed: 0, pruned: 0, candidatesDropped: 0 }, connections: { opened: 0, closed: 0, doubles: 0, admissions: 0 }, rendezvous: { rounds: 0, providersFound: 0 }, stalls: { count: 0, ms: 0 },
    heartbeatMs: 1000, refutations: 0, loopErrors: 0, departed: []
  }
}

interface Agentish { removals: Removals, revoked: () => ReadonlySet<string> }

function agentOn (site: FakeSite, self: string, init: string | undefined): Agentish {
  let revoked: ReadonlySet<string> = new Set()
  const state = site.node(self)
  const removals = createRemovals({
    node: { peerId: self, state, status: () => status(self), revoke: (p) => { revoked = p }, revoked: () => revoked },
    acceptedInit: () => init,
    clock: new ManualClock(1_000_000),
    logger: silentLogger
  })
  removals.start()
  return { removals, revoked: () => revoked }
}

function siteWithCluster (): FakeSite {
  const site = createFakeSite()
  site.inject(I, `cred/${S}`, { kind: 'server', to: 'k', clusterId: 'c', box: 'x' })
  for (const [id, host, address] of [[I, 'box-i', '10.88.0.1'], [S, 'box-s', '10.88.0.2'], [A, 'box-a', '10.88.0.3'], [B, 'box-b', '10.88.0.4'], [O, 'box-b', '10.88.0.5']] as const) {
    site.inject(id, 'p2p/member', { since: 0, host })
    site.inject(id, 'vpn/advert', { publicKey: 'k'.repeat(43) + '=', port: 51820, endpoints: [], address, attempt: 0 })
  }
  return site
}

describe('node removal on an agent', () => {
  it('the init server removes a node: every node applies it and revokes the identity', async () => {
    const site = siteWithCluster()
    const nodes = [I, S, A, B].map((id) => agentOn(site, id, I))
    const [onInit] = nodes as [Agentish]
    const r = await onInit.removals.remove('10.88.0.5', false)
    expect(r.peer).toBe(O)
    expect(r.applied?.basis).toBe('init-server')
    expect(r.warning).toBeUndefined()
    for (const n of nodes) await waitFor('the removal reached every node', () => n.revoked().has(O) || undefined, 2_000)
    const listed = onInit.removals.nodes().find((n) => n.peerId === O)
    expect(listed?.removed?.basis).toBe('init-server')
  })

  it('an agent may not remove alone: refused without --force, a pending vote with it, applied once a majority voted', async () => {
    const site = siteWithCluster()
    const [, , a, b] = [I, S, A, B].map((id) => agentOn(site, id, I)) as [Agentish, Agentish, Agentish, Agentish]
    await expect(a.removals.remove(O, false)).rejects.toMatchObject({ name: 'NodeRemoveRefusedError', exitCode: 2 })
    const vote = await a.removals.remove(O, true)
    expect(vote.applied).toBeUndefined()
    expect(vote.pending?.needed).toBeGreaterThan(0)
    expect(vote.warning).toMatch(/this node is not a server.*vote/)
    expect(a.revoked().has(O)).toBe(false)
    await b.removals.remove(O, true)
    const third = agentOn(site, S, I)
    // S is a server: its own removal of an agent applies anyway; here it is also the third vote.
    const last = await third.removals.remove(O, true)
    expect(last.applied).toBeDefined()
    await waitFor('a applied the removal', () => a.revoked().has(O) || undefined, 2_000)
  })

  it('a server cannot remove the init server on its own', async () => {
    const site = siteWithCluster()
    const s = agentOn(site, S, I)
    await expect(s.removals.remove(I, false)).rejects.toMatchObject({ name: 'NodeRemoveRefusedError', message: expect.stringMatching(/only the init server .* or a majority/) })
  })

  it('unknown and ambiguous names, and this node itself, are refused with their error', async () => {
    const site = siteWithCluster()
    const i = agentOn(site, I, I)
    await expect(i.removals.remove('box-z', false)).rejects.toMatchObject({ name: 'UnknownNodeError' })
    await expect(i.removals.remove('box-b', false)).rejects.toMatchObject({ name: 'AmbiguousNodeError' })
    await expect(i.removals.remove(I, false)).rejects.toMatchObject({ name: 'NodeRemoveRefusedError' })
  })
})

describe('kairos-p2p node', () => {
  let server: ApiServer | undefined
  let dir: string | undefined
  afterEach(async () => {
    await server?.close()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
    server = undefined
    dir = undefined
  })

  function io (): CliIO & { out: string[], err: string[] } {
    const out: string[] = []
    const err: string[] = []
    return { out, err, stdout: (t) => { out.push(t) }, stderr: (t) => { err.push(t) }, readStdin: async () => '', env: {}, signal: new AbortController().signal }
  }

  async function serve (self: string): Promise<string> {
    const site = siteWithCluster()
    for (const id of [I, S, A, B]) if (id !== self) agentOn(site, id, I)
    const me = agentOn(site, self, I)
    dir = await mkdtemp(join(tmpdir(), 'kp2p-node-cli-'))
    server = await startApiServer(dir, { status: () => ({}), metrics: () => '', nodes: () => ({ now: 1_000_000, nodes: me.removals.nodes() }), remove: async (q, f) => await me.removals.remove(q, f) })
    return dir
  }

  it('node remove on the init server removes; node list shows it removed', async () => {
    const d = await serve(I)
    const a = io()
    expect(await nodeCommand.run(['remove', O, '--state-dir', d], a)).toBe(0)
    expect(a.out.join('')).toMatch(new RegExp(`^removed ${O} .*\\(init-server\\)`))
    const l = io()
    expect(await nodeCommand.run(['list', '--state-dir', d], l)).toBe(0)
    expect(l.out.join('')).toMatch(new RegExp(`${O}\\s+box-b\\s+10\\.88\\.0\\.5\\s+-\\s+removed \\(init-server\\)`))
    const j = io()
    expect(await nodeCommand.run(['list', '--json', '--state-dir', d], j)).toBe(0)
    expect((JSON.parse(j.out.join('')) as { nodes: Array<{ peerId: string }> }).nodes[0]?.peerId).toBe(I)
  })

  it('errors from the agent end the command with their message and exit code 2', async () => {
    const d = await serve(A)
    await expect(nodeCommand.run(['remove', 'box-b', '--state-dir', d], io())).rejects.toMatchObject({ name: 'AgentRequestError', remoteName: 'AmbiguousNodeError', exitCode: 2 })
    await expect(nodeCommand.run(['remove', 'nobody', '--state-dir', d], io())).rejects.toMatchObject({ remoteName: 'UnknownNodeError', exitCode: 2 })
    await expect(nodeCommand.run(['remove', O, '--state-dir', d], io())).rejects.toMatchObject({ remoteName: 'NodeRemoveRefusedError', exitCode: 2, message: expect.stringMatching(/--force/) })
    const forced = io()
    expect(await nodeCommand.run(['remove', O, '--force', '--state-dir', d], forced)).toBe(0)
    expect(forced.err.join('')).toMatch(/^warning: this node is not a server/)
    expect(forced.out.join('')).toMatch(/published this node's removal vote .* more needed/)
  })

  it('usage errors and no agent running', async () => {
    await expect(nodeCommand.run(['remove'], io())).rejects.toMatchObject({ name: 'UsageError', exitCode: 2 })
    await expect(nodeCommand.run(['frob'], io())).rejects.toMatchObject({ name: 'UsageError' })
    const h = io()
    expect(await nodeCommand.run(['remove', '--help'], h)).toBe(0)
    expect(h.out.join('')).toMatch(/^Usage: kairos-p2p node remove/)
    dir = await mkdtemp(join(tmpdir(), 'kp2p-node-cli-'))
    await expect(nodeCommand.run(['list', '--state-dir', dir], io())).rejects.toMatchObject({ name: 'AgentUnreachableError', exitCode: 1 })
  })
})
