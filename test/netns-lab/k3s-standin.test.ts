import { execa } from 'execa'
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createServer } from 'node:net'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { caHashOf, pemCertificates } from '../../roles/credentials.ts'
import { secureJoinToken } from '../../roles/install-plan.ts'
import type { Clock } from '../../util/clock.ts'
import {
  backoffDelay, clusterCaPath, CONFIG_FILE, decideRegistration, DEFAULT_REGISTER_RETRY_MAX_MS, ensureClusterCa, parseInstallEnv, parseJoinToken,
  registerNode, startStandinServer, standinUrl, HA_DIR, REGISTRY_FILE, type StandinRegistry, type StandinServer
} from '../../netns-lab/k3s-standin.ts'

const tokens = { server: 'server-secret', agent: 'agent-secret' }
const empty: StandinRegistry = { version: 1, server: { name: 'n1', address: '10.88.0.1', port: 6443, startedAt: 0 }, nodes: [] }
const body = (role: string, name = 'n2'): unknown => ({ name, role, nodeIp: '10.88.0.2' })

describe('decideRegistration', () => {
  it.each([
    ['server token, server role', tokens.server, 'server', 201],
    ['server token, agent role', tokens.server, 'agent', 201],
    ['agent token, agent role', tokens.agent, 'agent', 201],
    ['agent token, server role', tokens.agent, 'server', 403],
    ['wrong token', 'K10nope', 'agent', 401],
    ['no token', undefined, 'agent', 401],
    ['bad role', tokens.server, 'boss', 400]
  ] as const)('%s → %i', (_label, token, role, status) => {
    const d = decideRegistration(empty, body(role), token, tokens, '10.88.0.2', 1000)
    expect(d.status).toBe(status)
  })

  it('keeps the first registration time on a repeat and answers 200', () => {
    const first = decideRegistration(empty, body('agent'), tokens.agent, tokens, '10.88.0.2', 1000)
    if (!first.ok) throw new Error('first registration refused')
    const again = decideRegistration(first.registry, body('agent'), tokens.agent, tokens, '10.88.0.2', 5000)
    expect(again.status).toBe(200)
    if (!again.ok) throw new Error('repeat refused')
    expect(again.registry.nodes).toHaveLength(1)
    expect(again.node.registeredAt).toBe(1000)
  })

  it('marks init only for a server presenting the server token', () => {
    const d = decideRegistration(empty, { name: 'n1', role: 'agent', nodeIp: '10.88.0.1', init: true }, tokens.server, tokens, '10.88.0.1', 1)
    expect(d.ok && d.node.init).toBe(false)
  })
})

describe('helpers', () => {
  it('backs off doubling up to the cap', () => {
    expect([0, 1, 2, 3, 4, 5, 10].map((a) => backoffDelay(a))).toEqual([100, 200, 400, 800, 1600, 2000, 2000])
  })
  it('contacts exactly the host and port of the server URL', () => {
    expect(standinUrl('https://10.88.0.1:6443')).toBe('http://10.88.0.1:6443')
    expect(() => standinUrl('10.88.0.1:6443')).toThrowError(expect.objectContaining({ name: 'StandinInputError' }))
  })
  it('reads the exec installer environment and names a bad variable', () => {
    const env = { KAIROS_ROLE: 'agent', KAIROS_TOKEN: 't', KAIROS_NODE_IP: '10.88.0.3', KAIROS_SERVER_URL: 'https://10.88.0.1:6443', KAIROS_IFACE: 'kairos0' }
    expect(parseInstallEnv(env)).toMatchObject({ role: 'agent', nodeIp: '10.88.0.3' })
    expect(() => parseInstallEnv({ ...env, KAIROS_ROLE: 'boss' })).toThrowError(/KAIROS_ROLE/)
    expect(() => parseInstallEnv({ ...env, KAIROS_ROLE: 'init' })).toThrowError(/KAIROS_AGENT_TOKEN/)
    expect(() => parseInstallEnv({ ...env, KAIROS_NODE_IP: 'nope' })).toThrowError(/KAIROS_NODE_IP/)
  })
  it('takes the data dir from the k3s config, and an init server needs one (never /var/lib/rancher/k3s)', () => {
    const env = { KAIROS_ROLE: 'init', KAIROS_TOKEN: 't', KAIROS_AGENT_TOKEN: 'a', KAIROS_NODE_IP: '10.88.0.3' }
    expect(parseInstallEnv({ ...env, KAIROS_K3S_CONFIG: 'cluster-init: true\ndata-dir: /tmp/x/k3s\n' })).toMatchObject({ dataDir: '/tmp/x/k3s' })
    expect(() => parseInstallEnv(env)).toThrowError(/sets no data-dir/)
    expect(() => parseInstallEnv({ ...env, KAIROS_K3S_CONFIG: 'data-dir: relative\n' })).toThrowError(/absolute path/)
    expect(() => parseInstallEnv({ ...env, KAIROS_K3S_CONFIG: 'data-dir: [\n' })).toThrowError(/not YAML/)
  })
})

describe('parseJoinToken, as k3s parses a token', () => {
  const hash = 'a'.repeat(64)
  it.each([
    ['a short token is sent as is', 'secret', { secret: 'secret' }],
    ['a secure server token', `K10${hash}::server:s3cret`, { caHash: hash, user: 'server', secret: 's3cret' }],
    ['a secure agent token', `K10${hash}::node:s3cret`, { caHash: hash, user: 'node', secret: 's3cret' }],
    ['K10 with no hash pins nothing', 'K10::node:s3cret', { user: 'node', secret: 's3cret' }],
    ['a secret with colons keeps them', `K10${hash}::node:a:b`, { caHash: hash, user: 'node', secret: 'a:b' }]
  ])('%s', (_, token, want) => {
    expect(parseJoinToken(token)).toEqual(want)
  })
  it.each([
    ['', 'token must not be empty'],
    ['K10abc::node:s', 'invalid token CA hash length'],
    ['K10wrong', 'invalid token format'],
    [`K10${hash}::node:`, 'invalid token format']
  ])('refuses %j: %s', (token, words) => {
    expect(() => parseJoinToken(token)).toThrowError(expect.objectContaining({ name: 'StandinInputError', message: words }))
  })
})

describe('the stand-in\'s cluster CA', () => {
  let dir = ''
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'standin-ca-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  it('is created once where k3s keeps it, a self-signed CA with its key private, and reused after', async () => {
    const first = await ensureClusterCa(dir, 1_700_000_000_000)
    expect(clusterCaPath(dir)).toBe(join(dir, 'server', 'tls', 'server-ca.crt'))
    expect(await readFile(clusterCaPath(dir))).toEqual(first)
    const [cert] = pemCertificates(first)
    expect(cert?.subject).toBe('CN=k3s-server-ca@1700000000')
    expect(cert?.ca).toBe(true)
    expect(cert?.checkIssued(cert)).toBe(true)
    expect((await stat(join(dir, 'server', 'tls', 'server-ca.key'))).mode & 0o777).toBe(0o600)
    expect(await ensureClusterCa(dir, 1_800_000_000_000)).toEqual(first)
  })

  it('refuses a damaged CA file instead of replacing it', async () => {
    await ensureClusterCa(dir, 0)
    await (await import('node:fs/promises')).writeFile(clusterCaPath(dir), 'garbage')
    await expect(ensureClusterCa(dir, 0)).rejects.toMatchObject({ name: 'StandinCaError' })
  })
})

describe('a joiner with a secure token, against a stand-in server on 127.0.0.1', () => {
  let dir = ''
  let server: StandinServer | undefined
  let cacerts: Buffer = Buffer.alloc(0)
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'standin-pin-'))
    cacerts = await ensureClusterCa(join(dir, 'data'), Date.now())
    server = await startStandinServer({ address: '127.0.0.1', port: 0, tokens, registryPath: join(dir, REGISTRY_FILE), name: 'n1', cacerts })
  })
  afterEach(async () => {
    await server?.close()
    await rm(dir, { recursive: true, force: true })
  })
  const node = { name: 'n2', role: 'agent' as const, nodeIp: '127.0.0.1' }

  it('serves the CA at /cacerts byte for byte, and registers a joiner whose token pins its hash', async () => {
    const s = server as StandinServer
    const served = Buffer.from(await (await fetch(`${s.url}/cacerts`)).arrayBuffer())
    expect(served).toEqual(cacerts)
    expect(caHashOf(served)).toBe(createHash('sha256').update(await readFile(clusterCaPath(join(dir, 'data')))).digest('hex'))
    const joined = await registerNode({ serverUrl: s.url, token: secureJoinToken(caHashOf(cacerts), 'agent', tokens.agent), node, timeoutMs: 5000 })
    expect(joined).toMatchObject({ name: 'n2', role: 'agent' })
  })

  it('refuses a server whose CA does not match the pin, in k3s\'s words, and never sends it the token', async () => {
    const s = server as StandinServer
    const wrong = 'b'.repeat(64)
    await expect(registerNode({ serverUrl: s.url, token: secureJoinToken(wrong, 'agent', tokens.agent), node, timeoutMs: 5000 }))
      .rejects.toMatchObject({ name: 'StandinCaMismatchError', message: expect.stringContaining(`failed to validate token: token CA hash does not match the Cluster CA certificate hash: ${wrong} != ${caHashOf(cacerts)}`) as unknown })
    expect(s.registry().nodes).toEqual([])
  })
})

describe('stand-in server on 127.0.0.1', () => {
  let dir = ''
  let server: StandinServer | undefined
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'standin-'))
    server = await startStandinServer({ address: '127.0.0.1', port: 0, tokens, registryPath: join(dir, REGISTRY_FILE), name: 'n1' })
  })
  afterEach(async () => {
    await server?.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('registers a node presenting the right token and persists the registry', async () => {
    const s = server as StandinServer
    const node = await registerNode({ serverUrl: s.url, token: tokens.agent, node: { name: 'n2', role: 'agent', nodeIp: '127.0.0.1' }, timeoutMs: 5000 })
    expect(node).toMatchObject({ name: 'n2', role: 'agent', remoteAddress: '127.0.0.1' })
    const saved = JSON.parse(await readFile(join(dir, REGISTRY_FILE), 'utf8')) as StandinRegistry
    expect(saved.nodes.map((n) => n.name)).toEqual(['n2'])
  })

  it('refuses a wrong token at once with StandinRefusedError (401)', async () => {
    const s = server as StandinServer
    await expect(registerNode({ serverUrl: s.url, token: 'wrong-token', node: { name: 'n2', role: 'agent', nodeIp: '127.0.0.1' }, timeoutMs: 5000 }))
      .rejects.toMatchObject({ name: 'StandinRefusedError', status: 401 })
    expect(s.registry().nodes).toEqual([])
  })

  it('refuses a server presenting only the agent token (403)', async () => {
    const s = server as StandinServer
    await expect(registerNode({ serverUrl: s.url, token: tokens.agent, node: { name: 'n3', role: 'server', nodeIp: '127.0.0.1' }, timeoutMs: 5000 }))
      .rejects.toMatchObject({ name: 'StandinRefusedError', status: 403 })
  })
})

describe('registerNode retries', () => {
  it('pauses at most DEFAULT_REGISTER_RETRY_MAX_MS between attempts while nothing listens, then times out', async () => {
    const probe = createServer()
    await new Promise<void>((resolve) => { probe.listen(0, '127.0.0.1', resolve) })
    const port = (probe.address() as { port: number }).port
    await new Promise<void>((resolve) => { probe.close(() => { resolve() }) })
    let now = 0
    const waits: number[] = []
    const clock: Clock = { now: () => now, sleep: async (ms) => { waits.push(ms); now += ms } }
    await expect(registerNode({ serverUrl: `https://127.0.0.1:${port}`, token: tokens.agent, node: { name: 'n2', role: 'agent', nodeIp: '127.0.0.1' }, timeoutMs: 1000, clock }))
      .rejects.toMatchObject({ name: 'StandinTimeoutError' })
    expect(DEFAULT_REGISTER_RETRY_MAX_MS).toBe(250)
    expect(waits).toEqual([100, 200, 250, 250])
  })
})

describe('k3s-standin.ts install (process)', () => {
  const script = fileURLToPath(new URL('../../netns-lab/k3s-standin.ts', import.meta.url))

  it('retries until the deadline when nothing listens, then fails with a message naming the URL', async () => {
    const r = await execa(process.execPath, [script, 'install', '--name', 'n2', '--dir', join(tmpdir(), 'standin-none'), '--timeout-ms', '600'], {
      reject: false,
      env: { KAIROS_ROLE: 'agent', KAIROS_TOKEN: 't', KAIROS_NODE_IP: '127.0.0.1', KAIROS_SERVER_URL: 'https://127.0.0.1:1' }
    })
    expect(r.exitCode).toBe(1)
    expect(r.stderr).toMatch(/127\.0\.0\.1:1 not reachable/)
  })

  it('init starts a detached server on the node address, registers itself, and agents join it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'standin-init-'))
    const port = 20000 + (process.pid % 20000)
    let serverPid: number | undefined
    try {
      const dataDir = join(dir, 'data')
      const env = { KAIROS_ROLE: 'init', KAIROS_TOKEN: tokens.server, KAIROS_AGENT_TOKEN: tokens.agent, KAIROS_NODE_IP: '127.0.0.1', KAIROS_SERVER_URL: '', KAIROS_K3S_CONFIG: `cluster-init: true\ndata-dir: ${dataDir}\n` }
      const r = await execa(process.execPath, [script, 'install', '--name', 'n1', '--dir', dir, '--port', String(port)], { reject: false, env })
      expect(r.stderr).toBe('')
      expect(r.exitCode).toBe(0)
      serverPid = (JSON.parse(await readFile(join(dir, 'server.json'), 'utf8')) as { pid: number }).pid
      // k3s's CA, where k3s keeps it; a joiner pinning its hash is let in.
      const ca = await readFile(clusterCaPath(dataDir))
      expect(pemCertificates(ca)[0]?.subject).toMatch(/CN=k3s-server-ca@\d+/)
      const secure = secureJoinToken(caHashOf(ca), 'agent', tokens.agent)
      const agentEnv = { KAIROS_ROLE: 'agent', KAIROS_TOKEN: secure, KAIROS_NODE_IP: '127.0.0.1', KAIROS_SERVER_URL: `https://127.0.0.1:${port}`, KAIROS_K3S_CONFIG: `token: ${secure}\n` }
      const a = await execa(process.execPath, [script, 'install', '--name', 'n2', '--dir', join(dir, 'n2')], { reject: false, env: agentEnv })
      expect(a.stderr).toBe('')
      expect(a.exitCode).toBe(0)
      expect(await readFile(join(dir, 'n2', CONFIG_FILE), 'utf8')).toBe(`token: ${secure}\n`)
      // A token pinning another CA: refused in k3s's words, before the secret is sent.
      const other = secureJoinToken('d'.repeat(64), 'agent', tokens.agent)
      const pinned = await execa(process.execPath, [script, 'install', '--name', 'n4', '--dir', join(dir, 'n4')], { reject: false, env: { ...agentEnv, KAIROS_TOKEN: other } })
      expect(pinned.exitCode).toBe(1)
      expect(pinned.stderr).toContain(`failed to validate token: token CA hash does not match the Cluster CA certificate hash: ${'d'.repeat(64)} != ${caHashOf(ca)}`)
      const bad = await execa(process.execPath, [script, 'install', '--name', 'n3', '--dir', join(dir, 'n3')], { reject: false, env: { ...agentEnv, KAIROS_TOKEN: 'wrong-token' } })
      expect(bad.exitCode).toBe(1)
      expect(bad.stderr).toMatch(/401/)
      const reg = JSON.parse(await readFile(join(dir, REGISTRY_FILE), 'utf8')) as StandinRegistry
      expect(reg.nodes.map((n) => [n.name, n.role, n.init])).toEqual([['n1', 'server', true], ['n2', 'agent', false]])
    } finally {
      if (serverPid !== undefined) process.kill(serverPid, 'SIGTERM')
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('an HA server registers at the init server, then serves the API itself with the cluster CA: an agent pinned to it joins through it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'standin-ha-'))
    const port = 20000 + ((process.pid + 7) % 20000)
    const pids: number[] = []
    try {
      const initEnv = { KAIROS_ROLE: 'init', KAIROS_TOKEN: tokens.server, KAIROS_AGENT_TOKEN: tokens.agent, KAIROS_NODE_IP: '127.0.0.1', KAIROS_SERVER_URL: '', KAIROS_K3S_CONFIG: `cluster-init: true\ndata-dir: ${join(dir, 'n1-data')}\n` }
      expect((await execa(process.execPath, [script, 'install', '--name', 'n1', '--dir', dir, '--port', String(port)], { reject: false, env: initEnv })).exitCode).toBe(0)
      pids.push((JSON.parse(await readFile(join(dir, 'server.json'), 'utf8')) as { pid: number }).pid)
      const ca = await readFile(clusterCaPath(join(dir, 'n1-data')))
      const serverDir = join(dir, 'n2')
      const serverToken = secureJoinToken(caHashOf(ca), 'server', tokens.server)
      const serverEnv = { KAIROS_ROLE: 'server', KAIROS_TOKEN: serverToken, KAIROS_AGENT_TOKEN: tokens.agent, KAIROS_NODE_IP: '127.0.0.2', KAIROS_SERVER_URL: `https://127.0.0.1:${port}`, KAIROS_K3S_CONFIG: `token: ${serverToken}\ndata-dir: ${join(dir, 'n2-data')}\n` }
      const srv = await execa(process.execPath, [script, 'install', '--name', 'n2', '--dir', serverDir, '--port', String(port)], { reject: false, env: serverEnv })
      expect(srv.stderr).toBe('')
      expect(srv.exitCode).toBe(0)
      pids.push((JSON.parse(await readFile(join(serverDir, HA_DIR, 'server.json'), 'utf8')) as { pid: number }).pid)
      // It took the cluster's CA, as a k3s server does: the same bytes, the same pin.
      expect(await readFile(clusterCaPath(join(dir, 'n2-data')))).toEqual(ca)
      const pinned = secureJoinToken(caHashOf(ca), 'agent', tokens.agent)
      const agentEnv = { KAIROS_ROLE: 'agent', KAIROS_TOKEN: pinned, KAIROS_NODE_IP: '127.0.0.3', KAIROS_SERVER_URL: `https://127.0.0.2:${port}` }
      expect((await execa(process.execPath, [script, 'install', '--name', 'n3', '--dir', join(dir, 'n3')], { reject: false, env: agentEnv })).exitCode).toBe(0)
      const bad = await execa(process.execPath, [script, 'install', '--name', 'n4', '--dir', join(dir, 'n4')], { reject: false, env: { ...agentEnv, KAIROS_TOKEN: secureJoinToken(caHashOf(ca), 'agent', 'f'.repeat(64)) } })
      expect(bad.stderr).toMatch(/401/)
      const init = JSON.parse(await readFile(join(dir, REGISTRY_FILE), 'utf8')) as StandinRegistry
      expect(init.nodes.map((n) => [n.name, n.role])).toEqual([['n1', 'server'], ['n2', 'server']])
      const ha = JSON.parse(await readFile(join(serverDir, HA_DIR, REGISTRY_FILE), 'utf8')) as StandinRegistry
      expect(ha.server.address).toBe('127.0.0.2')
      expect(ha.nodes.map((n) => [n.name, n.role])).toEqual([['n3', 'agent']])
    } finally {
      for (const pid of pids) process.kill(pid, 'SIGTERM')
      await rm(dir, { recursive: true, force: true })
    }
  })
})
