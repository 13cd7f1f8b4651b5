// `kairos-p2p cluster reset` as a real process, on a state dir written by the real
// state store under the old network id; and `resetCluster` itself.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtemp, readdir, rm, writeFile, mkdir } from 'node:fs/promises'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { encodeToken, deriveKeys, parseToken } from '../../token/index.ts'
import { createStateStore } from '../../p2p/state/store.ts'
import { STATE_FILE } from '../../p2p/state/persist.ts'
import { API_SOCKET_NAME } from '../../agent/api.ts'
import { ClusterResetError, recordsUnder, resetCluster } from '../../roles/cluster-reset.ts'
import { identity } from '../p2p/state/fixtures.ts'

const bin = join(import.meta.dirname, '..', '..', 'bin', 'kairos-p2p.js')
const token = encodeToken(new Uint8Array(32).fill(3))
const keyOf = (networkId: string): Uint8Array => deriveKeys(parseToken(token), networkId).stateKey
let root = ''

beforeAll(async () => { root = await mkdtemp(join(tmpdir(), 'kp2p-reset-')) })
afterAll(async () => { if (root !== '') await rm(root, { recursive: true, force: true }) })

/** A state dir of a node that joined cluster `c-old` of network id `old`. */
async function oldNode (name: string): Promise<string> {
  const dir = join(root, name)
  await mkdir(join(dir, 'state'), { recursive: true })
  const store = await createStateStore({ ...(await identity(1)), stateKey: keyOf('old'), dir: join(dir, 'state'), flushDelayMs: 0 })
  await store.put('roles/cluster', { clusterId: 'c-old', init: 'someone', networkId: 'old' })
  await store.put('roles/status', { role: 'agent', phase: 'joined', clusterId: 'c-old' })
  await store.close()
  await writeFile(join(dir, 'roles.json'), JSON.stringify({ v: 1, cluster: { clusterId: 'c-old', init: 'someone' }, role: { role: 'agent', clusterId: 'c-old', init: 'someone' } }))
  await writeFile(join(dir, 'cluster-secrets.json'), '{}')
  await writeFile(join(dir, 'identity.key'), 'id')
  await writeFile(join(dir, 'seal-key.json'), 'seal')
  return dir
}

async function config (name: string, dir: string, networkId: string): Promise<string> {
  const file = join(root, `${name}.yaml`)
  await writeFile(file, ['p2p:', `  network_token: ${token}`, `  network_id: ${networkId}`, `  state_dir: ${dir}`].join('\n') + '\n')
  return file
}

const run = async (...args: string[]): Promise<{ exitCode: number | undefined, stdout: string, stderr: string }> => {
  const r = await execa(process.execPath, [bin, 'cluster', 'reset', ...args], { reject: false })
  return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) }
}

describe('kairos-p2p cluster reset', () => {
  it('refuses while the configured p2p.network_id is still the old cluster\'s, and moves nothing', async () => {
    const dir = await oldNode('same-id')
    const r = await run('--config', await config('same-id', dir, 'old'), '--yes-start-a-new-cluster')
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toMatch(/the cluster this node accepted \(c-old\) is in the state of p2p\.network_id "old".*a new cluster needs a new p2p\.network_id/)
    expect((await readdir(dir)).sort()).toEqual(['cluster-secrets.json', 'identity.key', 'roles.json', 'seal-key.json', 'state'])
  })

  it('without the confirmation lists what it would move; with it moves the old cluster\'s files aside and keeps the box\'s keys', async () => {
    const dir = await oldNode('new-id')
    const file = await config('new-id', dir, 'new')
    const dry = await run('--config', file)
    expect(dry.exitCode).toBe(0)
    expect(dry.stdout).toContain('would move aside')
    expect(dry.stdout).toContain('--yes-start-a-new-cluster')
    expect((await readdir(dir)).sort()).toEqual(['cluster-secrets.json', 'identity.key', 'roles.json', 'seal-key.json', 'state'])
    const done = await run('--config', file, '--yes-start-a-new-cluster', '--json')
    expect(done.exitCode).toBe(0)
    const answer = JSON.parse(done.stdout) as { done: boolean, networkId: string, files: Array<{ file: string, movedTo: string }> }
    expect(answer.done).toBe(true)
    expect(answer.networkId).toBe('new')
    expect(answer.files.map((f) => f.file)).toEqual(['roles.json', 'cluster-secrets.json', join('state', STATE_FILE)])
    for (const f of answer.files) expect(f.movedTo).toMatch(/\.reset-\d{8}T\d{6}Z$/)
    const left = (await readdir(dir)).sort()
    expect(left).toContain('identity.key')
    expect(left).toContain('seal-key.json')
    expect(left).not.toContain('roles.json')
    expect(left.filter((f) => f.startsWith('roles.json.reset-'))).toHaveLength(1)
    expect((await readdir(join(dir, 'state'))).filter((f) => f === STATE_FILE)).toEqual([])
    // Nothing of the old cluster is left: a second run has nothing to do.
    const again = await run('--config', file, '--yes-start-a-new-cluster')
    expect(again.exitCode).toBe(0)
    expect(again.stdout).toContain('nothing of an earlier cluster')
  })

  it('refuses while the agent answers on its socket', async () => {
    const dir = await oldNode('running')
    const server = createServer((_req, res) => { res.end('{}') })
    await new Promise<void>((resolve) => { server.listen(join(dir, API_SOCKET_NAME), resolve) })
    try {
      const r = await run('--config', await config('running', dir, 'new'), '--yes-start-a-new-cluster')
      expect(r.exitCode).toBe(2)
      expect(r.stderr).toContain('is running; stop it first')
      expect((await readdir(dir))).toContain('roles.json')
    } finally {
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    }
  })

  it('refuses an unknown option with a usage error', async () => {
    const r = await run('--yes')
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain('--yes')
  })
})

describe('resetCluster', () => {
  it('reads the cluster records of the configured network only', async () => {
    const dir = await oldNode('records')
    const bytes = new Uint8Array(await (await import('node:fs/promises')).readFile(join(dir, 'state', STATE_FILE)))
    expect([...recordsUnder(bytes, keyOf('old'))]).toEqual(['c-old'])
    expect([...recordsUnder(bytes, keyOf('new'))]).toEqual([])
    await expect(resetCluster({ stateDir: dir, networkId: 'old', stateKey: keyOf('old'), now: 0, confirm: true })).rejects.toBeInstanceOf(ClusterResetError)
    const r = await resetCluster({ stateDir: dir, networkId: 'new', stateKey: keyOf('new'), now: Date.UTC(2026, 11, 5, 1, 2, 3), confirm: true })
    expect(r.files.map((f) => f.movedTo)).toEqual(['roles.json.reset-20261205T010203Z', 'cluster-secrets.json.reset-20261205T010203Z', `${STATE_FILE}.reset-20261205T010203Z`])
  })
})
