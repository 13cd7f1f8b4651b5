import { InputError } from '../util/errors.ts'
import type { ConfigWarning } from './types.ts'
import { REDACTED, redactText } from './redact.ts'

/** One problem found in a config: the key path, the value it had and what was expected. */
export interface ConfigIssue {
  /** Dotted key path, e.g. `p2p.vpn.port`; for a syntax error, `file:line`. */
  path: string
  /** The offending value as parsed (secrets are never copied into `message`). */
  value: unknown
  /** What the key accepts, in words. */
  expected: string
  /** The full one-line message, e.g. `p2p.minimum_nodes: got "three" (string), expected a non-negative integer`. */
  message: string
  /** The file that supplied the value, when known. */
  source?: string
}

/**
 * A config that cannot be used. Carries every problem found, not just the first;
 * the message lists each on its own line.
 */
export class ConfigError extends InputError {
  readonly issues: ConfigIssue[]

  constructor (issues: ConfigIssue[], options: { cause?: unknown } = {}) {
    super(issues.map((i) => i.message).join('\n'), options)
    this.name = 'ConfigError'
    this.issues = issues
  }
}

/** A file that is not valid YAML. `issues[0].path` is `file:line`. */
export class ConfigSyntaxError extends ConfigError {
  constructor (issue: ConfigIssue, options: { cause?: unknown } = {}) {
    super([issue], options)
    this.name = 'ConfigSyntaxError'
  }
}

/**
 * A config whose YAML exceeds the loader's node or depth budget, aliases expanded: an
 * alias bomb, or a file that is not a cloud-config. Names the file and the limit.
 */
export class ConfigTooLargeError extends ConfigSyntaxError {
  /** The budget exceeded (nodes or levels). */
  readonly limit: number

  constructor (source: string, reason: string, limit: number) {
    super({ path: source, value: undefined, expected: `at most ${limit}`, message: `${source}: ${reason}; a cloud-config stays far below this limit`, source })
    this.name = 'ConfigTooLargeError'
    this.limit = limit
  }
}

/** A config file that is missing or cannot be read. The message names the path. */
export class ConfigFileError extends InputError {
  /** The path as given by the caller. */
  readonly path: string

  constructor (path: string, reason: string, options: { cause?: unknown } = {}) {
    super(`cannot read config file ${path}: ${reason}`, options)
    this.name = 'ConfigFileError'
    this.path = path
  }
}

const MAX_SHOWN = 60

/**
 * A value as it appears in a message: JSON with every secret blanked out (see
 * `redactText`: the `secrets` given and anything shaped like a token), then cut to a
 * readable length. Redacting before cutting means no prefix of a secret is shown.
 */
export function showValue (value: unknown, secrets?: ReadonlySet<string>): string {
  if (value === undefined) return 'nothing'
  let text: string
  try {
    text = JSON.stringify(value) ?? String(value)
  } catch {
    text = String(value)
  }
  text = redactText(text, secrets)
  return text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN - 1)}…` : text
}

/** The YAML kind of a parsed value, as named in messages. */
export function kindOf (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'list'
  if (typeof value === 'string' && /\{\{.*\}\}/.test(value)) return 'unrendered template'
  if (typeof value === 'object') return 'mapping'
  return typeof value
}

/**
 * Builds an issue whose message reads `path: got <value> (<kind>), expected <expected>`
 * (or `path: missing, expected <expected>` for an absent required key).
 * With `secret`, the value is replaced by `<redacted>` in the message and dropped
 * from the issue; so is any value that holds one of `secrets` or something shaped
 * like a token (a token under the wrong key, or `p2p:` written as a string).
 */
export function makeIssue (path: string, value: unknown, expected: string, options: { secret?: boolean, source?: string, secrets?: ReadonlySet<string> } = {}): ConfigIssue {
  const shown = options.secret === true ? REDACTED : showValue(value, options.secrets)
  const holdsSecret = options.secret === true || shown.includes(REDACTED)
  const issue: ConfigIssue = {
    path: redactText(path, options.secrets),
    value: holdsSecret ? REDACTED : value,
    expected,
    message: value === undefined
      ? `${redactText(path, options.secrets)}: missing, expected ${expected}`
      : `${redactText(path, options.secrets)}: got ${shown} (${kindOf(value)}), expected ${expected}`
  }
  if (options.source !== undefined) issue.source = options.source
  return issue
}

/** `path: message`, the one-line form of a warning (a key shaped like a token is blanked out). */
export function formatWarning (warning: ConfigWarning): string {
  return redactText(`${warning.path}: ${warning.message}`)
}
