// Entry point of the `kairos-p2p` command, and of the Kairos provider when the program
// is called `agent-provider-kairos-p2p` (one executable on a box serves both). Signal
// handlers go in before any heavy module is imported (libp2p takes most of a second to
// load on a small CPU), so a SIGTERM during start-up still stops cleanly. Commands are
// loaded lazily: `token`, `config` and the provider never load libp2p. No top-level
// await: the self-contained executable runs this file bundled as CommonJS.
import type { Command } from './io.ts'
import { CALLED_AS_ENV, PROVIDER_NAME, calledAs } from '../box/called-as.ts'
import { SELF_CONTAINED } from '../util/bundled.ts'

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

/** The program's version. */
export const VERSION = '0.1.0'

const commands: Record<string, () => Promise<Command>> = {
  token: async () => (await import('./token.ts')).command,
  config: async () => (await import('./config.ts')).command,
  agent: async () => (await import('./agent.ts')).command,
  status: async () => (await import('./status.ts')).command,
  node: async () => (await import('./node.ts')).command,
  cluster: async () => (await import('./cluster.ts')).command,
  vpn: async () => (await import('./vpn.ts')).command,
  lab: SELF_CONTAINED ? labNotIncluded : async () => (await import('./lab.ts')).command
}

/** The lab drives a checkout (its bundler, its k3s stand-in): not part of the self-contained executable. */
async function labNotIncluded (): Promise<Command> {
  const { UsageError } = await import('../util/errors.ts')
  return {
    summary: 'not included',
    run: async () => { throw new UsageError('lab: not part of the self-contained executable; run it from a checkout (npx kairos-p2p lab …)') }
  }
}

const summaries: Record<string, string> = {
  token: 'generate, inspect and rotate network tokens',
  config: 'validate Kairos cloud-configs',
  agent: 'run the node agent',
  status: 'show the running agent\'s view of the site',
  node: 'list the site\'s nodes, remove and revoke a node',
  cluster: 'start a new cluster on purpose (cluster reset)',
  vpn: 'manage the WireGuard overlay interface',
  lab: 'build and drive a whole edge site in network namespaces'
}

function usage (): string {
  const lines = Object.keys(commands).map((name) => `  ${name.padEnd(8)} ${summaries[name] ?? ''}`)
  return `Usage: kairos-p2p <command> [options]\n\nCommands:\n${lines.join('\n')}\n\nOptions:\n  --help     show help (also after a command)\n  --version  print the version\n\nExit codes: 0 ok, 1 runtime failure, 2 bad input or usage.\n`
}

async function main (argv: string[]): Promise<number> {
  const { KairosError, errorMessage } = await import('../util/errors.ts')
  const { createProcessIO } = await import('./io.ts')
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

/** Runs the provider protocol: one event on stdin, one JSON answer on stdout, exit 0. */
async function provider (argv: string[]): Promise<number> {
  const { runProvider } = await import('../box/provider.ts')
  return await runProvider(argv, { version: VERSION })
}

function finish (code: number): void {
  process.exitCode = code
  // The command is done (an agent has stopped and saved its state): a timer or socket some
  // library forgot to release must not keep the process, and so its supervisor, waiting.
  setTimeout(() => { process.exit(code) }, EXIT_GRACE_MS).unref()
}

const name = calledAs(process.env, process.argv0, process.argv[1])
// Not inherited by what the agent starts (k3s, wireguard-go, the exec installer).
delete process.env[CALLED_AS_ENV]
// The provider's answer is out (stdout to a pipe is written synchronously): kairos-agent
// reads it at exit, and a pending stdin read must not hold the process.
const done = name === PROVIDER_NAME ? (code: number) => { process.exit(code) } : finish
void (name === PROVIDER_NAME ? provider(process.argv.slice(2)) : main(process.argv.slice(2))).then(done, (err: unknown) => {
  process.stderr.write(`kairos-p2p: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
  finish(1)
})
