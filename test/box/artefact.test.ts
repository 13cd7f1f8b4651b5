// The tarball as a box receives it: its layout, and the Kairos bundle's run.sh
// installing it into a prefix where it runs on its own.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { copyFile, lstat, mkdir, mkdtemp, readFile, readlink, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { REPO_ROOT } from '../../build/bundle.ts'
import { ARTEFACT_BUILD_TIMEOUT_MS, ensureArtefact, type TestArtefact } from '../helpers/artefact.ts'

let artefact: TestArtefact
let scratch: string
beforeAll(async () => {
  artefact = await ensureArtefact()
  scratch = await mkdtemp(join(tmpdir(), 'artefact-'))
}, ARTEFACT_BUILD_TIMEOUT_MS)
afterAll(async () => { await rm(scratch, { recursive: true, force: true }) })

describe('the artefact', () => {
  it('holds the launcher, both names, the executable, the unit and INSTALL, owned by root', async () => {
    const name = artefact.dir.split('/').at(-1) ?? ''
    const { stdout } = await execa('tar', ['-tvzf', `${artefact.dir}.tar.gz`])
    const entries = stdout.split('\n').map((l) => l.split(/\s+/))
    const paths = entries.map((e) => e.slice(5).join(' '))
    for (const p of ['bin/kairos-p2p', 'bin/agent-provider-kairos-p2p -> kairos-p2p', 'libexec/kairos-p2p/kairos-p2p',
      'system/providers/agent-provider-kairos-p2p -> ../../bin/kairos-p2p', 'lib/systemd/system/kairos-p2p.service', 'share/doc/kairos-p2p/INSTALL']) {
      expect(paths).toContain(`${name}/${p}`)
    }
    for (const e of entries) expect(e[1]).toBe('0/0')
    const install = await readFile(join(artefact.dir, 'share/doc/kairos-p2p/INSTALL'), 'utf8')
    expect(install).toMatch(/glibc 2\.\d+ or later/)
    expect(install).not.toMatch(/@[A-Z_]+@/)
  })

  it('installs with the Kairos bundle\'s run.sh and runs from its new place', async () => {
    const bundle = join(scratch, 'bundle')
    const prefix = join(scratch, 'usr-local')
    await mkdir(bundle)
    await copyFile(join(REPO_ROOT, 'examples/bundle/run.sh'), join(bundle, 'run.sh'))
    await copyFile(`${artefact.dir}.tar.gz`, join(bundle, 'kairos-p2p.tar.gz'))
    const r = await execa('sh', [join(bundle, 'run.sh')], { env: { KAIROS_P2P_PREFIX: prefix }, cwd: '/' })
    expect(r.stdout).toBe('kairos-p2p 0.1.0')
    expect(await readlink(join(prefix, 'system/providers/agent-provider-kairos-p2p'))).toBe('../../bin/kairos-p2p')
    expect((await lstat(join(prefix, 'libexec/kairos-p2p/kairos-p2p'))).mode & 0o755).toBe(0o755)
    const answer = await execa(join(prefix, 'system/providers/agent-provider-kairos-p2p'), ['agent.boot'], { input: '{"name":"agent.boot","data":"","file":""}' })
    expect(JSON.parse(answer.stdout)).toEqual({ state: '', data: '', error: '', log: '' })
  })

  it('the executable takes its own code cache: the blob was made under the Node options it runs with', async () => {
    // V8 refuses a cache made under options that change its tag, and Node then warns.
    const r = await execa(artefact.launcher, ['--version'], { env: { NODE_OPTIONS: '' } })
    expect(r.stdout).toBe('kairos-p2p 0.1.0')
    expect(r.stderr).not.toMatch(/code cache/i)
    expect(r.stderr).toBe('')
  })

  it('the bundle says what is missing when it was built without the tarball', async () => {
    const bundle = join(scratch, 'empty-bundle')
    await mkdir(bundle)
    await copyFile(join(REPO_ROOT, 'examples/bundle/run.sh'), join(bundle, 'run.sh'))
    const r = await execa('sh', [join(bundle, 'run.sh')], { env: { KAIROS_P2P_PREFIX: join(scratch, 'nowhere') }, reject: false })
    expect(r.exitCode).toBe(1)
    expect(r.stderr).toMatch(/kairos-p2p\.tar\.gz is missing/)
  })
})
