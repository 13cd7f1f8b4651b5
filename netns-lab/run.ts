import { execa } from 'execa'
import { LabCommandError } from './errors.ts'

/** Per-call options of a Runner. */
export interface RunOptions {
  /** Aborts the command (it is killed). */
  signal?: AbortSignal
  /** Text written to the command's stdin. */
  input?: string
  /** Throw LabCommandError on a non-zero exit. @default true */
  reject?: boolean
  /** Environment of the command. @default this process's */
  env?: NodeJS.ProcessEnv
}

/** Exit code and output of a finished command. */
export interface RunResult {
  exitCode: number
  stdout: string
  stderr: string
}

/** Runs one external program from an argument array (never a shell string). */
export type Runner = (argv: readonly string[], options?: RunOptions) => Promise<RunResult>

/** Options of `createRunner`. */
export interface RunnerInit {
  /** Kill a command that runs longer than this, ms. @default 20000 */
  timeoutMs?: number
}

/** Default per-command timeout of the real runner, ms. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 20_000

/** The real runner, on execa; failures become LabCommandError naming the command. */
export function createRunner (init: RunnerInit = {}): Runner {
  const timeout = init.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS
  return async (argv, options = {}) => {
    const [file, ...args] = argv
    if (file === undefined) throw new LabCommandError([], 'empty command')
    const result = await execa(file, args, {
      reject: false,
      timeout,
      ...(options.signal === undefined ? {} : { cancelSignal: options.signal }),
      ...(options.input === undefined ? { stdin: 'ignore' as const } : { input: options.input }),
      ...(options.env === undefined ? {} : { env: options.env, extendEnv: false }),
      stripFinalNewline: true
    })
    const out: RunResult = { exitCode: result.exitCode ?? -1, stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? '') }
    if (result.failed && options.reject !== false) {
      const detail = out.stderr.trim() !== '' ? out.stderr.trim() : (result.shortMessage ?? 'failed')
      throw new LabCommandError([...argv], detail, result)
    }
    return out
  }
}

/** argv that runs `argv` inside a lab host: its network namespace and its holder's mount namespace. */
export function hostArgv (ns: string, holderPid: number, argv: readonly string[]): string[] {
  return ['nsenter', `--net=/run/netns/${ns}`, `--mount=/proc/${holderPid}/ns/mnt`, '--', ...argv]
}
