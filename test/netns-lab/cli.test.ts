import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { command, formatLabStatus } from '../../cli/lab.ts'
import type { CliIO } from '../../cli/io.ts'

const isRoot = process.getuid?.() === 0

function io (): CliIO & { out: string[], err: string[] } {
  const out: string[] = []
  const err: string[] = []
  return {
    out, err,
    stdout: (t) => { out.push(t) },
    stderr: (t) => { err.push(t) },
    readStdin: async () => '',
    env: {},
    signal: new AbortController().signal
  }
}

describe('kairos-p2p lab (usage)', () => {
  it('prints help for lab --help and for a subcommand --help', async () => {
    const a = io()
    expect(await command.run(['--help'], a)).toBe(0)
    expect(a.out.join('')).toContain('lab <command>')
    expect(a.out.join('')).toContain("'kairos-p2p lab <command> --help'")
    // Each subcommand's own options and defaults.
    const b = io()
    expect(await command.run(['status', '--help'], b)).toBe(0)
    expect(b.out.join('')).toMatch(/^Usage: kairos-p2p lab status \[--json\]/)
    expect(b.out.join('')).not.toContain('--partition A/B')
    const c = io()
    expect(await command.run(['up', '--help'], c)).toBe(0)
    const up = c.out.join('')
    expect(up).toMatch(/^Usage: kairos-p2p lab up --nodes N/)
    expect(up).toMatch(/--min M\s+p2p.minimum_nodes of every host \(default: --config's, else a\s+strict majority/)
    for (const o of ['--host NODES=FILE', '--token-for NODES=T', '--site NODES[=T]', '--partition A/B', '--timeout SEC         how long --wait waits (default 120)']) expect(up).toContain(o)
    const d = io()
    expect(await command.run(['down', '--help'], d)).toBe(0)
    expect(d.out.join('')).toContain('--purge           remove the report files too')
    const e = io()
    expect(await command.run(['help', 'kill'], e)).toBe(0)
    expect(e.out.join('')).toMatch(/^Usage: kairos-p2p lab kill \[--agent\] NODE/)
  })
  it.each([
    [['up'], /--nodes N is required/],
    [['up', '--nodes', 'x'], /--nodes 'x' is invalid/],
    [['up', '--nodes', '3', '--loss', '120'], /--loss '120' is invalid/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['exec', 'n1', 'ls'], /expected NODE -- CMD/],
    [['partition', 'n1'], /two node groups/],
    [['status', '--bogus'], /bogus/],
    [['up', '--nodes', '3', '--artefact', '/x'], /--artefact DIR goes with --from-artefact/],
    [['up', '--nodes', '4', '--partition', 'n1/n2', '--wait'], /a partitioned site never forms/],
    [['down', '--keep-files', '--purge'], /--keep-files or --purge, not both/]
  ])('%j is a usage error', async (argv, message) => {
    await expect(command.run(argv, io())).rejects.toMatchObject({ name: 'UsageError', exitCode: 2, message: expect.stringMatching(message) })
  })
  it('a partition with a node on both sides is refused before anything is built', async () => {
    await expect(command.run(['up', '--nodes', '4', '--partition', 'n1-n2/n2-n4', '--no-agents', '--dir', '/nonexistent'], io()))
      .rejects.toMatchObject({ name: 'LabInputError', exitCode: 2, message: expect.stringContaining('puts n2 on both sides; expected disjoint groups') })
  })
  it('lab status shows why each node not done yet waits, its warnings, and an agent that does not answer', () => {
    const node = { ns: 'x', segment: 0, powered: true, running: true, handshakes: { up: 0, total: 0 }, peers: 1, joined: false, init: false }
    const text = formatLabStatus({
      id: 'ab', at: 0, clusters: [],
      nodes: [
        { ...node, name: 'n1', address: '10.100.0.10', phase: 'waiting', reason: 'waiting for 1 more node: minimum_nodes is 3 (for 4 s): boot more boxes' },
        { ...node, name: 'n2', address: '10.100.0.11', phase: 'installing', reason: 'the installer failed once', warnings: ['installer failed once, last 2 s ago: HTTP 401 token not accepted; next try in 28 s'] },
        { ...node, name: 'n3', address: '10.100.0.12', error: 'no agent answers' },
        { ...node, name: 'n4', address: '10.100.0.13', phase: 'joined', role: 'agent', registeredEarlier: '10.88.0.9' }
      ]
    })
    // n4's host name is registered, by an earlier identity of n4 (its host was wiped since).
    expect(text).toMatch(/n4\s+10\.100\.0\.13\s+running\s+joined\s+agent\s+-\s+-\s+1\s+no \(10\.88\.0\.9 is an earlier n4\)/)
    expect(text).toContain('\nn1   waiting: waiting for 1 more node: minimum_nodes is 3 (for 4 s): boot more boxes\n')
    expect(text).toContain('n2   warning: installer failed once, last 2 s ago: HTTP 401 token not accepted; next try in 28 s')
    expect(text).toContain('n3   no answer: no agent answers')
  })
  it('names the missing lab', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kairos-lab-cli-none-'))
    await expect(command.run(['status', '--dir', dir], io())).rejects.toMatchObject({ name: 'LabNotFoundError', message: expect.stringContaining(`no labs under ${dir}`) })
    await rm(dir, { recursive: true, force: true })
  })
})

describe.skipIf(!isRoot)('kairos-p2p lab (root)', () => {
  let dir = ''
  const id = `c${(process.pid % 1000).toString(36)}`
  afterAll(async () => {
    if (dir !== '') {
      await command.run(['down', '--dir', dir, '--id', id], io()).catch(() => 1)
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('up --no-agents, status (table and JSON), exec, partition, heal, down', async () => {
    dir = await mkdtemp(join(tmpdir(), 'kairos-lab-cli-'))
    const u = io()
    expect(await command.run(['up', '--nodes', '2', '--id', id, '--dir', dir, '--min', '2', '--no-agents'], u)).toBe(0)
    expect(u.out.join('')).toContain(`lab ${id} up: 2 hosts on 1 segment`)
    const s = io()
    expect(await command.run(['status', '--dir', dir, '--json'], s)).toBe(0)
    const st = JSON.parse(s.out.join('')) as { id: string, nodes: Array<{ name: string, address: string }> }
    expect(st.id).toBe(id)
    expect(st.nodes.map((n) => n.name)).toEqual(['n1', 'n2'])
    const h = io()
    expect(await command.run(['status', '--dir', dir], h)).toBe(0)
    expect(h.out.join('')).toMatch(/NODE\s+ADDRESS\s+AGENT/)
    const target = st.nodes[1]?.address ?? ''
    expect(await command.run(['exec', '--dir', dir, 'n1', '--', 'ping', '-c', '1', '-W', '2', target], io())).toBe(0)
    expect(await command.run(['partition', '--dir', dir, 'n1', 'n2'], io())).toBe(0)
    expect(await command.run(['exec', '--dir', dir, 'n1', '--', 'ping', '-c', '1', '-W', '1', target], io())).not.toBe(0)
    expect(await command.run(['heal', '--dir', dir], io())).toBe(0)
    expect(await command.run(['exec', '--dir', dir, 'n1', '--', 'ping', '-c', '1', '-W', '2', target], io())).toBe(0)
    // The report stays after down (unless --purge); down of a lab that is not there names those that are.
    expect(await command.run(['report', '--dir', dir], io())).toBe(0)
    await expect(command.run(['down', '--dir', dir, '--id', 'nosuch'], io())).rejects.toMatchObject({ name: 'LabNotFoundError', message: `no lab 'nosuch' under ${dir}: nothing removed; labs there: ${id}` })
    const d = io()
    expect(await command.run(['down', '--dir', dir], d)).toBe(0)
    expect(d.out.join('')).toMatch(new RegExp(`lab ${id} down: 3 namespaces`))
    expect(d.out.join('')).toContain(`kept ${join(dir, id, 'timeline.json')}, ${join(dir, id, 'timeline.svg')} (--purge removes them)`)
    expect(existsSync(join(dir, id, 'timeline.svg'))).toBe(true)
    expect(existsSync(join(dir, id, 'lab.json'))).toBe(false)
    expect(existsSync(join(dir, id, 'hosts'))).toBe(false)
    const again = io()
    expect(await command.run(['down', '--dir', dir, '--id', id], again)).toBe(0)
    expect(again.out.join('')).toBe(`lab ${id} is down already; ${join(dir, id)} holds timeline.json, timeline.svg (--purge removes them)\n`)
    expect(await command.run(['down', '--dir', dir, '--id', id, '--purge'], io())).toBe(0)
    expect(existsSync(join(dir, id))).toBe(false)
  })

  it('up --partition cuts the groups from boot; --site gives hosts a token of their own', async () => {
    dir = dir === '' ? await mkdtemp(join(tmpdir(), 'kairos-lab-cli-')) : dir
    const u = io()
    expect(await command.run(['up', '--nodes', '3', '--id', id, '--dir', dir, '--no-agents', '--partition', 'n1/n2-n3', '--site', 'n3'], u)).toBe(0)
    expect(u.out.join('')).toContain('partitioned from boot: n1 | n2,n3\nsite of its own (its own token, minimum_nodes 1): n3\n')
    const s = io()
    expect(await command.run(['status', '--dir', dir, '--json'], s)).toBe(0)
    const st = JSON.parse(s.out.join('')) as { nodes: Array<{ name: string, address: string }> }
    const addr = (n: string): string => st.nodes.find((x) => x.name === n)?.address ?? ''
    expect(await command.run(['exec', '--dir', dir, 'n1', '--', 'ping', '-c', '1', '-W', '1', addr('n2')], io())).not.toBe(0)
    expect(await command.run(['exec', '--dir', dir, 'n2', '--', 'ping', '-c', '1', '-W', '2', addr('n3')], io())).toBe(0)
    const config = async (n: string): Promise<string> => await readFile(join(dir, id, 'hosts', n, 'cloud-config.yaml'), 'utf8')
    const token = (text: string): string => /network_token: (\S+)/.exec(text)?.[1] ?? ''
    expect(token(await config('n3'))).not.toBe(token(await config('n1')))
    expect(token(await config('n2'))).toBe(token(await config('n1')))
    // Each site's strict majority: n1–n2 need 2, n3 alone 1.
    expect(await config('n1')).toContain('minimum_nodes: 2')
    expect(await config('n3')).toContain('minimum_nodes: 1')
    const d = io()
    expect(await command.run(['down', '--dir', dir, '--purge'], d)).toBe(0)
    expect(existsSync(join(dir, id))).toBe(false)
  })
})
