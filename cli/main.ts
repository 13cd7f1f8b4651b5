// Entry point of the `kairos-p2p` command. Signal handlers go in before any heavy
// module is imported (libp2p takes most of a second to load on a small CPU), so a
// SIGTERM during start-up still stops cleanly. Commands are loaded lazily: `token`
// and `config` never load libp2p.
/** How long the process may linger once its command has returned, ms. */
const EXIT_GRACE_MS = 1_000
const shutdown = new AbortController()
let signalled = 0
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    signalled++
    if (signalled > 1) process.exit(130)
    shutdown.abort(new Error(`received ${sig}`))
  })
}
// A closed stdout (`| head`) must not turn into an error loop.
process.stdout.on('error', (err: NodeJS.ErrnoException) => { if (err.code === 'EPIPE') process.exitCode ??= 0 })

const { KairosError, errorMessage } = await import('../util/errors.ts')
const { createProcessIO } = await import('./io.ts')
type Command = import('./io.ts').Command

export const VERSION = '0.1.0'

const commands: Record<string, () => Promise<Command>> = {
  token: async () => (await import('./token.ts')).command,
  config: async () => (await import('./config.ts')).command,
  agent: async () => (await import('./agent.ts')).command,
  status: async () => (await import('./status.ts')).command,
  vpn: async () => (await import('./vpn.ts')).command,
  lab: async () => (await import('./lab.ts')).command
}

const summaries: Record<string, string> = {
  token: 'generate and inspect network tokens',
  config: 'validate Kairos cloud-configs',
  agent: 'run the node agent',
  status: 'show the running agent\'s view of the site',
  vpn: 'manage the WireGuard overlay interface',
  lab: 'build and drive a whole edge site in network namespaces'
}

function usage (): string {
  const lines = Object.keys(commands).map((name) => `  ${name.padEnd(8)} ${summaries[name] ?? ''}`)
  return `Usage: kairos-p2p <command> [options]\n\nCommands:\n${lines.join('\n')}\n\nOptions:\n  --help     show help (also after a command)\n  --version  print the version\n\nExit codes: 0 ok, 1 runtime failure, 2 bad input or usage.\n`
}

async function main (argv: string[]): Promise<number> {
  const io = createProcessIO(shutdown.signal)
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout(usage())
    return name === undefined ? 2 : 0
  }
  if (name === '--version' || name === '-V') {
    io.stdout(`kairos-p2p ${VERSION}\n`)
    return 0
  }
  const load = commands[name]
  if (load === undefined) {
    io.stderr(`kairos-p2p: unknown command '${name}'; expected one of: ${Object.keys(commands).join(', ')}\n`)
    return 2
  }
  try {
    const command = await load()
    return await command.run(rest, io)
  } catch (err) {
    if (err instanceof KairosError) {
      // Messages of subcommands often start with their own name ("config validate: …").
      const named = err.message.startsWith(`${name}:`) || err.message.startsWith(`${name} `)
      io.stderr(`kairos-p2p ${named ? '' : `${name}: `}${err.message}\n`)
      return err.exitCode
    }
    io.stderr(`kairos-p2p ${name}: ${errorMessage(err)}\n`)
    if (process.env.KAIROS_P2P_DEBUG !== undefined && err instanceof Error) io.stderr(`${err.stack ?? ''}\n`)
    return 1
  }
}

const code = await main(process.argv.slice(2))
process.exitCode = code
// The command is done (an agent has stopped and saved its state): a timer or socket some
// library forgot to release must not keep the process, and so its supervisor, waiting.
setTimeout(() => { process.exit(code) }, EXIT_GRACE_MS).unref()
