// `kairos-p2p vpn`: the overlay interface as the operator sees it, without the agent.
// `status` reads `wg show` and `ip` directly; `down` removes the interface (the agent
// leaves it up on stop because k3s depends on it). Loads no libp2p.
import { execa } from 'execa'
import type { CliIO, Command } from './io.ts'
import { parseCommandArgs } from './io.ts'
import { UsageError } from '../util/errors.ts'
import { isInterfaceName, type InterfaceDump } from '../vpn/driver.ts'
import { createWireGuardDriver } from '../vpn/wireguard-driver.ts'

/** Interface used when neither `--interface` nor `--config` is given (the config default). */
const DEFAULT_INTERFACE = 'kairos0'

const USAGE = `Usage: kairos-p2p vpn <subcommand> [options]

Subcommands:
  status   show the WireGuard interface, its peers, handshakes and traffic
  down     remove the interface and stop its wireguard-go

Options (both subcommands):
  --interface NAME   the interface (default ${DEFAULT_INTERFACE})
  --config FILE      read p2p.vpn.interface from a cloud-config (repeatable, later wins)
  --json             (status) print JSON
  --help             show help

Stop the agent before 'vpn down', or it brings the interface back on its next reconcile.
Exit codes: 0 ok, 1 runtime failure (status: no such interface), 2 bad input or usage.
`

/** The `vpn` command. */
export const command: Command = {
  summary: 'manage the WireGuard overlay interface',
  run: async (argv, io) => {
    const [sub, ...rest] = argv
    if (sub === '--help' || sub === '-h' || sub === 'help') { io.stdout(USAGE); return 0 }
    if (sub === undefined) { io.stderr(USAGE); return 2 }
    if (sub !== 'status' && sub !== 'down') throw new UsageError(`vpn: unknown subcommand '${sub}'; expected: status, down (see 'vpn --help')`)
    const { values } = parseCommandArgs(`vpn ${sub}`, rest, {
      interface: { type: 'string' },
      config: { type: 'string', multiple: true },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' }
    }, false)
    if (values.help === true) { io.stdout(USAGE); return 0 }
    if (values.json === true && sub === 'down') throw new UsageError("vpn down: --json applies to 'vpn status' only")
    const name = await interfaceName(`vpn ${sub}`, values.interface, values.config ?? [])
    return sub === 'down' ? await down(name, io) : await status(name, values.json === true, io)
  }
}

async function interfaceName (cmd: string, flag: string | undefined, configs: string[]): Promise<string> {
  if (flag !== undefined && configs.length > 0) throw new UsageError(`${cmd}: give --interface or --config, not both`)
  let name = flag ?? DEFAULT_INTERFACE
  if (configs.length > 0) {
    const { loadConfig } = await import('../config/index.ts')
    name = (await loadConfig(configs)).config.p2p.vpn.interface
  }
  if (!isInterfaceName(name)) throw new UsageError(`${cmd}: --interface got '${name}', expected 1–15 characters of letters, digits, '_', '.', '-'`)
  return name
}

async function down (name: string, io: CliIO): Promise<number> {
  const driver = createWireGuardDriver()
  const removed = await driver.remove(name, io.signal)
  io.stdout(removed ? `removed ${name}\n` : `${name}: no such interface (nothing to do)\n`)
  return 0
}

async function addresses (name: string, signal: AbortSignal): Promise<string[]> {
  const r = await execa('ip', ['-j', 'address', 'show', 'dev', name], { reject: false, cancelSignal: signal })
  if (r.failed) return []
  try {
    const parsed = JSON.parse(r.stdout) as Array<{ addr_info?: Array<{ local?: string, prefixlen?: number, scope?: string }> }>
    return (parsed[0]?.addr_info ?? []).filter((a) => a.scope !== 'link').map((a) => `${a.local ?? ''}/${a.prefixlen ?? ''}`)
  } catch {
    return []
  }
}

function bytes (n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let i = 0
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++ }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i] ?? ''}`
}

function age (handshakeSeconds: number, nowMs: number): string {
  if (handshakeSeconds === 0) return 'never'
  const s = Math.max(0, Math.round(nowMs / 1000 - handshakeSeconds))
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`
}

async function status (name: string, json: boolean, io: CliIO): Promise<number> {
  const driver = createWireGuardDriver()
  const dump: InterfaceDump | undefined = await driver.show(name, io.signal)
  if (dump === undefined) {
    io.stderr(`kairos-p2p vpn status: ${name}: no such WireGuard interface (or no permission to read it)\n`)
    return 1
  }
  const addrs = await addresses(name, io.signal)
  const now = Date.now()
  if (json) {
    io.stdout(JSON.stringify({
      interface: name,
      publicKey: dump.publicKey,
      listenPort: dump.listenPort,
      addresses: addrs,
      peers: dump.peers.map((p) => ({
        publicKey: p.publicKey,
        endpoint: p.endpoint ?? null,
        allowedIps: p.allowedIps,
        latestHandshake: p.latestHandshake * 1000,
        rxBytes: p.rxBytes,
        txBytes: p.txBytes,
        keepalive: p.keepalive
      }))
    }, null, 2) + '\n')
    return 0
  }
  const lines = [
    `interface ${name}`,
    `  address      ${addrs.length === 0 ? '(none)' : addrs.join(', ')}`,
    `  public key   ${dump.publicKey}`,
    `  listen port  ${dump.listenPort}`,
    `  peers        ${dump.peers.length}`
  ]
  for (const p of dump.peers) {
    lines.push(`peer ${p.publicKey}`,
      `  allowed ips  ${p.allowedIps.length === 0 ? '(none)' : p.allowedIps.join(', ')}`,
      `  endpoint     ${p.endpoint ?? '(none)'}`,
      `  handshake    ${age(p.latestHandshake, now)}`,
      `  transfer     ${bytes(p.rxBytes)} received, ${bytes(p.txBytes)} sent`)
  }
  io.stdout(lines.join('\n') + '\n')
  return 0
}
