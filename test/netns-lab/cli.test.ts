import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { command } from '../../cli/lab.ts'
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
    const b = io()
    expect(await command.run(['status', '--help'], b)).toBe(0)
    expect(b.out.join('')).toContain('power-cycle')
  })
  it.each([
    [['up'], /--nodes N is required/],
    [['up', '--nodes', 'x'], /--nodes 'x' is invalid/],
    [['up', '--nodes', '3', '--loss', '120'], /--loss '120' is invalid/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['exec', 'n1', 'ls'], /expected NODE -- CMD/],
    [['partition', 'n1'], /two node groups/],
    [['status', '--bogus'], /bogus/],
    [['up', '--nodes', '3', '--artefact', '/x'], /--artefact DIR goes with --from-artefact/]
  ])('%j is a usage error', async (argv, message) => {
    await expect(command.run(argv, io())).rejects.toMatchObject({ name: 'UsageError', exitCode: 2, message: expect.stringMatching(message) })
  })
  it('names the missing lab', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kairos-lab-cli-none-'))
    await expect(command.run(['status', '--dir', dir], io())).rejects.toMatchObject({ name: 'LabNotFoundError', message: expect.stringContaining(dir) })
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
    const d = io()
    expect(await command.run(['down', '--dir', dir], d)).toBe(0)
    expect(d.out.join('')).toMatch(new RegExp(`lab ${id} down: 3 namespaces`))
  })
})
