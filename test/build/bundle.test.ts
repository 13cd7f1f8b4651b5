import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { seededRandom } from '../../util/random.ts'
import { edgevpnToken } from '../token/edgevpn.ts'
import { LAB_STANDIN_BUNDLE, buildBundle, ensureBundle, REPO_ROOT, xsalsa20JavaScriptPlugin } from '../../build/bundle.ts'

// Scratch checkouts live under node_modules so that their imports resolve to the real packages.
const scratchParent = join(REPO_ROOT, 'node_modules', '.cache', 'kairos-p2p', 'test')
let scratch: string

beforeAll(async () => {
  await mkdir(scratchParent, { recursive: true })
  scratch = await mkdtemp(join(scratchParent, 'bundle-'))
})
afterAll(async () => { await rm(scratch, { recursive: true, force: true }) })

describe('xsalsa20 in the bundle', () => {
  it('is the JavaScript implementation, though the runtime has WebAssembly', async () => {
    const entry = join(scratch, 'xsalsa20-entry.ts')
    await writeFile(entry, `import xsalsa20 from 'xsalsa20'
const c = xsalsa20(new Uint8Array(24), new Uint8Array(32))
process.stdout.write(typeof WebAssembly + ' ' + c._xor.constructor.name)
`)
    const { code } = await buildBundle(entry)
    const out = join(scratch, 'xsalsa20.js')
    await writeFile(out, code)
    const { stdout } = await execa(process.execPath, [out])
    expect(stdout).toBe('object Fallback')
  })

  it('fails the build when the package no longer makes the choice it patches', () => {
    const plugin = xsalsa20JavaScriptPlugin()
    const transform = plugin.transform as (code: string, id: string) => unknown
    expect(transform('module.exports = 1', '/x/other/index.js')).toBeNull()
    expect(() => transform('var xsalsa20 = loadWasm()', '/x/node_modules/xsalsa20/index.js')).toThrow(/expected the WebAssembly choice.*pnet-cipher/)
  })
})

describe('ensureBundle', () => {
  it('builds once, reuses the bundle while its inputs stand still, rebuilds when one changes', async () => {
    const root = join(scratch, 'checkout')
    await mkdir(join(root, 'cli'), { recursive: true })
    const dep = join(root, 'cli', 'dep.ts')
    await writeFile(join(root, 'cli', 'main.ts'), "import { word } from './dep.ts'\nprocess.stdout.write(word)\n")
    await writeFile(dep, "export const word: string = 'one'\n")

    const file = await ensureBundle(root, 'out/cli.js')
    expect(file).toBe(join(root, 'out', 'cli.js'))
    expect((await execa(process.execPath, [file])).stdout).toBe('one')
    const built = (await stat(file)).mtimeMs

    await ensureBundle(root, 'out/cli.js')
    expect((await stat(file)).mtimeMs).toBe(built)

    await writeFile(dep, "export const word: string = 'two'\n")
    const later = new Date(Date.now() + 5_000)
    await utimes(dep, later, later)
    await ensureBundle(root, 'out/cli.js')
    expect((await execa(process.execPath, [file])).stdout).toBe('two')
  })

  it('rebuilds a bundle whose file is gone, even with its list of inputs in place', async () => {
    const root = join(scratch, 'gone')
    await mkdir(join(root, 'cli'), { recursive: true })
    await writeFile(join(root, 'cli', 'main.ts'), "process.stdout.write('here')\n")
    const file = await ensureBundle(root, 'b.js')
    await rm(file)
    await ensureBundle(root, 'b.js')
    expect(await readFile(file, 'utf8')).toContain('here')
  })

  it('bundles another entry than the CLI (the lab\'s k3s stand-in), which runs as a module from under node_modules', async () => {
    const root = join(scratch, 'standin')
    await mkdir(join(root, 'netns-lab'), { recursive: true })
    await writeFile(join(root, 'netns-lab', 'k3s-standin.ts'), "const role: string = 'stand-in'\nif (import.meta.main) process.stdout.write(role)\n")
    const file = await ensureBundle(root, LAB_STANDIN_BUNDLE, join('netns-lab', 'k3s-standin.ts'))
    expect(file).toBe(join(root, 'node_modules', '.cache', 'kairos-p2p', 'bundle', 'k3s-standin.mjs'))
    expect((await execa(process.execPath, [file])).stdout).toBe('stand-in')
  })
})

describe('the CLI bundle', () => {
  it('runs commands through the installed package\'s launcher, with the bundled flag set and no bundler inside', { timeout: 60_000 }, async () => {
    const { code } = await buildBundle()
    // An installed package with nothing else around it: the launcher runs dist/kairos-p2p.js
    // (Node does not strip types under node_modules), which needs no other file.
    const alone = await mkdtemp(join(tmpdir(), 'kp2p-bundle-'))
    onTestFinished(async () => { await rm(alone, { recursive: true, force: true }) })
    const pkg = join(alone, 'node_modules', 'kairos-p2p')
    await mkdir(join(pkg, 'dist'), { recursive: true })
    await mkdir(join(pkg, 'bin'))
    await writeFile(join(pkg, 'dist', 'kairos-p2p.js'), code)
    await copyFile(join(REPO_ROOT, 'bin', 'kairos-p2p.js'), join(pkg, 'bin', 'kairos-p2p.js'))
    await copyFile(join(REPO_ROOT, 'package.json'), join(pkg, 'package.json'))
    const file = join(pkg, 'bin', 'kairos-p2p.js')
    expect(code).not.toContain('KAIROS_P2P_BUNDLED')
    // ASCII only, so V8 holds the source one byte per character (AGENT-9).
    expect(code.match(/[^\x00-\x7f]/g) ?? []).toEqual([])
    expect(code).not.toMatch(/import\(["']rolldown["']\)|from ["']rolldown["']/)
    expect((await execa(process.execPath, [file, '--version'])).stdout).toMatch(/^kairos-p2p \d+\.\d+\.\d+$/)
    const token = (await execa(process.execPath, [file, 'token', 'generate'])).stdout.trim()
    const shown = await execa(process.execPath, [file, 'token', 'inspect', token], { reject: false })
    expect(shown.exitCode).toBe(0)
    const kairos = await execa(process.execPath, [file, 'token', 'inspect', '-'], { input: edgevpnToken(seededRandom(3)), reject: false })
    expect(kairos.exitCode, kairos.stderr).toBe(0)
    expect(kairos.stdout).toMatch(/kairos/i)
    expect((await execa(process.execPath, [file, 'agent', '--help'])).stdout).toMatch(/--config/)
    const bad = await execa(process.execPath, [file, 'token', 'inspect', 'kp1-not-a-token'], { reject: false })
    expect(bad.exitCode).toBe(2)
    expect(bad.stderr).toMatch(/token/)
  })
})
