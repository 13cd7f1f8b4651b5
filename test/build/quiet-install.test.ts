// On a box whose own Node is older than 22, npm commands in this checkout print no
// EBADENGINE noise (everything runs on the Node 24 `npm ci` brought), while the package
// still declares what it needs.
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { delimiter, join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const root = join(import.meta.dirname, '..', '..')
const run = promisify(execFile)

/** The machine's own node and npx: first on PATH outside node_modules/.bin. */
async function systemNode (): Promise<{ node: string, npx: string, major: number } | undefined> {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter((d) => d !== '' && !d.includes('node_modules'))
  for (const d of dirs) {
    try {
      const node = join(d, 'node')
      const { stdout } = await run(node, ['--version'])
      return { node, npx: join(d, 'npx'), major: Number(stdout.trim().slice(1).split('.')[0]) }
    } catch { /* not here */ }
  }
  return undefined
}

const sys = await systemNode()

describe('quiet install', () => {
  it('the package still declares Node >= 22', async () => {
    const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { engines?: { node?: string } }
    expect(pkg.engines?.node).toBe('>=22')
  })

  const env = { ...process.env, PATH: (process.env.PATH ?? '').split(delimiter).filter((d) => !d.includes('node_modules')).join(delimiter) }

  it.skipIf(sys === undefined || sys.major >= 22)('npx kairos-p2p on the machine\'s older Node prints the version and no warning', async () => {
    const s = sys as NonNullable<typeof sys>
    const { stdout, stderr } = await run(s.node, [s.npx, 'kairos-p2p', '--version'], { cwd: root, env })
    expect(stdout).toBe('kairos-p2p 0.1.0\n')
    expect(stderr).toBe('')
  }, 60_000)

  it.skipIf(sys === undefined || sys.major >= 22)('npm\'s install check on the machine\'s older Node (a dry run, as npm ci checks) prints no EBADENGINE', async () => {
    const s = sys as NonNullable<typeof sys>
    const npm = join(s.npx, '..', 'npm')
    const { stdout, stderr } = await run(s.node, [npm, 'install', '--dry-run', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: root, env })
    expect(`${stdout}${stderr}`).not.toContain('EBADENGINE')
    expect(stderr).toBe('')
  }, 120_000)
})
