import { access, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createInstaller } from '../../../roles/installer/index.ts'
import { waitFor } from '../../helpers/wait.ts'
import { AGENT_TOKEN, SERVER_TOKEN, plan, scratch, type Scratch } from './fixtures.ts'

async function waitForFile (path: string, timeoutMs = 10_000): Promise<void> {
  await waitFor(`${path} to appear`, async () => await access(path).then(() => true, () => undefined), timeoutMs, 10)
}

function parseEnv (text: string): Record<string, string> {
  // `env -0` output: NUL-separated NAME=value pairs (values may span lines).
  return Object.fromEntries(text.split('\0').filter((l) => l !== '').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]))
}

describe('exec installer', () => {
  let s: Scratch
  beforeEach(async () => { s = await scratch() })
  afterEach(async () => { await s.remove() })

  it('runs the command with the plan in its environment and the token only there', async () => {
    const out = join(s.dir, 'seen')
    const program = await s.program('record-env', `env -0 > '${out}.env'; printf '%s\\n' "$@" > '${out}.argv'; echo "installed $KAIROS_ROLE"`)
    const p = plan('agent', { k3sAgent: { enabled: true, args: [], env: { NO_PROXY: '10.0.0.0/8' } } })
    const installer = createInstaller({ kind: 'exec', command: [program, '--mode', 'join'] }, { stateDir: s.stateDir, env: { ...s.env, SITE: 'plant-1' } })
    const result = await installer.install(p)
    expect(result).toEqual({ changed: true, detail: `ran ${program} --mode join: installed agent` })
    const env = parseEnv(await readFile(`${out}.env`, 'utf8'))
    expect(env).toMatchObject({
      SITE: 'plant-1',
      NO_PROXY: '10.0.0.0/8',
      KAIROS_ROLE: 'agent',
      KAIROS_SERVICE: 'k3s-agent',
      KAIROS_SERVER_URL: 'https://10.88.0.1:6443',
      KAIROS_TOKEN: AGENT_TOKEN,
      KAIROS_NODE_IP: '10.88.0.9',
      KAIROS_IFACE: 'kairos0',
      KAIROS_K3S_CONFIG: p.configYaml
    })
    expect(env).not.toHaveProperty('KAIROS_AGENT_TOKEN')
    expect(Object.values(env).join('\n')).not.toContain(SERVER_TOKEN)
    expect(await readFile(`${out}.argv`, 'utf8')).toBe('--mode\njoin\n')
    expect(await installer.install(p)).toMatchObject({ changed: false })
  })

  it('wraps a non-zero exit with the exit code and the tail of stderr', async () => {
    const program = await s.program('fail', 'i=0; while [ $i -lt 30 ]; do echo "line $i" >&2; i=$((i+1)); done; exit 3')
    const installer = createInstaller({ kind: 'exec', command: [program] }, { stateDir: s.stateDir, env: s.env })
    let caught: unknown
    try { await installer.install(plan('init')) } catch (err) { caught = err }
    expect(caught).toMatchObject({ name: 'InstallerError', command: [program], commandExitCode: 3 })
    const error = caught as { message: string, stderrTail: string }
    expect(error.message).toContain(`${program} exited with code 3`)
    expect(error.stderrTail.split('\n')).toHaveLength(20)
    expect(error.stderrTail).toMatch(/^line 10\n[\s\S]*line 29$/)
    expect(await installer.lastRecord()).toBeUndefined()
  })

  it('reports a command that does not exist', async () => {
    const installer = createInstaller({ kind: 'exec', command: [join(s.bin, 'missing')] }, { stateDir: s.stateDir, env: s.env })
    await expect(installer.install(plan('init'))).rejects.toMatchObject({ name: 'InstallerError', message: expect.stringContaining('could not start') })
  })

  it('refuses a command line that carries a token', async () => {
    const program = await s.program('never', `touch '${join(s.dir, 'ran')}'`)
    const installer = createInstaller({ kind: 'exec', command: [program, `--token=${SERVER_TOKEN}`] }, { stateDir: s.stateDir, env: s.env })
    let caught: unknown
    try { await installer.install(plan('init')) } catch (err) { caught = err }
    expect(caught).toMatchObject({ name: 'InstallerError', message: expect.stringContaining('$KAIROS_TOKEN') })
    expect(JSON.stringify(caught)).not.toContain(SERVER_TOKEN)
    expect((caught as Error).message).not.toContain(SERVER_TOKEN)
    await expect(access(join(s.dir, 'ran'))).rejects.toThrow()
  })

  it('kills the command and rejects promptly when aborted', async () => {
    const started = join(s.dir, 'started')
    const program = await s.program('slow', `touch '${started}'; exec sleep 60`)
    const installer = createInstaller({ kind: 'exec', command: [program] }, { stateDir: s.stateDir, env: s.env })
    const controller = new AbortController()
    const running = installer.install(plan('init'), controller.signal)
    await waitForFile(started)
    controller.abort(new Error('stopping'))
    await expect(running).rejects.toThrow('stopping')
    expect(await installer.lastRecord()).toBeUndefined()
  })

  it('kills a command that outlives its timeout', async () => {
    const program = await s.program('hang', 'exec sleep 60')
    const installer = createInstaller({ kind: 'exec', command: [program] }, { stateDir: s.stateDir, env: s.env, execTimeoutMs: 200 })
    await expect(installer.install(plan('init'))).rejects.toMatchObject({ name: 'InstallerError', message: expect.stringContaining('timed out after 200 ms') })
  })
})
