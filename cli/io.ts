import { parseArgs, type ParseArgsConfig } from 'node:util'
import { UsageError } from '../util/errors.ts'

/** What a command may touch: its output streams and stdin. Tests pass buffers. */
export interface CliIO {
  stdout: (text: string) => void
  stderr: (text: string) => void
  readStdin: () => Promise<string>
  env: NodeJS.ProcessEnv
  /** Aborts on SIGTERM / SIGINT; long-running commands (agent, lab) stop when it fires. */
  signal: AbortSignal
  /** Ends the process at once (after a fatal error). @default process.exit in the real process; tests leave it out */
  exit?: (code: number) => void
}

/** A command module: `run` returns the exit code (0 ok, 1 runtime failure, 2 bad input). */
export interface Command {
  summary: string
  run: (argv: string[], io: CliIO) => Promise<number>
}

/** The real process's streams; `signal` is wired to SIGTERM/SIGINT by `cli/main.ts`. */
export function createProcessIO (signal: AbortSignal): CliIO {
  return {
    stdout: (t) => { process.stdout.write(t) },
    stderr: (t) => { process.stderr.write(t) },
    readStdin: async () => {
      const chunks: Buffer[] = []
      for await (const c of process.stdin) chunks.push(c as Buffer)
      return Buffer.concat(chunks).toString('utf8')
    },
    env: process.env,
    signal,
    exit: (code) => { process.exit(code) }
  }
}

/**
 * `node:util` parseArgs with errors turned into `UsageError` naming the command,
 * so a wrong flag exits 2 with a message that says what was expected.
 */
export function parseCommandArgs<T extends NonNullable<ParseArgsConfig['options']>> (
  command: string, argv: string[], options: T, allowPositionals = true
): { values: ReturnType<typeof parseArgs<{ options: T, args: string[], allowPositionals: true, strict: true }>>['values'], positionals: string[] } {
  try {
    const parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true })
    if (!allowPositionals && parsed.positionals.length > 0) {
      throw new UsageError(`${command}: unexpected argument '${parsed.positionals[0]}' (see '${command} --help')`)
    }
    return { values: parsed.values, positionals: parsed.positionals }
  } catch (err) {
    if (err instanceof UsageError) throw err
    const msg = err instanceof Error ? err.message : String(err)
    throw new UsageError(`${command}: ${msg} (see '${command} --help')`)
  }
}
