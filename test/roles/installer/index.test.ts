import { readFile, stat, writeFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { INSTALL_RECORD_FILE, createInstaller } from '../../../roles/installer/index.ts'
import { ManualClock } from '../../../util/clock.ts'
import { plan, scratch, SERVER_TOKEN, type Scratch } from './fixtures.ts'

describe('installer record and idempotency', () => {
  let s: Scratch
  beforeEach(async () => { s = await scratch() })
  afterEach(async () => { await s.remove() })

  const dryRun = (printed: string[], clock = new ManualClock(1_700_000_000_000)) =>
    createInstaller({ kind: 'dry-run' }, { stateDir: s.stateDir, clock, write: (t) => { printed.push(t) } })

  it('records digest, kind, role and time (0600, no secrets) and reads it back after a restart', async () => {
    const p = plan('server')
    await dryRun([]).install(p)
    const path = join(s.stateDir, INSTALL_RECORD_FILE)
    expect((await stat(path)).mode & 0o777).toBe(0o600)
    expect(await readFile(path, 'utf8')).not.toContain(SERVER_TOKEN)
    expect(await dryRun([]).lastRecord()).toEqual({ v: 1, kind: 'dry-run', digest: p.digest, role: 'server', service: 'k3s', at: 1_700_000_000_000, detail: 'printed the k3s plan' })
  })

  it('runs again only when the plan digest changes', async () => {
    const printed: string[] = []
    const installer = dryRun(printed)
    const a = plan('agent')
    const b = plan('agent', { nodeIp: '10.88.0.10' })
    expect((await installer.install(a)).changed).toBe(true)
    expect((await installer.install(a)).changed).toBe(false)
    expect((await installer.install(b)).changed).toBe(true)
    expect((await installer.install(b)).changed).toBe(false)
    expect((await dryRun(printed).install(b)).changed).toBe(false)
    expect(printed).toHaveLength(2)
  })

  it('hands off again when the installer kind changed', async () => {
    const p = plan('init')
    await dryRun([]).install(p)
    const program = await s.program('ok', 'exit 0')
    expect((await createInstaller({ kind: 'exec', command: [program] }, { stateDir: s.stateDir, env: s.env }).install(p)).changed).toBe(true)
  })

  it('serialises concurrent calls: the same plan is handed off once', async () => {
    const printed: string[] = []
    const installer = dryRun(printed)
    const p = plan('init')
    const results = await Promise.all([installer.install(p), installer.install(p), installer.install(p)])
    expect(results.map((r) => r.changed)).toEqual([true, false, false])
    expect(printed).toHaveLength(1)
  })

  it('treats a damaged record as no record', async () => {
    await mkdir(s.stateDir, { recursive: true })
    await writeFile(join(s.stateDir, INSTALL_RECORD_FILE), '{"v":1,"digest":')
    const installer = dryRun([])
    expect(await installer.lastRecord()).toBeUndefined()
    expect((await installer.install(plan('init'))).changed).toBe(true)
    expect(await installer.lastRecord()).toMatchObject({ kind: 'dry-run' })
  })

  it('rejects at once with an aborted signal and records nothing', async () => {
    const installer = dryRun([])
    const controller = new AbortController()
    controller.abort(new Error('shutting down'))
    await expect(installer.install(plan('init'), controller.signal)).rejects.toThrow('shutting down')
    expect(await installer.lastRecord()).toBeUndefined()
  })
})
