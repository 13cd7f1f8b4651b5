// `kairos-p2p config`: checks Kairos cloud-configs the way the agent reads them.
// Loads only the config loader (no libp2p).
import type { Command, CliIO } from './io.ts'
import { parseCommandArgs } from './io.ts'
import { UsageError } from '../util/errors.ts'
import { ConfigError, formatWarning, isPresetName, parseConfig, readConfigFile, redactConfig, PRESET_NAMES, type Config } from '../config/index.ts'

const USAGE = `Usage: kairos-p2p config <subcommand> [options]

Subcommands:
  validate FILE…   check cloud-configs (merged in order, later wins) and summarise them

Options:
  --help           show help

Exit codes: 0 ok, 1 runtime failure, 2 bad input or usage.
`

const VALIDATE_USAGE = `Usage: kairos-p2p config validate FILE… [--json] [--preset lan|lab]

Reads one or more Kairos cloud-configs (FILE - reads standard input), merges them in order (later files win,
mappings merge, lists are replaced) and checks every p2p, k3s and k3s-agent key.
Other Kairos keys (users, hostname, write_files, stages, …) are accepted and ignored;
Go-template expressions such as {{ trunc 4 .MachineID }} are left unrendered.

Prints a summary (the network token is never shown) and warnings on stderr; on
invalid input prints every problem on stderr and exits 2.

Options:
  --json           print the resolved config as JSON (secrets redacted)
  --preset NAME    timing preset, one of: ${PRESET_NAMES.join(', ')} (overrides p2p.preset)
  --help           show this help

Exit codes: 0 valid, 2 invalid config, unreadable file or bad usage.
`

/** The `config` command. */
export const command: Command = {
  summary: 'validate Kairos cloud-configs',
  run: async (argv, io) => {
    const [sub, ...rest] = argv
    if (sub === '--help' || sub === '-h' || sub === 'help') {
      io.stdout(USAGE)
      return 0
    }
    if (sub === undefined) {
      io.stderr(USAGE)
      return 2
    }
    if (sub !== 'validate') throw new UsageError(`config: unknown subcommand '${sub}'; expected: validate (see 'config --help')`)
    return await validate(rest, io)
  }
}

async function validate (argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseCommandArgs('config validate', argv, {
    json: { type: 'boolean' },
    preset: { type: 'string' },
    help: { type: 'boolean', short: 'h' }
  })
  if (values.help === true) {
    io.stdout(VALIDATE_USAGE)
    return 0
  }
  if (positionals.length === 0) throw new UsageError("config validate: expected at least one FILE (see 'config validate --help')")
  const preset = values.preset
  if (preset !== undefined && !isPresetName(preset)) {
    throw new UsageError(`config validate: --preset got '${preset}', expected one of: ${PRESET_NAMES.join(', ')}`)
  }
  const texts: Array<{ name: string, text: string }> = []
  for (const file of positionals) texts.push(file === '-' ? { name: '<stdin>', text: await io.readStdin() } : await readConfigFile(file))
  let loaded
  try {
    loaded = parseConfig(texts, preset === undefined ? {} : { preset })
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const issue of err.issues) {
        const from = issue.source !== undefined && positionals.length > 1 && !issue.message.startsWith(issue.source) ? ` (in ${issue.source})` : ''
        io.stderr(`error: ${issue.message}${from}\n`)
      }
      io.stderr(`${err.issues.length} error${err.issues.length === 1 ? '' : 's'}; config is not valid\n`)
      return 2
    }
    throw err
  }
  for (const warning of loaded.warnings) io.stderr(`warning: ${formatWarning(warning)}\n`)
  const token = loaded.config.p2p.networkToken
  if (token !== '' && !token.includes('{{')) {
    const { parseConfiguredToken, TokenError } = await import('../token/index.ts')
    try {
      parseConfiguredToken(token)
    } catch (err) {
      if (!(err instanceof TokenError)) throw err
      io.stderr(`error: ${err.message}\n1 error; config is not valid\n`)
      return 2
    }
  }
  if (values.json === true) io.stdout(`${JSON.stringify(redactConfig(loaded.config), null, 2)}\n`)
  else io.stdout(summary(loaded.config, loaded.sources))
  return 0
}

function summary (config: Config, sources: string[]): string {
  const p = config.p2p
  const role = p.role === 'auto' ? (p.autoEnable ? 'auto (elected)' : 'auto (automatic roles disabled)') : p.role
  const ha = p.haEnable ? `on, ${1 + p.haMasterNodes} servers` : 'off'
  const vpn = p.vpn.create
    ? `${p.vpn.cidr} on ${p.vpn.interface}, udp ${p.vpn.port}, mtu ${p.vpn.mtu}${p.vpn.use ? '' : ' (not used by k3s)'}`
    : 'not created'
  const installer = p.installer.kind === 'k3s'
    ? `k3s (root ${p.installer.root})`
    : p.installer.kind === 'exec' ? `exec ${JSON.stringify(p.installer.command)}` : 'dry-run'
  const discovery = [p.mdns ? 'mdns' : '', p.disableDht ? '' : 'dht', p.bootstrapPeers.length > 0 ? `${p.bootstrapPeers.length} bootstrap peer(s)` : '']
    .filter((s) => s !== '').join(', ')
  const rows: Array<[string, string]> = [
    ['token', p.networkToken === '' ? 'not set' : 'set (not shown)'],
    ['network id', p.networkId === '' ? '(default)' : p.networkId],
    ['role', role],
    ['minimum nodes', String(p.minimumNodes)],
    ['ha', ha],
    ['discovery', discovery],
    ['vpn', vpn],
    ['installer', installer],
    ['k3s', `${config.k3s.enabled ? 'enabled' : 'not enabled'}${config.k3s.args.length > 0 ? `, args ${config.k3s.args.join(' ')}` : ''}`],
    ['state dir', p.stateDir],
    ['preset', p.preset]
  ]
  const head = `valid: ${sources.join(', ')}\n`
  return head + rows.map(([k, v]) => `  ${`${k}:`.padEnd(15)} ${v}\n`).join('')
}
