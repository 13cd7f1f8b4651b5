import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { CliIO } from '../../cli/io.ts'
import { command } from '../../cli/vpn.ts'

function bufferIO (): CliIO & { out: string[], err: string[] } {
  const out: string[] = []
  const err: string[] = []
  return { out, err, stdout: (t) => { out.push(t) }, stderr: (t) => { err.push(t) }, readStdin: async () => '', env: {}, signal: new AbortController().signal }
}

describe('kairos-p2p vpn', () => {
  it('prints usage', async () => {
    const io = bufferIO()
    expect(await command.run(['--help'], io)).toBe(0)
    expect(io.out.join('')).toContain('vpn <subcommand>')
    const bare = bufferIO()
    expect(await command.run([], bare)).toBe(2)
  })

  it.each([
    [['bogus'], /unknown subcommand 'bogus'; expected: status, down/],
    [['down', '--interface', 'x', '--config', 'y'], /--interface or --config, not both/],
    [['down', '--interface', 'much-too-long-ifname'], /--interface got 'much-too-long-ifname', expected 1–15 characters/],
    [['down', '--json'], /--json applies to 'vpn status' only/],
    [['status', 'extra'], /unexpected argument 'extra'/],
    [['status', '--nope'], /vpn status: .*nope/]
  ])('%j is a usage error', async (argv, message) => {
    await expect(command.run(argv, bufferIO())).rejects.toMatchObject({ name: 'UsageError', exitCode: 2, message: expect.stringMatching(message) })
  })

  it('reads the interface from a cloud-config and reports a missing interface', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kairos-vpn-cli-'))
    try {
      const file = join(dir, 'config.yaml')
      await writeFile(file, '#cloud-config\np2p:\n  vpn:\n    interface: kvnone0\n')
      const io = bufferIO()
      expect(await command.run(['status', '--config', file], io)).toBe(1)
      expect(io.err.join('')).toContain('kvnone0: no such WireGuard interface')
      const down = bufferIO()
      expect(await command.run(['down', '--config', file], down)).toBe(0)
      expect(down.out.join('')).toBe('kvnone0: no such interface (nothing to do)\n')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
