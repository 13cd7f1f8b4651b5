import { describe, expect, it } from 'vitest'
import {
  ConfigError, MAX_YAML_DEPTH, MAX_YAML_NODES, formatWarning, parseConfig, redactConfig
} from '../../config/index.ts'
import { callBounded } from '../helpers/bounded.ts'
import { command } from '../../cli/config.ts'
import type { CliIO } from '../../cli/io.ts'
import { encodeToken } from '../../token/index.ts'

const PROBES = new URL('./fixtures/probes.ts', import.meta.url)
/** Generous: the probes take milliseconds to a second; before the fix they took minutes. */
const BOUND_MS = 15_000
const TOKEN = encodeToken(new Uint8Array(32).fill(7))
// A Kairos/edgevpn token: base64 of a YAML document.
const KAIROS_TOKEN = Buffer.from('otp:\n  dht:\n    interval: 9000\n    key: 4DN5KCNFQOHGKFZYD4B3WJVBKG7B6ICXTEZDK4D6OVPOFIRFIMXQ\n    length: 6\n  crypto:\n    interval: 9000\n    key: MKXVXYEHS4FUFDTOSQIWJ4IXMH52R7FDDJGOXHE7AVNNEGCLRQMA\n    length: 6\nroom: KFZQN5KBNHWXEGVE44H5NC3OAX5LMWRG\nrendezvous: YSIRKZNZDBYTFLNXRXIDOYTDLEJXSZWS\nmdns: XYGXJHRVSNXTGYATSVMLKWVQCTJKKYZU\nmax_message_size: 20\n').toString('base64')

/** Every message the loader produced for `text`: errors and warnings, as printed. */
function messagesOf (text: string): string[] {
  try {
    return parseConfig([{ name: 'site.yaml', text }]).warnings.map(formatWarning)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    return [err.message, ...err.issues.map((i) => `${i.message} ${JSON.stringify(i.value) ?? ''}`)]
  }
}

/** Fails when any 8 consecutive characters of `secret` appear in `text`. */
function expectNoPiece (text: string, secret: string): void {
  for (let i = 0; i + 8 <= secret.length; i++) {
    expect(text.includes(secret.slice(i, i + 8)), `"${secret.slice(i, i + 8)}" (at ${i}) shown in: ${text}`).toBe(false)
  }
}

describe('secrets never appear in a config message', () => {
  it.each([
    ['p2p written as the token (the reported case)', `p2p: ${TOKEN}\n`, TOKEN],
    ['p2p written as a Kairos token', `p2p: ${KAIROS_TOKEN}\n`, KAIROS_TOKEN],
    ['the token in a list', `p2p: [${TOKEN}]\n`, TOKEN],
    ['the token as network_id', `p2p:\n  network_id: ${TOKEN}\n`, TOKEN],
    ['the token in an unknown key\'s place', `p2p:\n  ${TOKEN}: true\n`, TOKEN],
    ['the whole file is the token', `${TOKEN}\n`, TOKEN],
    ['network_token as a list', `p2p:\n  network_token: [${TOKEN}]\n`, TOKEN],
    ['a k3s token argument in a wrong shape', 'k3s: "--token=s3cr3t-k3s-value-123"\n', 's3cr3t-k3s-value-123'],
    ['a k3s token written as a mapping', 'k3s:\n  args:\n    - --token: s3cr3t-k3s-value-123\n', 's3cr3t-k3s-value-123'],
    ['a secret env value as a list', 'k3s:\n  env:\n    K3S_TOKEN: [s3cr3t-k3s-value-123]\n', 's3cr3t-k3s-value-123'],
    ['the token next to a bad value', `p2p:\n  network_token: ${TOKEN}\n  installer: {kind: exec, command: "${TOKEN}"}\n`, TOKEN]
  ])('%s', (_label, text, secret) => {
    const messages = messagesOf(text)
    expect(messages.length).toBeGreaterThan(0)
    for (const m of messages) expectNoPiece(m, secret)
  })

  it('config validate with p2p: written as the token prints none of it (it printed 58 of 62 characters)', async () => {
    let out = ''
    const io: CliIO = { stdout: (t) => { out += t }, stderr: (t) => { out += t }, readStdin: async () => `p2p: ${TOKEN}\n`, env: {}, signal: new AbortController().signal }
    expect(await command.run(['validate', '-'], io)).toBe(2)
    expect(out).toContain('p2p: got "<redacted>" (string), expected a mapping')
    expectNoPiece(out, TOKEN)
  })

  it('config validate --json blanks a token in the installer command', () => {
    const { config } = parseConfig([{ name: 'a.yaml', text: `p2p:\n  network_token: ${TOKEN}\n  installer: {kind: exec, command: [/usr/bin/join, "--token=s3cr3t-k3s-value-123", ${TOKEN}]}\n` }])
    const shown = JSON.stringify(redactConfig(config))
    expectNoPiece(shown, TOKEN)
    expectNoPiece(shown, 's3cr3t-k3s-value-123')
    expect(shown).toContain('"command":["/usr/bin/join","--token=<redacted>","<redacted>"]')
  })

  it('a YAML syntax error does not quote the token', () => {
    for (const m of messagesOf(`p2p:\n  network_token: "${TOKEN}\n  role: [\n`)) expectNoPiece(m, TOKEN)
  })
})

/** Seven anchors per level, each level's mapping repeating the previous one seven times. */
function aliasBomb (levels: number): string {
  const lines = ['stages:', '  l0: &a0 {a: 1, b: 1, c: 1, d: 1, e: 1, f: 1, g: 1}']
  for (let i = 1; i <= levels; i++) {
    const p = `*a${i - 1}`
    lines.push(`  l${i}: &a${i} {a: ${p}, b: ${p}, c: ${p}, d: ${p}, e: ${p}, f: ${p}, g: ${p}}`)
  }
  return lines.join('\n') + '\n'
}

describe('the YAML node budget', () => {
  it('refuses the 463-byte, 42-alias probe at once, naming the file and the limit', async () => {
    const text = aliasBomb(6)
    expect(text.length).toBeLessThan(500)
    // In a worker: before the budget this took minutes, and the test must fail, not hang.
    const r = await callBounded(PROBES, 'parseOne', ['bomb.yaml', text], BOUND_MS)
    expect(r).toMatchObject({ kind: 'error', name: 'ConfigTooLargeError', fields: { limit: MAX_YAML_NODES } })
    expect(r.kind === 'error' ? r.message : '').toMatch(/^bomb\.yaml: more than 100000 YAML nodes/)
  })

  it('counts each alias as the nodes it repeats: under the budget loads, over is refused', async () => {
    // l0 has 15 nodes (mapping, 7 keys, 7 values); level i: 1 + 7 × (1 + size(i-1)):
    // 15, 113, 799, 5601, 39215, 274513. Up to level 4 the document holds about 46 000.
    expect(await callBounded(PROBES, 'parseOne', ['ok.yaml', aliasBomb(4)], BOUND_MS)).toMatchObject({ kind: 'value' })
    expect(await callBounded(PROBES, 'parseOne', ['big.yaml', aliasBomb(5)], BOUND_MS)).toMatchObject({ kind: 'error', name: 'ConfigTooLargeError' })
  })

  it('an alias that nests an anchor deeper than the depth budget is refused', () => {
    const deep = (n: number): string => '['.repeat(n) + ']'.repeat(n)
    const half = Math.floor(MAX_YAML_DEPTH / 2) + 1
    const text = `a: &d ${deep(half)}\nb: ${'['.repeat(half)}*d${']'.repeat(half)}\n`
    expect(() => parseConfig([{ name: 'deep.yaml', text }])).toThrow(/nested more than 100 levels deep/)
  })

  it('a real config with anchors and merge keys still loads', () => {
    const text = [
      'x-common: &common {enabled: true, args: ["--disable=traefik"]}',
      'k3s:',
      '  <<: *common',
      'k3s-agent: *common',
      'p2p:',
      `  network_token: ${TOKEN}`
    ].join('\n') + '\n'
    const { config } = parseConfig([{ name: 'a.yaml', text }])
    expect(config.k3s).toMatchObject({ enabled: true, args: ['--disable=traefik'] })
    expect(config.k3sAgent).toMatchObject({ enabled: true })
  })
})

describe('deepMerge is linear in its input', () => {
  it('merges two 40 000-leaf documents at once and keeps the origin of every leaf', async () => {
    // In a worker: the quadratic merge took minutes on this size.
    const r = await callBounded(PROBES, 'mergeWide', [200, 200], BOUND_MS)
    expect(r).toMatchObject({
      kind: 'value',
      value: { value: 2, originOfLeaf: 'b.yaml', originOfReplaced: 'c.yaml', leafOfReplaced: false, origins: 199 * 200 + 1 }
    })
  })
})
