// `kairos-p2p agent` and `config validate` as real processes against hostile or broken
// local input: an alias bomb, SIGTERM during the load, a port in use, damaged state
// files, a fatal error after start. Each runs under a generous child-process timeout,
// so a regression fails instead of hanging the suite.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { open, mkdtemp, readFile, rm, writeFile, mkdir, stat } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa, execaSync, type ResultPromise } from 'execa'
import { encodeToken } from '../../token/index.ts'
import { waitFor } from '../helpers/wait.ts'

const bin = join(import.meta.dirname, '..', '..', 'bin', 'kairos-p2p.js')
const faultPreload = join(import.meta.dirname, 'fixtures', 'fault-on-usr2.mjs')
const node = process.execPath
const TOKEN = encodeToken(new Uint8Array(32).fill(21))
/** A process that hangs is killed after this long and the test fails. */
const HANG_MS = 30_000
/** What "promptly" means here: loose, for a shared 2-core machine (it took minutes before). */
const PROMPT_MS = 10_000
const procs: ResultPromise[] = []
let root = ''

beforeAll(async () => { root = await mkdtemp(join(tmpdir(), 'kp2p-harden-')) })
afterAll(async () => {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL')
  await Promise.allSettled(procs)
  await rm(root, { recursive: true, force: true })
})

/** The 463-byte probe: 42 aliases under `stages:`, seven at each of six levels (7^7 leaves). */
export function aliasBomb (levels = 6): string {
  const lines = ['stages:', '  l0: &a0 {a: 1, b: 1, c: 1, d: 1, e: 1, f: 1, g: 1}']
  for (let i = 1; i <= levels; i++) {
    const p = `*a${i - 1}`
    lines.push(`  l${i}: &a${i} {a: ${p}, b: ${p}, c: ${p}, d: ${p}, e: ${p}, f: ${p}, g: ${p}}`)
  }
  return lines.join('\n') + '\n'
}

function agentConfig (name: string, extra: string[] = []): string {
  return [
    'p2p:',
    `  network_token: ${TOKEN}`,
    '  preset: lab',
    '  mdns: false',
    `  state_dir: ${join(root, name)}`,
    '  vpn: {create: false}',
    '  installer: {kind: dry-run}',
    ...extra
  ].join('\n') + '\n'
}

function spawnAgent (configFile: string, nodeArgs: string[] = []): ResultPromise {
  const proc = execa(node, [...nodeArgs, bin, 'agent', '--config', configFile, '--log-format', 'json'], { reject: false, stdin: 'ignore', timeout: HANG_MS, forceKillAfterDelay: false })
  procs.push(proc)
  return proc
}

function mkfifo (path: string): void {
  execaSync('mkfifo', [path])
}

describe('hostile and broken local input', { timeout: 60_000 }, () => {
  it('config validate refuses an alias bomb at once, naming the file and the limit', async () => {
    const file = join(root, 'bomb.yaml')
    await writeFile(file, aliasBomb())
    const started = Date.now()
    const r = await execa(node, [bin, 'config', 'validate', file], { reject: false, timeout: HANG_MS })
    const ms = Date.now() - started
    expect(r.timedOut).toBe(false)
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain(file)
    expect(r.stderr).toContain('more than 100000 YAML nodes')
    expect(ms).toBeLessThan(PROMPT_MS)
  })

  it('SIGTERM while the agent loads an alias bomb: the process exits promptly', async () => {
    const fifo = join(root, 'bomb.fifo')
    mkfifo(fifo)
    const proc = spawnAgent(fifo)
    // Opening the FIFO for writing completes once the agent opened it to read: its
    // signal handlers are in and it is loading the config.
    const writer = await open(fifo, 'w')
    await writer.writeFile(aliasBomb())
    await writer.close()
    const started = Date.now()
    proc.kill('SIGTERM')
    const r = await proc
    expect(r.timedOut).toBe(false)
    expect(Date.now() - started).toBeLessThan(PROMPT_MS)
    // Refused by the node budget (2), or stopped by the signal before that (0).
    expect([0, 2]).toContain(r.exitCode)
  })

  describe('a port in use', () => {
    let server: Server
    let port = 0
    beforeAll(async () => {
      server = createServer()
      await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
      port = (server.address() as { port: number }).port
    })
    afterAll(async () => { await new Promise<void>((resolve) => { server.close(() => { resolve() }) }) })

    it('is one line naming the address, exit 1, no stack trace', async () => {
      const file = join(root, 'port.yaml')
      await writeFile(file, agentConfig('port', [`  listen: [/ip4/127.0.0.1/tcp/${port}]`]))
      const r = await spawnAgent(file)
      expect(r.timedOut).toBe(false)
      expect(r.exitCode).toBe(1)
      const last = String(r.stderr).trim().split('\n').filter((l) => !l.startsWith('{'))
      expect(last).toEqual([`kairos-p2p agent: cannot listen on /ip4/127.0.0.1/tcp/${port}: address already in use (another process holds it; stop that process or change p2p.listen)`])
      expect(r.stderr).not.toMatch(/^\s+at /m)
    })
  })

  // The facts of an init server that handed off: k3s runs with its tokens.
  const initFacts = JSON.stringify({ promised: null, promisedAt: 0, accepted: null, proposal: null, cluster: { clusterId: 'c1', init: 'p' }, role: { role: 'init', clusterId: 'c1', init: 'p' }, joined: { clusterId: 'c1', planKey: 'k' } })

  it.each([
    ['identity.key', 'not a key', [], /identity\.key is not an Ed25519/],
    ['roles.json', '{"promised": 7', [], /No cluster record is in the state yet.*restore .*roles\.json from a backup/],
    ['identity.key', 'not a key', [['roles.json', initFacts]], /This node is the init server of cluster c1 .*a new identity cannot take its place\. Restore identity\.key from a backup/],
    ['cluster-secrets.json', '{"serverToken"', [['roles.json', initFacts]], /cluster-secrets\.json is damaged .*set aside as cluster-secrets\.json\.corrupt-.*no sealed copy in the state opens.*Restore cluster-secrets\.json/]
  ])('a damaged %s that nothing can rebuild stops the agent with exit 2 and a message naming the file and the way back (%#)', async (name, content, others, message) => {
    const dir = join(root, `damaged-${name}-${others.length}`)
    await mkdir(dir, { recursive: true, mode: 0o700 })
    await writeFile(join(dir, name), content, { mode: 0o600 })
    for (const [other, text] of others) await writeFile(join(dir, other as string), text as string, { mode: 0o600 })
    const file = join(root, `damaged-${name}-${others.length}.yaml`)
    await writeFile(file, agentConfig(`damaged-${name}-${others.length}`, ['  listen: [/ip4/127.0.0.1/tcp/0]']))
    const r = await spawnAgent(file)
    expect(r.timedOut).toBe(false)
    expect(r.stderr).toContain(join(dir, name))
    expect(r.stderr).toMatch(message)
    expect(r.exitCode).toBe(2)
  })

  it('a damaged seal-key.json is set aside and replaced: the agent runs, and says so in one line', async () => {
    const name = 'damaged-seal-key'
    const dir = join(root, name)
    await mkdir(dir, { recursive: true, mode: 0o700 })
    await writeFile(join(dir, 'seal-key.json'), '{"v":1,"x25519":"short"}', { mode: 0o600 })
    const file = join(root, `${name}.yaml`)
    await writeFile(file, agentConfig(name, ['  listen: [/ip4/127.0.0.1/tcp/0]']))
    const proc = spawnAgent(file)
    await waitFor('the agent to serve its socket', async () => await stat(join(dir, 'agent.sock')).then(() => true, () => undefined), 30_000, 100)
    proc.kill('SIGTERM')
    const r = await proc
    expect(r.exitCode).toBe(0)
    const lines = String(r.stderr).split('\n').filter((l) => l.includes('seal-key.json'))
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/seal-key\.json is damaged: set aside as seal-key\.json\.corrupt-\d{8}T\d{6}Z; a new seal key is published/)
    expect(JSON.parse(await readFile(join(dir, 'seal-key.json'), 'utf8'))).toMatchObject({ v: 1 })
  })

  it('an unhandled rejection after start is logged, the agent stops, and the process exits 1', async () => {
    const file = join(root, 'fault.yaml')
    const dir = join(root, 'fault')
    await writeFile(file, agentConfig('fault', ['  listen: [/ip4/127.0.0.1/tcp/0]']))
    const proc = spawnAgent(file, ['--import', faultPreload])
    const socket = join(dir, 'agent.sock')
    await waitFor('the agent to serve its socket', async () => await stat(socket).then(() => true, () => undefined), 30_000, 100)
    proc.kill('SIGUSR2')
    const r = await proc
    expect(r.timedOut).toBe(false)
    expect(r.exitCode).toBe(1)
    const lines = String(r.stderr).split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: string, msg: string, error?: string })
    expect(lines).toContainEqual(expect.objectContaining({ level: 'error', msg: 'fatal: unhandled rejection; stopping and exiting', error: 'injected fault: a background loop failed' }))
    expect(lines.map((l) => l.msg)).toContain('stopped after a fatal error')
    // The bounded stop ran: the API socket is gone.
    await expect(stat(socket)).rejects.toMatchObject({ code: 'ENOENT' })
  })
})
