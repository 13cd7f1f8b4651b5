import { mkdtemp, readdir, rm, writeFile, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { chooseToken, fingerprintOf, loadTokenState, saveTokenState, TOKEN_FILE } from '../../agent/token-state.ts'
import { generateToken, parseToken } from '../../token/index.ts'
import { command as tokenCommand, parseGrace } from '../../cli/token.ts'
import type { CliIO } from '../../cli/io.ts'

const [t0, t1, t2] = [generateToken(), generateToken(), generateToken()]
const now = 1_000_000

describe('the token a node runs with', () => {
  const dirs: string[] = []
  afterEach(async () => { await Promise.all(dirs.splice(0).map(async (d) => { await rm(d, { recursive: true, force: true }) })) })

  it('prefers token.json\'s newer token over the cloud-config\'s older one, with the older honoured during the grace', () => {
    const persisted = { generation: 1, token: t1, previous: { token: t0, until: now + 10 }, history: [fingerprintOf(parseToken(t0))] }
    const chosen = chooseToken(parseToken(t0), persisted, now)
    expect(chosen).toMatchObject({ generation: 1, source: 'state' })
    expect(chosen.token.text).toBe(t1)
    expect(chosen.previous?.token.text).toBe(t0)
    // After the grace: the new token alone.
    expect(chooseToken(parseToken(t0), persisted, now + 10).previous).toBeUndefined()
    // A cloud-config already carrying the new token.
    expect(chooseToken(parseToken(t1), persisted, now).token.text).toBe(t1)
  })

  it('takes a cloud-config token the node never held (a box set up again), as generation 0', () => {
    const persisted = { generation: 1, token: t1, history: [fingerprintOf(parseToken(t0))] }
    expect(chooseToken(parseToken(t2), persisted, now)).toMatchObject({ generation: 0, source: 'config' })
    expect(chooseToken(parseToken(t2), persisted, now).token.text).toBe(t2)
    expect(chooseToken(parseToken(t2), undefined, now)).toMatchObject({ generation: 0, source: 'config' })
  })

  it('keeps token.json with mode 0600, and sets a damaged one aside, naming the problem', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kp2p-token-'))
    dirs.push(dir)
    saveTokenState(dir, { generation: 2, token: t2, history: [] })
    expect((await stat(join(dir, TOKEN_FILE))).mode & 0o777).toBe(0o600)
    expect(loadTokenState(dir, now, () => { throw new Error('not damaged') })).toEqual({ generation: 2, token: t2, history: [] })
    await writeFile(join(dir, TOKEN_FILE), '{"v":1,"generation":-1}')
    const damaged: string[] = []
    expect(loadTokenState(dir, now, (aside, problem) => { damaged.push(aside, problem) })).toBeUndefined()
    expect(damaged[1]).toMatch(/generation must be a non-negative integer/)
    expect(await readdir(dir)).toEqual([damaged[0]])
  })

  it('reads --grace as a number and a unit, and refuses anything else by name', () => {
    expect(parseGrace('30s')).toBe(30_000)
    expect(parseGrace('10m')).toBe(600_000)
    expect(parseGrace('7d')).toBe(7 * 86_400_000)
    for (const bad of ['5s', '7', '1w', '-1d', '366d', '']) expect(() => parseGrace(bad)).toThrow(/--grace got '.*', expected a duration from 10s to 365d/)
    try { parseGrace('7') } catch (err) { expect((err as Error).name).toBe('UsageError') }
  })

  it('token inspect --state-dir shows the generation and the grace of the token the node holds, and no secret', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kp2p-token-'))
    dirs.push(dir)
    saveTokenState(dir, { generation: 3, token: t1, previous: { token: t0, until: Date.now() + 3_600_000 }, history: [] })
    const out: string[] = []
    const io: CliIO = { stdout: (t) => { out.push(t) }, stderr: () => {}, readStdin: async () => '', env: {}, signal: new AbortController().signal }
    expect(await tokenCommand.run(['inspect', '--state-dir', dir, '--json'], io)).toBe(0)
    const report = JSON.parse(out.join('')) as Record<string, unknown>
    expect(report).toMatchObject({ generation: 3, source: 'state', fingerprint: fingerprintOf(parseToken(t1)), previous: { fingerprint: fingerprintOf(parseToken(t0)) } })
    expect(out.join('')).not.toContain(t1)
    out.length = 0
    expect(await tokenCommand.run(['inspect', '--state-dir', dir, '--show-secrets'], io)).toBe(0)
    expect(out.join('')).toContain(`token:        ${t1}\n`)
    out.length = 0
    expect(await tokenCommand.run(['inspect', '--state-dir', dir], io)).toBe(0)
    expect(out.join('')).toMatch(/generation: +3 \(from .*token\.json, given by a rotation\)\ngrace: .* is honoured until/)
    const empty = await mkdtemp(join(tmpdir(), 'kp2p-token-'))
    dirs.push(empty)
    await expect(tokenCommand.run(['inspect', '--state-dir', empty], io)).rejects.toMatchObject({ name: 'UsageError', message: expect.stringMatching(/no token: .*token\.json does not exist/) })
  })
})
