// A benchmark's command line: `--help` prints its usage and exits 0; an unknown option
// or a bad value names what is wrong, prints the usage and exits 2, with or without root
// and before any lab is built.
import { describe, expect, it } from 'vitest'
import { join } from 'node:path'
import { execa } from 'execa'

const bench = (name: string): string => join(import.meta.dirname, '..', '..', 'bench', `${name}.ts`)

describe('benchmark options', () => {
  it.each(['lab', 'floor', 'faults', 'soak'])('%s.ts --help prints its usage and exits 0', async (name) => {
    const r = await execa(process.execPath, [bench(name), '--help'], { reject: false })
    expect(r.exitCode).toBe(0)
    expect(r.stdout).toMatch(new RegExp(`^usage:\\n .*node bench/${name}\\.ts \\[--`))
  })

  it('an unknown option is named, with the usage, exit 2', async () => {
    const r = await execa(process.execPath, [bench('lab'), '--bogus'], { reject: false })
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain("lab.ts: Unknown option '--bogus'")
    expect(r.stderr).toContain('usage:\n')
    expect(r.stdout).toBe('')
  })

  it('a bad value is named with what was expected, exit 2', async () => {
    const r = await execa(process.execPath, [bench('faults'), '--scenarios', 'election,flood'], { reject: false })
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain("--scenarios: 'flood' is not a scenario; expected a comma-separated list of election, heal, loss")
    const e = await execa(process.execPath, [bench('faults'), '--election-rounds', '0'], { reject: false })
    expect(e.exitCode).toBe(2)
    expect(e.stderr).toContain("--election-rounds '0': expected an integer from 1 to 100")
    const f = await execa(process.execPath, [bench('floor'), '--nodes', '1'], { reject: false })
    expect(f.exitCode).toBe(2)
    expect(f.stderr).toContain("--nodes '1': expected comma-separated integers from 2 to 200")
  })

  it('npm run bench names an unknown benchmark and lists the known ones, exit 2', async () => {
    const r = await execa(process.execPath, [bench('run'), 'nosuch'], { reject: false })
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toMatch(/no benchmark 'nosuch'; expected some of: .*lab/)
  })
})
