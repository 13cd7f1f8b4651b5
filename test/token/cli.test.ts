// Tests of cli/token.ts (kept with the token tests): in-process through
// `command.run` with buffer IO, plus real runs of bin/kairos-p2p.js for exit codes.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'
import { execa } from 'execa'
import { describe, expect, it } from 'vitest'
import { command } from '../../cli/token.ts'
import type { CliIO } from '../../cli/io.ts'
import { deriveKeys, generateToken, parseToken, TOKEN_LENGTH } from '../../token/index.ts'
import { seededRandom } from '../../util/random.ts'
import { edgevpnToken } from './edgevpn.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const node = join(root, 'node_modules', '.bin', 'node')
const bin = join(root, 'bin', 'kairos-p2p.js')

interface BufferIO extends CliIO { out: string[], err: string[] }

function bufferIO (stdin = ''): BufferIO {
  const out: string[] = []
  const err: string[] = []
  return {
    out,
    err,
    stdout: (t) => { out.push(t) },
    stderr: (t) => { err.push(t) },
    readStdin: async () => stdin,
    env: {},
    signal: new AbortController().signal
  }
}

async function run (argv: string[], stdin = ''): Promise<{ code: number, out: string, err: string }> {
  const io = bufferIO(stdin)
  const code = await command.run(argv, io)
  return { code, out: io.out.join(''), err: io.err.join('') }
}

async function failure (argv: string[], stdin = ''): Promise<Error & { exitCode?: number }> {
  try {
    await command.run(argv, bufferIO(stdin))
  } catch (err) {
    return err as Error & { exitCode?: number }
  }
  throw new Error(`token ${argv.join(' ')} did not fail`)
}

const fixed = generateToken(seededRandom(21))
const oneCharChanged = fixed.slice(0, 30) + (fixed[30] === 'q' ? 'p' : 'q') + fixed.slice(31)

describe('token generate', () => {
  it('prints one token on one line', async () => {
    const { code, out } = await run(['generate'])
    expect(code).toBe(0)
    expect(out).toMatch(new RegExp(`^kp1p[a-z0-9]{${TOKEN_LENGTH - 4}}\\n$`))
    expect(parseToken(out).kind).toBe('kairos-p2p')
  })

  it('--json adds kind, version and fingerprint', async () => {
    const { code, out } = await run(['generate', '--json'])
    expect(code).toBe(0)
    const doc = JSON.parse(out) as { token: string, kind: string, version: number, fingerprint: string }
    expect(doc.kind).toBe('kairos-p2p')
    expect(doc.version).toBe(1)
    expect(doc.fingerprint).toBe(deriveKeys(parseToken(doc.token)).fingerprint)
  })

  it('rejects unknown options and extra arguments with a UsageError', async () => {
    for (const argv of [['generate', '--bogus'], ['generate', 'extra']]) {
      const err = await failure(argv)
      expect(err.name).toBe('UsageError')
      expect(err.exitCode).toBe(2)
      expect(err.message).toMatch(/token generate --help/)
    }
  })
})

describe('token inspect', () => {
  it('prints kind, version, fingerprint and public values, no secrets', async () => {
    const keys = deriveKeys(parseToken(fixed))
    const { code, out } = await run(['inspect', fixed])
    expect(code).toBe(0)
    expect(out).toMatch(/^kind: +kairos-p2p$/m)
    expect(out).toMatch(/^version: +1$/m)
    expect(out).toContain(keys.fingerprint)
    expect(out).toContain(keys.mdnsTag)
    expect(out).toContain(keys.dhtProtocol)
    expect(out).toMatch(/^rendezvous: +epoch \d+ \(3600000 ms\), key id [0-9a-f]{16}, previous [0-9a-f]{16}$/m)
    expect(out).toMatch(/^secrets: +hidden/m)
    expect(out).not.toContain(Buffer.from(keys.stateKey).toString('hex'))
    expect(out).not.toContain(fixed)
  })

  it('--preset lab uses the lab preset\'s rendezvous epoch', async () => {
    const { out } = await run(['inspect', fixed, '--preset', 'lab', '--json'])
    expect(JSON.parse(out).rendezvous.epochMs).toBe(60000)
  })

  it('reads the token from stdin with -', async () => {
    const { code, out } = await run(['inspect', '-'], `${fixed}\n`)
    expect(code).toBe(0)
    expect(out).toContain(deriveKeys(parseToken(fixed)).fingerprint)
  })

  it('--json --show-secrets --network-id prints the scoped derived keys', async () => {
    const keys = deriveKeys(parseToken(fixed), 'site-a')
    const { code, out } = await run(['inspect', fixed, '--json', '--show-secrets', '--network-id', 'site-a', '--epoch-ms', '60000'])
    expect(code).toBe(0)
    const doc = JSON.parse(out)
    expect(doc).toMatchObject({
      kind: 'kairos-p2p',
      version: 1,
      fingerprint: keys.fingerprint,
      networkId: 'site-a',
      gossipTopic: keys.gossipTopic,
      syncProtocol: keys.syncProtocol,
      rendezvous: { epochMs: 60000 },
      secrets: {
        stateKey: Buffer.from(keys.stateKey).toString('hex'),
        admissionKey: Buffer.from(keys.admissionKey).toString('hex'),
        pnetKey: new TextDecoder().decode(keys.pnetKey).split('\n')[2]
      }
    })
    const rv = keys.rendezvousKey(doc.rendezvous.epoch * 60000, 60000)
    expect(doc.secrets.rendezvousCurrent).toBe(Buffer.from(rv.current).toString('hex'))
    expect(doc.rendezvous.currentKeyId).toBe(doc.secrets.rendezvousCurrent.slice(0, 16))
  })

  it('shows that a Kairos token is one', async () => {
    const text = edgevpnToken(seededRandom(4))
    const { code, out } = await run(['inspect', '-'], text)
    expect(code).toBe(0)
    expect(out).toMatch(/^kind: +kairos \(imported Kairos\/edgevpn network token\)$/m)
    expect(out).toMatch(/^kairos otp: +dht interval 9000 s, crypto interval 9000 s$/m)
    const json = JSON.parse((await run(['inspect', '-', '--json'], text)).out)
    expect(json.kind).toBe('kairos')
    expect(json.kairos).toEqual({ dhtInterval: 9000, cryptoInterval: 9000, maxMessageSize: 20971520 })
    expect(json.secrets).toBeUndefined()
  })

  it('a one-character change is a TokenChecksumError (exit code 2)', async () => {
    const err = await failure(['inspect', oneCharChanged])
    expect(err.name).toBe('TokenChecksumError')
    expect(err.exitCode).toBe(2)
    expect(err.message).toMatch(/checksum mismatch — probably a typo/)
  })

  it('empty stdin is a TokenEmptyError', async () => {
    expect((await failure(['inspect', '-'], '')).name).toBe('TokenEmptyError')
  })

  it('usage errors: no token, two tokens, a bad --epoch-ms', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['inspect'], /^inspect: missing token; pass it as an argument or '-' to read stdin/],
      [['inspect', fixed, fixed], /^inspect: expected one token, got 2 arguments/],
      [['inspect', fixed, '--epoch-ms', 'soon'], /^inspect: --epoch-ms must be a positive integer of milliseconds, got 'soon'$/],
      [['inspect', fixed, '--epoch-ms', '0'], /got '0'/],
      [['inspect', fixed, '--preset', 'wan'], /^inspect: --preset must be one of lan, lab, got 'wan'$/],
      [[], /^missing command; expected generate, inspect or rotate/],
      [['revoke'], /^unknown command 'revoke'; expected generate, inspect or rotate/]
    ]
    for (const [argv, message] of cases) {
      const err = await failure(argv)
      expect(err.name, argv.join(' ')).toBe('UsageError')
      expect(err.message).toMatch(message)
    }
  })
})

describe('token --help', () => {
  for (const argv of [['--help'], ['generate', '--help'], ['inspect', '--help'], ['inspect', '-h']]) {
    it(argv.join(' '), async () => {
      const { code, out } = await run(argv)
      expect(code).toBe(0)
      expect(out).toMatch(/^Usage: kairos-p2p token/)
    })
  }
})

describe('bin/kairos-p2p.js token (real process)', () => {
  it('generate exits 0; inspect of a one-character change exits 2 naming the checksum', async () => {
    const generated = await execa(node, [bin, 'token', 'generate'], { reject: false, cwd: root })
    expect(generated.exitCode).toBe(0)
    const token = generated.stdout.trim()
    expect(token).toHaveLength(TOKEN_LENGTH)

    const inspected = await execa(node, [bin, 'token', 'inspect', '-'], { input: token, reject: false, cwd: root })
    expect(inspected.exitCode).toBe(0)
    expect(inspected.stdout).toContain(deriveKeys(parseToken(token)).fingerprint)

    const changed = token.slice(0, 40) + (token[40] === 'q' ? 'p' : 'q') + token.slice(41)
    const bad = await execa(node, [bin, 'token', 'inspect', changed], { reject: false, cwd: root })
    expect(bad.exitCode).toBe(2)
    expect(bad.stdout).toBe('')
    expect(bad.stderr).toBe('kairos-p2p token: network token checksum mismatch — probably a typo; copy the token again from its source')
  })

  // The machine's own Node (CI and fresh machines have Node 20 outside node_modules).
  const oldNode = ['/usr/bin/node', '/usr/local/bin/node'].find((p) => {
    const v = spawnSync(p, ['--version'], { encoding: 'utf8' })
    return v.status === 0 && Number(/^v(\d+)/.exec(v.stdout)?.[1] ?? 99) < 22
  })
  it.skipIf(oldNode === undefined)('on a Node older than 22 the launcher says so and exits 1 (needs an old system Node)', async () => {
    const r = await execa(oldNode as string, [bin, 'token', 'generate'], { reject: false, cwd: root })
    expect(r.exitCode).toBe(1)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/^kairos-p2p needs Node\.js 22 or newer \(this is v\d+\.\d+\.\d+\); in a checkout, run it through 'npx kairos-p2p'/)
  })

  // Every module the CLI resolves (import or require) for one run.
  async function modulesLoaded (args: string[], input = ''): Promise<string[]> {
    const script = `
      import { registerHooks } from 'node:module'
      const seen = []
      registerHooks({ resolve (specifier, context, next) { const r = next(specifier, context); seen.push(r.url); return r } })
      process.on('exit', () => { process.stderr.write(JSON.stringify(seen)) })
      process.argv = [process.argv[0], ${JSON.stringify(bin)}, ...${JSON.stringify(args)}]
      await import(${JSON.stringify(bin)})
    `
    const result = await execa(node, ['--input-type=module', '-e', script], { input, reject: false, cwd: root })
    expect(result.exitCode, result.stderr).toBe(0)
    return JSON.parse(result.stderr) as string[]
  }

  // The YAML parser (6 ms) is imported statically since the bundle must not need
  // node_modules at run time; libp2p (most of a second) stays out.
  it('never loads libp2p', async () => {
    const generate = await modulesLoaded(['token', 'generate'])
    expect(generate.some((u) => u.endsWith('/cli/token.ts'))).toBe(true)
    expect(generate.some((u) => u.includes('/js-yaml/'))).toBe(true) // the hook sees packages
    expect(generate.filter((u) => /libp2p|multiformats/.test(u))).toEqual([])
    const kairos = await modulesLoaded(['token', 'inspect', '-'], edgevpnToken(seededRandom(6)))
    expect(kairos.filter((u) => /libp2p|multiformats/.test(u))).toEqual([])
  })
})
