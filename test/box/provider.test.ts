// The provider driven the way kairos-agent drives it (go-pluggable): the built
// executable run as `agent-provider-kairos-p2p <event>`, the event written to stdin as
// JSON, stdout parsed as exactly one JSON answer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chmod, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { generateToken } from '../../token/index.ts'
import { seededRandom } from '../../util/random.ts'
import { KAIROS_EVENTS } from '../../box/provider.ts'
import { BOX_CONFIG_PATH } from '../../box/paths.ts'
import { ARTEFACT_BUILD_TIMEOUT_MS, ensureArtefact, type TestArtefact } from '../helpers/artefact.ts'

/** The events kairos-sdk's bus/events.go defines, copied here so a change to either list is seen. */
const SDK_EVENTS = [
  'agent.install.challenge', 'agent.install', 'agent.boot', 'agent.bootstrap', 'agent.installprompt',
  'agent.recovery', 'agent.recovery.stop', 'agent.available_releases', 'agent.version_image',
  'agent.interactive-install', 'agent.reset.after', 'agent.reset.before',
  'init.provider.install', 'init.provider.configure', 'init.provider.info'
]
/** go-pluggable moves `data` into a file above this size. */
const PLUGGABLE_DATA_LIMIT = 8192
/** What kairos-agent waits for at most (the bound on every answer), ms. */
const ANSWER_BOUND_MS = 5_000

const token = generateToken(seededRandom(15))
let artefact: TestArtefact
let scratch: string
let caseNo = 0

beforeAll(async () => {
  artefact = await ensureArtefact()
  scratch = await mkdtemp(join(tmpdir(), 'provider-'))
}, ARTEFACT_BUILD_TIMEOUT_MS)
afterAll(async () => { await rm(scratch, { recursive: true, force: true }) })

interface Box {
  /** Every file path of the provider is under it. */
  root: string
  /** PATH of the provider: tools the launcher needs and the fakes. */
  bin: string
  /** Lines the fake systemctl and kairos-agent log, one call per line. */
  calls: string
}

/** A fresh box: a root, a PATH with getconf and readlink, and a fake systemctl that logs its calls. */
async function newBox (systemctl = 'echo "systemctl $*" >> "$CALLS"'): Promise<Box> {
  const dir = join(scratch, `case-${caseNo++}`)
  const box: Box = { root: join(dir, 'root'), bin: join(dir, 'bin'), calls: join(dir, 'calls.log') }
  await mkdir(box.root, { recursive: true })
  await mkdir(box.bin, { recursive: true })
  await writeFile(box.calls, '')
  for (const tool of ['getconf', 'readlink']) await symlink(`/usr/bin/${tool}`, join(box.bin, tool))
  if (systemctl !== '') await fake(box, 'systemctl', systemctl)
  return box
}

async function fake (box: Box, name: string, body: string): Promise<void> {
  await writeFile(join(box.bin, name), `#!/bin/sh\n${body}\n`)
  await chmod(join(box.bin, name), 0o755)
}

interface Answer { state: string, data: string, error: string, log: string }

/** Runs the provider as go-pluggable does; checks the exit code and that stdout is exactly one answer. */
async function drive (box: Box, event: string, stdin: string | undefined): Promise<{ answer: Answer, ms: number }> {
  const started = performance.now()
  const r = await execa(artefact.provider, [event], {
    env: { PATH: box.bin, CALLS: box.calls, KAIROS_P2P_PROVIDER_ROOT: box.root },
    extendEnv: false,
    reject: false,
    timeout: 20_000,
    ...(stdin === undefined ? {} : { input: stdin })
  })
  const ms = performance.now() - started
  expect(r.exitCode, r.stderr).toBe(0)
  const lines = r.stdout.split('\n').filter((l) => l !== '')
  expect(lines).toHaveLength(1)
  const answer = JSON.parse(lines[0] ?? '') as Record<string, unknown>
  expect(Object.keys(answer).sort()).toEqual(['data', 'error', 'log', 'state'])
  for (const v of Object.values(answer)) expect(typeof v).toBe('string')
  return { answer: answer as unknown as Answer, ms }
}

function cloudConfig (p2p: string, extra = ''): string {
  return `#cloud-config\nhostname: box-{{ trunc 4 .MachineID }}\nusers:\n- name: kairos\n  passwd: kairos\n${p2p}${extra}`
}

const withToken = (extra = ''): string => cloudConfig(`p2p:\n  network_token: ${token}\n  minimum_nodes: 2\nk3s:\n  enabled: true\n  args: [--disable=traefik]\n`, extra)

/** The event as go-pluggable writes it: the payload inline. */
function dataEvent (name: string, payload: unknown): string {
  return JSON.stringify({ name, data: JSON.stringify(payload), file: '' })
}

/** The event as go-pluggable writes it when the payload is over 8192 bytes: in a file. */
async function fileEvent (name: string, payload: unknown): Promise<string> {
  const file = join(scratch, `payload-${caseNo++}.json`)
  await writeFile(file, JSON.stringify(payload))
  return JSON.stringify({ name, data: '', file })
}

const bootstrapPayload = (config: string): unknown => ({ api: '127.0.0.1:8080', config, logfile: '/var/log/kairos/provider.log' })

describe('the provider, driven as kairos-agent drives it', () => {
  it('knows every event kairos-sdk defines', () => {
    expect([...KAIROS_EVENTS]).toEqual(SDK_EVENTS)
  })

  it('answers every event but agent.bootstrap with an empty answer, and touches nothing', async () => {
    const box = await newBox()
    for (const name of SDK_EVENTS.filter((e) => e !== 'agent.bootstrap')) {
      const { answer } = await drive(box, name, dataEvent(name, { config: withToken() }))
      expect(answer, name).toEqual({ state: '', data: '', error: '', log: '' })
    }
    expect(await readFile(box.calls, 'utf8')).toBe('')
    await expect(stat(join(box.root, BOX_CONFIG_PATH))).rejects.toThrow(/ENOENT/)
  }, 120_000)

  it('bootstrap (data form) writes the service config and enables and starts the unit', async () => {
    const box = await newBox()
    const { answer } = await drive(box, 'agent.bootstrap', dataEvent('agent.bootstrap', bootstrapPayload(withToken())))
    expect(answer.error).toBe('')
    expect(answer.state).toMatch(/wrote .*cloud-config\.yaml; enabled and restarted kairos-p2p\.service \(role by election\)/)
    const file = join(box.root, BOX_CONFIG_PATH)
    const written = await readFile(file, 'utf8')
    expect(written).toContain(token)
    expect(written).toContain('--disable=traefik')
    expect(written).not.toContain('passwd')
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    expect((await readFile(box.calls, 'utf8')).trim().split('\n')).toEqual([
      'systemctl daemon-reload', 'systemctl enable kairos-p2p.service', 'systemctl restart --no-block kairos-p2p.service'
    ])

    // The next boot brings the same config: the unit is started, not restarted.
    await writeFile(box.calls, '')
    const again = await drive(box, 'agent.bootstrap', dataEvent('agent.bootstrap', bootstrapPayload(withToken())))
    expect(again.answer.state).toMatch(/unchanged; enabled and started kairos-p2p\.service/)
    expect((await readFile(box.calls, 'utf8')).trim().split('\n')).toEqual([
      'systemctl daemon-reload', 'systemctl enable --now --no-block kairos-p2p.service'
    ])
  })

  it('bootstrap (file form, a payload over 8192 bytes) does the same', async () => {
    const box = await newBox()
    const big = withToken(`write_files:\n- path: /etc/motd\n  content: "${'x'.repeat(PLUGGABLE_DATA_LIMIT)}"\n`)
    expect(JSON.stringify(bootstrapPayload(big)).length).toBeGreaterThan(PLUGGABLE_DATA_LIMIT)
    const { answer } = await drive(box, 'agent.bootstrap', await fileEvent('agent.bootstrap', bootstrapPayload(big)))
    expect(answer.error).toBe('')
    expect(answer.state).toContain('enabled and restarted kairos-p2p.service')
    const written = await readFile(join(box.root, BOX_CONFIG_PATH), 'utf8')
    expect(written).toContain(token)
    expect(written).not.toContain('xxxx')
  })

  it('runs the kairos-agent.bootstrap stage when kairos-agent is there', async () => {
    const box = await newBox()
    await fake(box, 'kairos-agent', 'echo "kairos-agent $*" >> "$CALLS"')
    const { answer } = await drive(box, 'agent.bootstrap', dataEvent('agent.bootstrap', bootstrapPayload(withToken())))
    expect(answer.error).toBe('')
    expect(answer.log).toMatch(/kairos-agent run-stage kairos-agent\.bootstrap: done/)
    expect(await readFile(box.calls, 'utf8')).toMatch(/^kairos-agent run-stage kairos-agent\.bootstrap\nsystemctl daemon-reload\n/)
  })

  it('runs the bootstrap hook script an image carries, as provider-kairos does', async () => {
    const box = await newBox()
    await mkdir(join(box.root, 'usr/bin'), { recursive: true })
    await writeFile(join(box.root, 'usr/bin/kairos-agent.bootstrap.hook'), '#!/bin/sh\necho "hook" >> "$CALLS"\n', { mode: 0o755 })
    const { answer } = await drive(box, 'agent.bootstrap', dataEvent('agent.bootstrap', bootstrapPayload(withToken())))
    expect(answer.log).toMatch(/kairos-agent\.bootstrap\.hook: done/)
    expect(await readFile(box.calls, 'utf8')).toMatch(/^hook\nsystemctl daemon-reload\n/)
  })

  it('passes the warnings config validate prints on to the log', async () => {
    const box = await newBox()
    const { answer } = await drive(box, 'agent.bootstrap', dataEvent('agent.bootstrap', bootstrapPayload(withToken().replace('  minimum_nodes: 2\n', '  minimum_nodes: 2\n  colour: blue\n'))))
    expect(answer.error).toBe('')
    expect(answer.log).toMatch(/^warning: .*p2p\.colour/m)
  })

  it('gives an empty answer and does nothing without a network token or a static role', async () => {
    const box = await newBox()
    const { answer } = await drive(box, 'agent.bootstrap', dataEvent('agent.bootstrap', bootstrapPayload(cloudConfig('k3s:\n  enabled: true\n'))))
    expect(answer).toEqual({ state: '', data: '', error: '', log: '' })
    expect(await readFile(box.calls, 'utf8')).toBe('')
  })

  it('a static role without a token is an error naming both keys', async () => {
    const box = await newBox()
    const { answer } = await drive(box, 'agent.bootstrap', dataEvent('agent.bootstrap', bootstrapPayload(cloudConfig('p2p:\n  role: master\n'))))
    expect(answer.error).toMatch(/p2p\.role is 'master' but p2p\.network_token is not set/)
  })

  it('stands aside when agent-provider-kairos is installed too, and says so', async () => {
    const box = await newBox()
    await mkdir(join(box.root, 'system/providers'), { recursive: true })
    await writeFile(join(box.root, 'system/providers/agent-provider-kairos'), '#!/bin/sh\n', { mode: 0o755 })
    const { answer } = await drive(box, 'agent.bootstrap', dataEvent('agent.bootstrap', bootstrapPayload(withToken())))
    expect(answer.error).toBe('')
    expect(answer.state).toMatch(/did nothing: agent-provider-kairos is also installed \(.*system\/providers\/agent-provider-kairos\)/)
    expect(await readFile(box.calls, 'utf8')).toBe('')
    await expect(stat(join(box.root, BOX_CONFIG_PATH))).rejects.toThrow(/ENOENT/)
  })
})

describe('the provider on bad input and faults', () => {
  it('reports an invalid config with the message config validate prints, exit code 0', async () => {
    const box = await newBox()
    const bad = cloudConfig(`p2p:\n  network_token: ${token}\n  minimum_nodes: three\n  vpn: {port: 70000}\n`)
    const { answer } = await drive(box, 'agent.bootstrap', dataEvent('agent.bootstrap', bootstrapPayload(bad)))
    const file = join(scratch, 'bad.yaml')
    await writeFile(file, bad)
    const validate = await execa(artefact.launcher, ['config', 'validate', file], { reject: false })
    expect(validate.exitCode).toBe(2)
    expect(answer.error).toBe(validate.stderr.replaceAll(file, 'cloud-config (agent.bootstrap)'))
    expect(answer.error).toMatch(/p2p\.minimum_nodes: got "three"[\s\S]*p2p\.vpn\.port[\s\S]*2 errors; config is not valid$/)
    expect(await readFile(box.calls, 'utf8')).toBe('')
  })

  it('reports a bad token as config validate does', async () => {
    const box = await newBox()
    const { answer } = await drive(box, 'agent.bootstrap', dataEvent('agent.bootstrap', bootstrapPayload(cloudConfig('p2p:\n  network_token: kp1notatoken\n'))))
    expect(answer.error).toMatch(/^error: .*\n1 error; config is not valid$/)
  })

  it('reports garbage on stdin, for any event', async () => {
    const box = await newBox()
    for (const [event, stdin] of [['agent.bootstrap', 'garbage'], ['agent.install', '{"name":'], ['agent.bootstrap', '[1,2]'], ['agent.bootstrap', '']] as const) {
      const { answer } = await drive(box, event, stdin)
      expect(answer.error, `${event} ${stdin}`).toMatch(/^kairos-p2p: stdin (is not JSON|holds an array|is empty)/)
    }
  })

  it('reports a bootstrap payload that is not the expected JSON', async () => {
    const box = await newBox()
    const cases: Array<[string, RegExp]> = [
      [JSON.stringify({ name: 'agent.bootstrap', data: 'not json', file: '' }), /payload is not JSON/],
      [JSON.stringify({ name: 'agent.bootstrap', data: '{"api":"x"}', file: '' }), /has no 'config'/],
      [JSON.stringify({ name: 'agent.bootstrap', data: 42, file: '' }), /field 'data' is number/]
    ]
    for (const [stdin, expected] of cases) expect((await drive(box, 'agent.bootstrap', stdin)).answer.error).toMatch(expected)
  })

  it('gives an unknown event an empty answer', async () => {
    const box = await newBox()
    const { answer } = await drive(box, 'agent.something-new', dataEvent('agent.something-new', { config: withToken() }))
    expect(answer).toEqual({ state: '', data: '', error: '', log: '' })
  })

  it('reports an empty config', async () => {
    const box = await newBox()
    const { answer } = await drive(box, 'agent.bootstrap', dataEvent('agent.bootstrap', bootstrapPayload('')))
    expect(answer.error).toMatch(/carries an empty config; expected the merged cloud-config/)
  })

  it('reports a payload file it cannot read, naming it', async () => {
    const box = await newBox()
    const missing = join(scratch, 'gone.json')
    const { answer } = await drive(box, 'agent.bootstrap', JSON.stringify({ name: 'agent.bootstrap', data: '', file: missing }))
    expect(answer.error).toBe(`kairos-p2p: cannot read the event's payload file ${missing}: no such file`)
    const dir = await drive(box, 'agent.bootstrap', JSON.stringify({ name: 'agent.bootstrap', data: '', file: scratch }))
    expect(dir.answer.error).toMatch(/payload file .* is a directory/)
  })

  it.skipIf(process.getuid?.() !== 0)('reports a full disk, naming the file (root: a full tmpfs)', async () => {
    const box = await newBox()
    await mkdir(box.root, { recursive: true })
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'kairos-p2p-test', box.root])
    try {
      await writeFile(join(box.root, 'filler'), Buffer.alloc(56 * 1024)).catch(() => {})
      await writeFile(join(box.root, 'filler2'), Buffer.alloc(64 * 1024)).catch(() => {})
      const { answer } = await drive(box, 'agent.bootstrap', dataEvent('agent.bootstrap', bootstrapPayload(withToken())))
      expect(answer.error).toMatch(/^kairos-p2p: cannot write .*usr\/local\/etc\/kairos-p2p\/cloud-config\.yaml: .*ENOSPC/)
      expect(await readFile(box.calls, 'utf8')).toBe('')
    } finally {
      await execa('umount', [box.root])
    }
  })

  it('reports a box without systemd, after writing the config', async () => {
    const box = await newBox('')
    const { answer } = await drive(box, 'agent.bootstrap', dataEvent('agent.bootstrap', bootstrapPayload(withToken())))
    expect(answer.error).toMatch(/no systemd: systemctl is not on PATH, so kairos-p2p\.service cannot be started/)
    expect(await readFile(join(box.root, BOX_CONFIG_PATH), 'utf8')).toContain(token)
  })

  it('reports a failing systemctl with its message', async () => {
    const box = await newBox('echo "Failed to connect to bus: No such file or directory" >&2; exit 1')
    const { answer } = await drive(box, 'agent.bootstrap', dataEvent('agent.bootstrap', bootstrapPayload(withToken())))
    expect(answer.error).toMatch(/kairos-p2p\.service not started: systemctl daemon-reload exited with code 1: Failed to connect to bus/)
  })

  it(`answers within ${ANSWER_BOUND_MS} ms when systemctl hangs`, async () => {
    const box = await newBox('exec /usr/bin/sleep 60')
    const { answer, ms } = await drive(box, 'agent.bootstrap', dataEvent('agent.bootstrap', bootstrapPayload(withToken())))
    expect(answer.error).toMatch(/systemctl daemon-reload timed out|no answer within/)
    expect(ms).toBeLessThan(ANSWER_BOUND_MS)
  })

  it(`answers within ${ANSWER_BOUND_MS} ms when stdin is never closed`, async () => {
    const box = await newBox()
    const started = performance.now()
    const child = execa(artefact.provider, ['agent.bootstrap'], {
      env: { PATH: box.bin, CALLS: box.calls, KAIROS_P2P_PROVIDER_ROOT: box.root }, extendEnv: false, reject: false, timeout: 20_000, stdin: 'pipe'
    })
    child.stdin.write('{"name":"agent.bootstrap",')
    const r = await child
    child.stdin.destroy()
    expect(performance.now() - started).toBeLessThan(ANSWER_BOUND_MS)
    expect(r.exitCode).toBe(0)
    expect((JSON.parse(r.stdout) as Answer).error).toMatch(/no answer within \d+ ms \(stdin not closed/)
  })
})

describe('the launcher', () => {
  it('runs the executable under both names', async () => {
    expect((await execa(artefact.launcher, ['--version'])).stdout).toBe('kairos-p2p 0.1.0')
    expect((await execa(artefact.provider, ['--version'])).stdout).toBe('agent-provider-kairos-p2p 0.1.0')
    // kairos-agent's own provider dir holds a symlink to the launcher.
    expect((await execa(join(artefact.dir, 'system/providers/agent-provider-kairos-p2p'), ['--version'])).stdout).toBe('agent-provider-kairos-p2p 0.1.0')
  })

  it('fails with one line on an older glibc, and as the provider with one JSON answer', async () => {
    const box = await newBox()
    await rm(join(box.bin, 'getconf'))
    await fake(box, 'getconf', 'echo "glibc 2.17"')
    const env = { PATH: box.bin }
    const cli = await execa(artefact.launcher, ['--version'], { env, extendEnv: false, reject: false })
    expect(cli.exitCode).toBe(1)
    expect(cli.stdout).toBe('')
    expect(cli.stderr).toMatch(/^kairos-p2p: needs glibc 2\.\d+ or later; this system has glibc 2\.17$/)
    const provider = await execa(artefact.provider, ['agent.bootstrap'], { env, extendEnv: false, reject: false, input: '{}' })
    expect(provider.exitCode).toBe(0)
    expect((JSON.parse(provider.stdout) as Answer).error).toMatch(/^kairos-p2p: needs glibc 2\.\d+ or later; this system has glibc 2\.17$/)
  })

  it('fails with one line without glibc', async () => {
    const box = await newBox()
    await rm(join(box.bin, 'getconf'))
    await fake(box, 'getconf', 'echo "getconf: Unrecognized variable" >&2; exit 1')
    const cli = await execa(artefact.launcher, ['--version'], { env: { PATH: box.bin }, extendEnv: false, reject: false })
    expect(cli.exitCode).toBe(1)
    expect(cli.stderr).toMatch(/^kairos-p2p: needs the GNU C library \(glibc\) 2\.\d+ or later; this system reports none/)
    expect(cli.stderr.trim().split('\n')).toHaveLength(1)
  })
})
