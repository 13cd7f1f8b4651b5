/**
 * Base of every error kairos-p2p raises on purpose. `name` is stable and tests
 * assert on it; `exitCode` is what the CLI exits with (2 = bad input or usage,
 * 1 = runtime failure).
 */
export class KairosError extends Error {
  readonly exitCode: number

  constructor (message: string, options: { cause?: unknown, exitCode?: number } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'KairosError'
    this.exitCode = options.exitCode ?? 1
  }
}

/** Bad input from a person or a file: a token, a config, a CLI argument. Exit code 2. */
export class InputError extends KairosError {
  constructor (message: string, options: { cause?: unknown } = {}) {
    super(message, { ...options, exitCode: 2 })
    this.name = 'InputError'
  }
}

/** A CLI invocation that does not fit the command's usage. Exit code 2. */
export class UsageError extends InputError {
  constructor (message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

/** The message of any thrown value, for logs and wrapped errors. */
export function errorMessage (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
