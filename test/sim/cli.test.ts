import { join } from 'node:path'
import { execa } from 'execa'
import { describe, expect, it } from 'vitest'

const cli = join(import.meta.dirname, '..', '..', 'sim', 'cli.ts')

describe('npm run sim', () => {
  it('runs a range of seeds and prints the summary', async () => {
    const r = await execa(process.execPath, [cli, '--seeds', '2', '--start', '4'], { reject: false })
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^2 seed\(s\), 0 failed, \d+ decisions, \d+ merge ties, \d+ members declared dead/m)
  }, 120_000)

  it('replays one seed with its figures', async () => {
    const r = await execa(process.execPath, [cli, '--seed', '4'], { reject: false })
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.stdout).toContain('seed 4: nodes=')
  }, 120_000)

  it('runs seeds with a hostile member and counts the vote it won', async () => {
    const r = await execa(process.execPath, [cli, '--seeds', '2', '--adversary', '--sybils', '1', '--verbose'], { reject: false })
    expect(r.exitCode, r.stderr).toBe(0)
    expect(r.stdout).toContain('adversary with 1 minted identities')
    expect(r.stdout).toMatch(/attacks=[1-9]\d*/)
    expect(r.stdout).toMatch(/^2 seed\(s\), 0 failed, .*, hostile member elected by a real vote in \d+$/m)
  }, 120_000)

  it('refuses bad input with exit code 2, naming the option', async () => {
    for (const args of [['--seeds', 'x'], ['--faults', 'some'], ['--preset', 'wan'], ['--sybils', '-1'], ['--bogus']]) {
      const r = await execa(process.execPath, [cli, ...args], { reject: false })
      expect(r.exitCode).toBe(2)
      expect(r.stderr).toMatch(/^sim: /)
    }
  })
})
