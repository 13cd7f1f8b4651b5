import { KairosError } from '../../util/errors.ts'

/**
 * A hand-off step that failed: a command that could not run or exited non-zero,
 * or a file that could not be written. `command` is the argv (never holds a
 * secret: credentials travel in files and the environment only).
 */
export class InstallerError extends KairosError {
  /** The argv that failed, or the file operation, e.g. `['write', '/etc/rancher/k3s/config.yaml']`. */
  readonly command: string[]
  /** The command's exit code, when it ran and exited. */
  readonly commandExitCode: number | undefined
  /** The last lines of its standard error. */
  readonly stderrTail: string

  constructor (message: string, init: { command: string[], commandExitCode?: number, stderrTail?: string, cause?: unknown }) {
    super(message, { cause: init.cause })
    this.name = 'InstallerError'
    this.command = init.command
    this.commandExitCode = init.commandExitCode
    this.stderrTail = init.stderrTail ?? ''
  }
}
