import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createInstaller, envFilePath, K3S_CONFIG_PATH, renderEnvFile } from '../../../roles/installer/index.ts'
import { kairosOverridePath, kairosStage } from '../../../roles/installer/k3s.ts'
import { KAIROS_PERSISTENT_PATHS } from '../../../box/paths.ts'
import { silentLogger } from '../../../util/log.ts'
import { AGENT_TOKEN, SERVER_TOKEN, fakeSystemctl, plan, scratch, type Scratch } from './fixtures.ts'

describe('k3s installer', () => {
  let s: Scratch
  let systemctl: Awaited<ReturnType<typeof fakeSystemctl>>
  beforeEach(async () => { s = await scratch(); systemctl = await fakeSystemctl(s) })
  afterEach(async () => { await s.remove() })

  const installer = (env: NodeJS.ProcessEnv = s.env) => createInstaller({ kind: 'k3s', root: s.root }, { stateDir: s.stateDir, env })

  it('writes config.yaml and the service env file 0600, then enables and starts k3s', async () => {
    const p = plan('init', { k3s: { enabled: true, args: ['--disable=traefik'], env: { HTTP_PROXY: 'http://proxy:3128', QUOTED: 'say "hi" \\o/' } } })
    const result = await installer().install(p)
    expect(result.changed).toBe(true)
    expect(result.detail).toContain('enabled and started k3s')
    const configPath = join(s.root, K3S_CONFIG_PATH)
    expect(await readFile(configPath, 'utf8')).toBe(p.configYaml)
    expect((await stat(configPath)).mode & 0o777).toBe(0o600)
    const envPath = envFilePath(s.root, 'k3s')
    expect(envPath).toBe(join(s.root, 'etc/systemd/system/k3s.service.env'))
    expect((await stat(envPath)).mode & 0o777).toBe(0o600)
    const envText = await readFile(envPath, 'utf8')
    expect(envText.split('\n').slice(1)).toEqual(['HTTP_PROXY="http://proxy:3128"', 'QUOTED="say \\"hi\\" \\\\o/"', ''])
    expect(envText).not.toContain(SERVER_TOKEN)
    expect(await systemctl.calls()).toEqual(['daemon-reload', 'enable --now --no-block k3s'])
  })

  it('starts k3s-agent for an agent and writes only the agent token', async () => {
    await installer().install(plan('agent'))
    expect(await systemctl.calls()).toEqual(['daemon-reload', 'enable --now --no-block k3s-agent'])
    const config = await readFile(join(s.root, K3S_CONFIG_PATH), 'utf8')
    expect(config).toContain(`token: ${AGENT_TOKEN}`)
    expect(config).not.toContain(SERVER_TOKEN)
    expect(await readFile(envFilePath(s.root, 'k3s-agent'), 'utf8')).toBe(renderEnvFile({}))
  })

  it('writes a joiner\'s secure token as given, so k3s checks the pinned CA before it sends the secret', async () => {
    const caHash = 'c'.repeat(64)
    await installer().install(plan('agent', { caHash }))
    const config = await readFile(join(s.root, K3S_CONFIG_PATH), 'utf8')
    expect(config).toContain(`token: K10${caHash}::node:${AGENT_TOKEN}\n`)
    await installer().install(plan('server', { caHash }))
    expect(await readFile(join(s.root, K3S_CONFIG_PATH), 'utf8')).toContain(`token: K10${caHash}::server:${SERVER_TOKEN}\n`)
  })

  it('does nothing the second time, also after a restart', async () => {
    const p = plan('server')
    expect((await installer().install(p)).changed).toBe(true)
    const again = await installer().install(p)
    expect(again).toMatchObject({ changed: false })
    expect(again.detail).toContain('already handed off')
    expect(await systemctl.calls()).toHaveLength(2)
  })

  it('restarts the service when the plan changed', async () => {
    const i = installer()
    await i.install(plan('server'))
    const changed = await i.install(plan('server', { k3s: { enabled: true, args: ['--node-label=zone=b'], env: {} } }))
    expect(changed.changed).toBe(true)
    expect(await systemctl.calls()).toEqual([
      'daemon-reload', 'enable --now --no-block k3s',
      'enable k3s', 'restart --no-block k3s'
    ])
    expect(await readFile(join(s.root, K3S_CONFIG_PATH), 'utf8')).toContain('zone=b')
  })

  it('disables the previous role\'s service when the role changes', async () => {
    const i = installer()
    await i.install(plan('agent'))
    await i.install(plan('server'))
    expect((await systemctl.calls()).slice(2)).toEqual(['disable --now --no-block k3s-agent', 'daemon-reload', 'enable --now --no-block k3s'])
    expect(await i.lastRecord()).toMatchObject({ kind: 'k3s', role: 'server', service: 'k3s' })
  })

  it('hands off again when config.yaml was removed behind its back', async () => {
    const p = plan('init')
    await installer().install(p)
    await rm(join(s.root, K3S_CONFIG_PATH))
    expect((await installer().install(p)).changed).toBe(true)
    expect(await readFile(join(s.root, K3S_CONFIG_PATH), 'utf8')).toBe(p.configYaml)
    expect((await systemctl.calls()).slice(2)).toEqual(['enable k3s', 'restart --no-block k3s'])
  })

  it('wraps a systemctl failure with the command and its stderr, records nothing, and retries next time', async () => {
    const failing = installer({ ...s.env, FAKE_SYSTEMCTL_FAIL: 'enable' })
    const p = plan('init')
    let caught: unknown
    try { await failing.install(p) } catch (err) { caught = err }
    expect(caught).toMatchObject({
      name: 'InstallerError',
      command: ['systemctl', 'enable', '--now', '--no-block', 'k3s'],
      commandExitCode: 1,
      stderrTail: expect.stringContaining('Unit file k3s.service does not exist')
    })
    expect((caught as Error).message).toMatch(/^systemctl enable --now --no-block k3s exited with code 1: Failed to enable unit/)
    expect((caught as Error).message).not.toContain(SERVER_TOKEN)
    expect(await failing.lastRecord()).toBeUndefined()
    const ok = await installer().install(p)
    expect(ok.changed).toBe(true)
    expect((await systemctl.calls()).slice(-1)).toEqual(['enable --now --no-block k3s'])
  })

  it('reports a missing systemctl as an InstallerError', async () => {
    await rm(join(s.bin, 'systemctl'))
    await expect(installer({ PATH: s.bin }).install(plan('init'))).rejects.toMatchObject({
      name: 'InstallerError', command: ['systemctl', 'daemon-reload'], message: expect.stringContaining('could not start')
    })
  })

  it('runs the Kairos stages users hook into around the hand-off, named as provider-kairos names them', async () => {
    const log = join(s.dir, 'kairos-agent.log')
    await s.program('kairos-agent', `echo "$*" >> ${log}`)
    const done = await installer().install(plan('agent'))
    expect(await readFile(log, 'utf8')).toBe('run-stage provider-kairos.bootstrap.before.worker\nrun-stage provider-kairos.bootstrap.after.worker\n')
    expect(done.detail).toMatch(/^ran stage provider-kairos\.bootstrap\.before\.worker, .*enabled and started k3s-agent, ran stage provider-kairos\.bootstrap\.after\.worker$/)
    expect(kairosStage('before', 'init')).toBe('provider-kairos.bootstrap.before.master')
    expect(kairosStage('after', 'server')).toBe('provider-kairos.bootstrap.after.master/ha')
  })

  it('hands off although a stage fails, as provider-kairos does, and says so', async () => {
    await s.program('kairos-agent', 'echo "stage exploded" >&2; exit 3')
    const warnings: string[] = []
    const logger = { ...silentLogger, warn: (msg: string) => { warnings.push(msg) } }
    const done = await createInstaller({ kind: 'k3s', root: s.root }, { stateDir: s.stateDir, env: s.env, logger }).install(plan('init'))
    expect(done.detail).toContain('stage provider-kairos.bootstrap.before.master failed')
    expect(done.detail).toContain('enabled and started k3s')
    expect(warnings).toContain('Kairos stage failed; handing off anyway')
  })

  it('warns about a unit drop-in that replaces the k3s command line', async () => {
    const override = kairosOverridePath(s.root, 'k3s')
    await mkdir(join(override, '..'), { recursive: true })
    await writeFile(override, '[Service]\nExecStart=\nExecStart=/usr/bin/k3s server --flannel-iface=edgevpn0\n')
    const warnings: Array<Record<string, unknown> | undefined> = []
    const logger = { ...silentLogger, warn: (_msg: string, fields?: Record<string, unknown>) => { warnings.push(fields) } }
    await createInstaller({ kind: 'k3s', root: s.root }, { stateDir: s.stateDir, env: s.env, logger }).install(plan('init'))
    expect(warnings).toContainEqual({ path: override })
  })

  it('writes only to paths Kairos keeps across reboots', () => {
    for (const path of ['/' + K3S_CONFIG_PATH, envFilePath('/', 'k3s'), envFilePath('/', 'k3s-agent')]) {
      expect(KAIROS_PERSISTENT_PATHS.some((p) => path.startsWith(`${p}/`)), path).toBe(true)
    }
  })
})
