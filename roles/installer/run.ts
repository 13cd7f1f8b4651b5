import { execa } from 'execa'
import { InstallerError } from './errors.ts'

/** Lines of a failed command's standard error kept in the error. */
export const STDERR_TAIL_LINES = 20

/** How `runCommand` runs a command. */
export interface RunOptions {
  /** The complete environment of the command (nothing else is inherited). */
  env: NodeJS.ProcessEnv
  /** Kills the command and rejects with the signal's reason. */
  signal?: AbortSignal
  /** Kills the command after this long. */
  timeoutMs: number
}

/**
 * Runs `argv` (no shell) and resolves with its output; any failure becomes an
 * `InstallerError` naming the command, its exit code and the tail of stderr.
 * The full result is not attached as `cause`: its stdout could echo a secret.
 */
export async function runCommand (argv: readonly string[], options: RunOptions): Promise<{ stdout: string, stderr: string }> {
  const [file, ...args] = argv
  if (file === undefined || file === '') throw new InstallerError('cannot run an empty command', { command: [...argv] })
  options.signal?.throwIfAborted()
  const result = await execa(file, args, {
    env: options.env,
    extendEnv: false,
    reject: false,
    stdin: 'ignore',
    timeout: options.timeoutMs,
    ...(options.signal === undefined ? {} : { cancelSignal: options.signal }),
    maxBuffer: 4 * 1024 * 1024
  })
  if (result.isCanceled && options.signal?.aborted === true) throw options.signal.reason
  if (!result.failed) return { stdout: String(result.stdout), stderr: String(result.stderr) }
  const shown = argv.join(' ')
  const stderrTail = tail(String(result.stderr ?? ''))
  const why = result.timedOut
    ? `timed out after ${options.timeoutMs} ms`
    : result.exitCode !== undefined
      ? `exited with code ${result.exitCode}`
      : result.signal !== undefined
        ? `was killed by ${result.signal}`
        : `could not start: ${result.originalMessage ?? result.shortMessage ?? 'unknown error'}`
  const lastLine = stderrTail.split('\n').at(-1) ?? ''
  throw new InstallerError(`${shown} ${why}${lastLine === '' ? '' : `: ${lastLine}`}`, {
    command: [...argv],
    ...(result.exitCode === undefined ? {} : { commandExitCode: result.exitCode }),
    stderrTail
  })
}

function tail (text: string): string {
  return text.trimEnd().split('\n').slice(-STDERR_TAIL_LINES).join('\n')
}
