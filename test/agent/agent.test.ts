// Whole agents (p2p + roles + hand-off, overlay off) in one process on loopback:
// the in-process counterpart of the netns lab's formation test.
import { createHash } from 'node:crypto'
import { afterAll, describe, expect, it } from 'vitest'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseConfig } from '../../config/index.ts'
import { encodeToken } from '../../token/index.ts'
import { createAgent, type Agent } from '../../agent/agent.ts'
import { queryAgent } from '../../agent/api.ts'
import type { AgentStatus } from '../../agent/status.ts'
import { waitFor } from '../helpers/wait.ts'
import { createFakeWireGuardDriver, type WireGuardDriver } from '../../vpn/index.ts'

const dirs: string[] = []
const agents: Agent[] = []

afterAll(async () => {
  await Promise.allSettled(agents.map(async (a) => { await a.stop() }))
  await Promise.allSettled(dirs.map(async (d) => { await rm(d, { recursive: true, force: true }) }))
})


/** The CA the init server's k3s "creates": a real self-signed certificate. */
const CA_FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'ca', 'server-ca.crt')

function configFor (stateDir: string, token: string, bootstrap: string[], out: string, opts: { minimumNodes?: number, vpn?: string } = {}): ReturnType<typeof parseConfig>['config'] {
  const yaml = [
    'p2p:',
    `  network_token: ${token}`,
    '  preset: lab',
    `  minimum_nodes: ${opts.minimumNodes ?? 3}`,
    '  mdns: false',
    '  listen: [/ip4/127.0.0.1/tcp/0]',
    `  state_dir: ${stateDir}`,
    `  bootstrap_peers: ${JSON.stringify(bootstrap)}`,
    `  vpn: ${opts.vpn ?? '{create: false}'}`,
    '  installer:',
    '    kind: exec',
    // The init server's "k3s" creates its CA in its data dir, as k3s does at first start.
    // Written aside and renamed: a poll must never read the file the shell has only just created.
    `    command: [/bin/sh, -c, 'if [ "$KAIROS_ROLE" = init ]; then mkdir -p "$1/server/tls" && cp "$2" "$1/server/tls/server-ca.crt"; fi; env | grep ^KAIROS_ | sort > "$0.tmp" && mv "$0.tmp" "$0"', ${out}, ${stateDir}-k3s, ${CA_FIXTURE}]`,
    'k3s:',
    `  args: [--data-dir, ${stateDir}-k3s]`
  ].join('\n')
  return parseConfig([{ name: 'test.yaml', text: yaml }]).config
}

async function envOf (file: string): Promise<Record<string, string> | undefined> {
  const text = await readFile(file, 'utf8').catch(() => undefined)
  if (text === undefined) return undefined
  return Object.fromEntries(text.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]))
}

describe('agent', () => {
  it('three agents elect one init server, deliver scoped credentials and hand off', async () => {
    const token = encodeToken(new Uint8Array(32).fill(3))
    const root = await mkdtemp(join(tmpdir(), 'kp2p-agent-'))
    dirs.push(root)
    const outs = [0, 1, 2].map((i) => join(root, `handoff-${i}.env`))
    const first = await createAgent({ config: configFor(join(root, 'n0'), token, [], outs[0] as string) })
    agents.push(first)
    await first.start()
    // Read after start (the identity is loaded by start): the 'agent started' log line carries it.
    expect(first.peerId).toMatch(/^12D3KooW/)
    const bootstrap = first.status().addresses.filter((a) => a.includes('/tcp/')).map((a) => a.includes('/p2p/') ? a : `${a}/p2p/${first.peerId}`)
    expect(bootstrap.length).toBeGreaterThan(0)
    for (const i of [1, 2]) {
      const a = await createAgent({ config: configFor(join(root, `n${i}`), token, bootstrap, outs[i] as string) })
      agents.push(a)
      await a.start()
    }

    const envs = await waitFor('every hand-off', async () => {
      const all = await Promise.all(outs.map(envOf))
      return all.every((e) => e !== undefined) ? all as Array<Record<string, string>> : undefined
    })
    const caHash = createHash('sha256').update(await readFile(CA_FIXTURE)).digest('hex')
    const inits = envs.filter((e) => e.KAIROS_ROLE === 'init')
    expect(inits).toHaveLength(1)
    const init = inits[0] as Record<string, string>
    const others = envs.filter((e) => e !== init)
    for (const e of others) {
      expect(e.KAIROS_ROLE).toBe('agent')
      // The agent token, pinning the CA the init server's k3s created.
      expect(e.KAIROS_TOKEN).toBe(`K10${caHash}::node:${init.KAIROS_AGENT_TOKEN ?? ''}`)
      expect(e.KAIROS_TOKEN).not.toContain(init.KAIROS_TOKEN)
      expect(e.KAIROS_AGENT_TOKEN ?? '').toBe('')
      expect(e.KAIROS_SERVER_URL).toMatch(/^https:\/\/[0-9.]+:6443$/)
    }

    // The status over the local socket agrees, and no k3s token is in the shared state.
    const statuses = await waitFor('every agent joined', async () => {
      const all = await Promise.all(agents.map(async (a, i) => JSON.parse(await queryAgent(join(root, `n${i}`), '/status')) as AgentStatus))
      return all.every((s) => s.phase === 'joined') ? all : undefined
    })
    expect(new Set(statuses.map((s) => s.leader)).size).toBe(1)
    expect(statuses.map((s) => s.role).sort()).toEqual(['agent', 'agent', 'init'])
    for (const s of statuses) expect(s.timeline.map((e) => e.event)).toEqual(expect.arrayContaining(['started', 'discovered', 'elected', 'credential', 'joined']))
    // Joined: no reason left; every node sees the whole site with the roles each published.
    for (const s of statuses) {
      expect(s.reason).toBeUndefined()
      expect(s.site?.[0]?.peerId).toBe(s.peerId)
      expect(s.site?.map((m) => m.role).sort()).toEqual(['agent', 'agent', 'init'])
    }
  }, 60_000)

  it('elects while the overlay is still coming up, and hands off only once it is up, with its address', async () => {
    const token = encodeToken(new Uint8Array(32).fill(4))
    const root = await mkdtemp(join(tmpdir(), 'kp2p-agent-'))
    dirs.push(root)
    const out = join(root, 'handoff.env')
    const fake = createFakeWireGuardDriver()
    let release: () => void = () => {}
    const gate = new Promise<void>((resolve) => { release = resolve })
    let ensured = false
    const driver: WireGuardDriver = {
      ...fake,
      ensureInterface: async (spec, signal) => { await gate; ensured = true; return await fake.ensureInterface(spec, signal) }
    }
    const config = configFor(join(root, 'n0'), token, [], out, { minimumNodes: 1, vpn: '{create: true, use: true, interface: kt0}' })
    const agent = await createAgent({ config, vpnDriver: driver })
    agents.push(agent)
    const starting = agent.start()

    // The election and the credentials do not wait for the interface…
    const events = (): string[] => agent.status().timeline.map((e) => e.event)
    await waitFor('elected and credential before the overlay', () => events().includes('credential') ? true : undefined)
    expect(ensured).toBe(false)
    expect(events()).not.toContain('overlay-up')
    expect(events()).not.toContain('installing')
    expect(await envOf(out)).toBeUndefined()

    // …and the hand-off waits for it, then carries the overlay address.
    release()
    await starting
    const env = await waitFor('hand-off', async () => await envOf(out))
    const overlay = agent.status().overlay
    expect(overlay?.address).toMatch(/^10\.88\./)
    expect(env.KAIROS_ROLE).toBe('init')
    expect(env.KAIROS_NODE_IP).toBe(overlay?.address)
    expect(env.KAIROS_IFACE).toBe('kt0')
    const order = events()
    expect(order.indexOf('overlay-up')).toBeLessThan(order.indexOf('installing'))
  }, 30_000)
})
