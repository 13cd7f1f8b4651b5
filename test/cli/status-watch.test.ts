// `kairos-p2p status --watch` against a running agent: through a pseudo-terminal
// (util-linux `script`) it redraws in place; on a pipe it prints one line per change.
// And `status --json` with no agent still prints JSON.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { formatSite, statusChanges } from '../../cli/status.ts'
import type { AgentStatus } from '../../agent/status.ts'
import { startLoneAgent, type LoneAgent } from '../helpers/lone-agent.ts'

const bin = join(import.meta.dirname, '..', '..', 'bin', 'kairos-p2p.js')
const node = process.execPath
const hasScript = (await execa('script', ['--version'], { reject: false })).exitCode === 0
let lone: LoneAgent | undefined
let root = ''
let agent: LoneAgent['agent'] | undefined

beforeAll(async () => {
  lone = await startLoneAgent({ name: 'watch', tokenByte: 31 })
  root = lone.root
  agent = lone.agent
}, 30_000)

afterAll(async () => { await lone?.stop() })

const CLEAR = '\x1b[H\x1b[2J'

describe('status --watch', () => {
  it.skipIf(!hasScript)('on a terminal: clears and redraws the site view in place, each refresh', async () => {
    const cmd = [node, bin, 'status', '--watch', '--count', '2', '--interval', '0.2', '--state-dir', join(root, 'state')].join(' ')
    const r = await execa('script', ['-q', '-e', '-c', cmd, '/dev/null'], { reject: false, timeout: 30_000, env: { COLUMNS: '160', TERM: 'xterm' } })
    expect(r.exitCode).toBe(0)
    const frames = r.stdout.split(CLEAR).slice(1)
    expect(frames).toHaveLength(2)
    for (const f of frames) {
      expect(f).toContain(`node ${agent?.peerId.slice(0, 8) ?? ''}`)
      expect(f).toMatch(/phase discovering/)
      expect(f).toMatch(/why\s+looking for other nodes/)
      expect(f).toMatch(/MEMBER\s+LIVENESS\s+LAST SEEN\s+ROLE\s+PHASE\s+OVERLAY\s+HANDSHAKE/)
      expect(f).toContain('(self)')
      expect(f).toMatch(/timeline\s+\+\s*\d+\.\d\ds\s+started/)
    }
  }, 40_000)

  it('on a pipe: plain lines, what changed, no terminal control codes', async () => {
    const r = await execa(node, [bin, 'status', '--watch', '--count', '2', '--interval', '0.2', '--state-dir', join(root, 'state')], { reject: false, timeout: 30_000 })
    expect(r.exitCode).toBe(0)
    expect(r.stdout).not.toContain('\x1b')
    const lines = r.stdout.trim().split('\n')
    expect(lines[0]).toMatch(new RegExp(`^\\d\\d:\\d\\d:\\d\\d node ${agent?.peerId ?? ''} phase discovering$`))
    expect(lines.some((l) => /why looking for other nodes/.test(l))).toBe(true)
    expect(lines.some((l) => /timeline \+\d+\.\d\ds started/.test(l))).toBe(true)
    // The second refresh found nothing new: no line repeats.
    expect(new Set(lines).size).toBe(lines.length)
  }, 40_000)

  it('bad --watch options are usage errors', async () => {
    const r = await execa(node, [bin, 'status', '--watch', '--interval', '0', '--state-dir', root], { reject: false })
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain("--interval '0' is invalid; expected seconds from 0.1 to 3600")
    const s = await execa(node, [bin, 'status', '--json', '--watch', '--state-dir', root], { reject: false })
    expect(s.exitCode).toBe(2)
  })
})

describe('status --json without an agent', () => {
  it('prints a JSON error naming the socket on stdout, the message on stderr, and exits 1', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kp2p-nojson-'))
    const r = await execa(node, [bin, 'status', '--json', '--state-dir', dir], { reject: false })
    await rm(dir, { recursive: true, force: true })
    expect(r.exitCode).toBe(1)
    const out = JSON.parse(r.stdout) as { error: { name: string, message: string, socket: string } }
    expect(out.error.name).toBe('AgentUnreachableError')
    expect(out.error.socket).toBe(join(dir, 'agent.sock'))
    expect(r.stderr).toContain(join(dir, 'agent.sock'))
  })
})

describe('formatSite and statusChanges', () => {
  const base: AgentStatus = {
    peerId: '12D3KooWSelf000000000000000000000000000000000000aaaa',
    fingerprint: 'kp-1', networkId: '', startedAt: 1_000_000, now: 1_010_000, phase: 'installing', role: 'agent',
    leader: '12D3KooWInit000000000000000000000000000000000000iiii', term: 3, warnings: [], addresses: [],
    peers: [{ id: '12D3KooWInit000000000000000000000000000000000000iiii', addresses: [], liveness: 'alive', lastSeen: 1_009_000, discoveredBy: 'mdns' }],
    state: { entries: 1, bytes: 1 }, rejections: {}, admissionFailures: 0,
    overlay: { address: '10.88.0.2', peers: [{ peerId: '12D3KooWInit000000000000000000000000000000000000iiii', allowedIps: ['10.88.0.1/32'], latestHandshake: 1_008_000, up: true }] },
    site: [{ peerId: '12D3KooWSelf000000000000000000000000000000000000aaaa' }, { peerId: '12D3KooWInit000000000000000000000000000000000000iiii', role: 'init', phase: 'joined', address: '10.88.0.1' }],
    timeline: [{ event: 'started', at: 1_000_000 }, { event: 'elected', at: 1_004_000 }]
  }

  it('one row per member with liveness, published role and phase, overlay address and handshake age', () => {
    const text = formatSite(base)
    expect(text).toMatch(/12D3KooW…00aaaa \(self\)\s+self\s+-\s+agent\s+installing\s+10\.88\.0\.2\s+-/)
    expect(text).toMatch(/12D3KooW…00iiii\s+alive\s+1s ago\s+init\s+joined\s+10\.88\.0\.1\s+up 2s ago/)
    expect(text).toContain('term 3')
    expect(formatSite(base, 20).split('\n').every((l) => l.length <= 20)).toBe(true)
  })

  it('lists what changed, once', () => {
    const next: AgentStatus = { ...base, now: 1_012_000, phase: 'joined', peers: [{ ...base.peers[0] as AgentStatus['peers'][number], liveness: 'dead' }], timeline: [...base.timeline, { event: 'joined', at: 1_011_000 }] }
    expect(statusChanges(base, next)).toEqual([
      expect.stringMatching(/ phase joined role agent$/),
      expect.stringMatching(/ member 12D3KooWInit\S+ alive → dead$/),
      expect.stringMatching(/ timeline \+11\.00s joined$/)
    ])
    expect(statusChanges(next, next)).toEqual([])
  })
})
