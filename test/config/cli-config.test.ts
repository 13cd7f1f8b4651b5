// Tests of cli/config.ts (`kairos-p2p config`), kept next to the loader they drive.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { command } from '../../cli/config.ts'
import type { CliIO } from '../../cli/io.ts'
import { UsageError } from '../../util/errors.ts'
import { encodeToken } from '../../token/index.ts'

interface Run { code: number, stdout: string, stderr: string }

async function run (...argv: string[]): Promise<Run> {
  return await runWithStdin('', ...argv)
}

async function runWithStdin (stdin: string, ...argv: string[]): Promise<Run> {
  let stdout = ''
  let stderr = ''
  const io: CliIO = {
    stdout: (t) => { stdout += t },
    stderr: (t) => { stderr += t },
    readStdin: async () => stdin,
    env: {},
    signal: new AbortController().signal
  }
  const code = await command.run(argv, io)
  return { code, stdout, stderr }
}

const TOKEN = encodeToken(new Uint8Array(32).fill(7))
let dir = ''
const file = (name: string): string => join(dir, name)

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kp2p-cli-config-'))
  await writeFile(file('good.yaml'), `#cloud-config\nhostname: n-{{ trunc 4 .MachineID }}\np2p:\n  network_token: ${TOKEN}\n  minimum_nodes: 3\n  minimun_nodes: 4\nk3s:\n  enabled: true\n  args: [--disable=traefik,servicelb]\n  env: {K3S_TOKEN: also-secret}\n`)
  await writeFile(file('three.yaml'), 'p2p:\n  minimum_nodes: "three"\n')
  await writeFile(file('many.yaml'), 'p2p:\n  role: boss\n  vpn:\n    port: 0\n')
  await writeFile(file('broken.yaml'), 'p2p:\n  role: master\n   x: 1\n')
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('kairos-p2p config validate', () => {
  it('exits 0 with a summary, warnings on stderr, never the token', async () => {
    const r = await run('validate', file('good.yaml'))
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('minimum nodes:  3')
    expect(r.stdout).toContain('role:           auto (elected)')
    expect(r.stdout).toContain('vpn:            10.88.0.0/16 on kairos0')
    expect(r.stdout).toContain('installer:      k3s (root /)')
    expect(r.stdout).toContain('token:          set (not shown)')
    expect(r.stderr).toBe('warning: p2p.minimun_nodes: unknown key (did you mean p2p.minimum_nodes?)\n')
    expect(r.stdout + r.stderr).not.toContain(TOKEN)
  })

  it('exits 2 naming p2p.minimum_nodes for "three"', async () => {
    const r = await run('validate', file('three.yaml'))
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr).toContain('error: p2p.minimum_nodes: got "three" (string), expected a non-negative integer\n')
  })

  it('prints every error, and the file it came from when several are merged', async () => {
    const r = await run('validate', file('good.yaml'), file('many.yaml'))
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(`error: p2p.role: got "boss" (string), expected one of "master", "worker", "none", or "" for automatic (in ${file('many.yaml')})`)
    expect(r.stderr).toContain(`error: p2p.vpn.port: got 0 (number), expected a UDP port number 1–65535 (in ${file('many.yaml')})`)
    expect(r.stderr).toContain('2 errors; config is not valid')
  })

  it('exits 2 on a YAML syntax error, naming file and line', async () => {
    const r = await run('validate', file('broken.yaml'))
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(`error: ${file('broken.yaml')}:3: YAML syntax error: bad indentation of a mapping entry`)
  })

  it('--json prints the resolved config with secrets redacted', async () => {
    const r = await run('validate', '--json', '--preset', 'lab', file('good.yaml'))
    expect(r.code).toBe(0)
    const json = JSON.parse(r.stdout) as { p2p: { networkToken: string, minimumNodes: number, preset: string, timing: { deadAfterMs: number } }, k3s: { env: Record<string, string> } }
    expect(json.p2p).toMatchObject({ networkToken: '<redacted>', minimumNodes: 3, preset: 'lab', timing: { deadAfterMs: 600 } })
    expect(json.k3s.env).toEqual({ K3S_TOKEN: '<redacted>' })
    expect(r.stdout).not.toContain(TOKEN)
    expect(r.stdout).not.toContain('also-secret')
  })

  it('reads - from standard input, merged in order', async () => {
    const r = await runWithStdin('p2p:\n  minimum_nodes: 5\n', 'validate', file('good.yaml'), '-')
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('valid: ' + file('good.yaml') + ', <stdin>')
    expect(r.stdout).toContain('minimum nodes:  5')
  })

  it('exits 2 naming p2p.network_token when the token has a typo', async () => {
    const last = TOKEN.at(-1) === 'q' ? 'p' : 'q'
    await writeFile(file('typo.yaml'), `p2p:\n  network_token: ${TOKEN.slice(0, -1)}${last}\n`)
    const r = await run('validate', file('typo.yaml'))
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('error: p2p.network_token: network token checksum mismatch')
    expect(r.stderr).not.toContain(TOKEN.slice(10))
  })

  it('a missing file is bad input naming the path', async () => {
    await expect(run('validate', file('absent.yaml'))).rejects.toMatchObject({
      name: 'ConfigFileError', exitCode: 2, message: `cannot read config file ${file('absent.yaml')}: no such file`
    })
  })

  it('usage errors exit 2', async () => {
    await expect(run('validate')).rejects.toBeInstanceOf(UsageError)
    await expect(run('validate', '--preset', 'wan', file('good.yaml'))).rejects.toThrow("config validate: --preset got 'wan', expected one of: lan, lab")
    await expect(run('validate', '--bogus', file('good.yaml'))).rejects.toBeInstanceOf(UsageError)
    await expect(run('frobnicate')).rejects.toThrow("config: unknown subcommand 'frobnicate'")
    expect((await run()).code).toBe(2)
  })

  it('has help for the command and the subcommand', async () => {
    const top = await run('--help')
    expect(top.code).toBe(0)
    expect(top.stdout).toContain('validate FILE…')
    const sub = await run('validate', '--help')
    expect(sub.code).toBe(0)
    expect(sub.stdout).toContain('--preset NAME')
    expect(sub.stdout).toContain('--json')
  })
})

describe('start-up stays lean', () => {
  it('cli/config.ts and config/ import no libp2p; config/ does not import token/', async () => {
    const { readdir, readFile } = await import('node:fs/promises')
    const files = ['cli/config.ts', ...(await readdir('config')).filter((f) => f.endsWith('.ts')).map((f) => `config/${f}`)]
    for (const f of files) {
      const text = await readFile(f, 'utf8')
      const imports = [...text.matchAll(/from '([^']+)'/g)].map((m) => m[1] ?? '')
      for (const spec of imports) {
        expect(spec, `${f} imports ${spec}`).not.toMatch(f.startsWith('config/') ? /libp2p|multiformats|\/token\// : /libp2p|multiformats/)
      }
    }
  })
})
