// `kairos-p2p agent` and `kairos-p2p status` as real processes on loopback: two
// agents with one token see each other, a third with another token sees neither,
// and SIGTERM stops each cleanly.
import { afterAll, describe, expect, it } from 'vitest'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa, type ResultPromise } from 'execa'
import { encodeToken } from '../../token/index.ts'
import { waitFor } from '../helpers/wait.ts'
import type { AgentStatus } from '../../agent/status.ts'

const bin = join(import.meta.dirname, '..', '..', 'bin', 'kairos-p2p.js')
const node = process.execPath
const procs: ResultPromise[] = []
let root = ''

afterAll(async () => {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL')
  await Promise.allSettled(procs)
  if (root !== '') await rm(root, { recursive: true, force: true })
})

async function status (stateDir: string): Promise<AgentStatus | undefined> {
  const r = await execa(node, [bin, 'status', '--json', '--state-dir', stateDir], { reject: false })
  return r.exitCode === 0 ? JSON.parse(r.stdout) as AgentStatus : undefined
}


/** Agent processes boot in seconds on a loaded machine: wait up to 30 s. */
const BOOT_MS = 30_000

async function startAgent (name: string, token: string, bootstrap: string[]): Promise<{ dir: string, proc: ResultPromise }> {
  const dir = join(root, name)
  const file = join(root, `${name}.yaml`)
  await writeFile(file, [
    'p2p:',
    `  network_token: ${token}`,
    '  preset: lab',
    '  mdns: false',
    '  listen: [/ip4/127.0.0.1/tcp/0]',
    `  state_dir: ${dir}`,
    `  bootstrap_peers: ${JSON.stringify(bootstrap)}`,
    '  vpn: {create: false}',
    '  installer: {kind: dry-run}'
  ].join('\n') + '\n')
  const proc = execa(node, [bin, 'agent', '--config', file, '--log-level', 'warn'], { reject: false, stdin: 'ignore' })
  procs.push(proc)
  return { dir, proc }
}

describe('agent and status commands', () => {
  it('two agents with one token see each other; one with another token sees neither', async () => {
    root = await mkdtemp(join(tmpdir(), 'kp2p-cli-agent-'))
    const tokenA = encodeToken(new Uint8Array(32).fill(11))
    const tokenB = encodeToken(new Uint8Array(32).fill(12))
    const a = await startAgent('a', tokenA, [])
    const sa = await waitFor('agent a to answer', async () => await status(a.dir), BOOT_MS, 100)
    const addr = sa.addresses.find((x) => x.startsWith('/ip4/127.0.0.1/tcp/'))
    expect(addr).toBeDefined()
    const boot = [`${String(addr)}${String(addr).includes('/p2p/') ? '' : `/p2p/${sa.peerId}`}`]
    const b = await startAgent('b', tokenA, boot)
    const c = await startAgent('c', tokenB, boot)

    const [fa, fb] = await waitFor('a and b to see each other', async () => {
      const [x, y] = [await status(a.dir), await status(b.dir)]
      if (x === undefined || y === undefined) return undefined
      return x.peers.some((p) => p.id === y.peerId && p.liveness === 'alive') && y.peers.some((p) => p.id === x.peerId && p.liveness === 'alive') ? [x, y] : undefined
    }, BOOT_MS, 100)
    const sc = await waitFor('agent c to answer', async () => await status(c.dir), BOOT_MS, 100)
    expect(fa.peers.map((p) => p.id)).not.toContain(sc.peerId)
    expect(fb.peers.map((p) => p.id)).not.toContain(sc.peerId)
    expect(sc.peers).toEqual([])
    // Mesh health: a and b hold their one connection; c, alone with another token, none.
    expect(fa.mesh?.connections).toBe(1)
    expect(sc.mesh).toMatchObject({ connections: 0, refutations: 0 })
    expect(fa.fingerprint).toBe(fb.fingerprint)
    expect(sc.fingerprint).not.toBe(fa.fingerprint)

    // The human view works too.
    const human = await execa(node, [bin, 'status', '--state-dir', a.dir])
    expect(human.stdout).toContain(fb.peerId.slice(0, 8))

    for (const p of [a.proc, b.proc, c.proc]) p.kill('SIGTERM')
    const results = await Promise.all([a.proc, b.proc, c.proc])
    for (const r of results) expect(r.exitCode).toBe(0)
  }, 90_000)

  it('status without a running agent exits 1 naming the socket', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kp2p-cli-nostatus-'))
    const r = await execa(node, [bin, 'status', '--state-dir', dir], { reject: false })
    await rm(dir, { recursive: true, force: true })
    expect(r.exitCode).toBe(1)
    expect(r.stderr).toContain(join(dir, 'agent.sock'))
  })

  it('agent with a bad token exits 2 naming p2p.network_token', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kp2p-cli-badtoken-'))
    const file = join(dir, 'bad.yaml')
    const good = encodeToken(new Uint8Array(32).fill(9))
    await writeFile(file, `p2p:\n  network_token: ${good.slice(0, -1)}${good.endsWith('q') ? 'p' : 'q'}\n  state_dir: ${dir}/state\n`)
    const r = await execa(node, [bin, 'agent', '--config', file], { reject: false })
    await rm(dir, { recursive: true, force: true })
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain('p2p.network_token')
    expect(r.stderr).toContain('checksum mismatch')
  })
})
