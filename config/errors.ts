import { InputError } from '../util/errors.ts'
import type { ConfigWarning } from './types.ts'

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

/** A value as it appears in a message: JSON, cut to a readable length. */
export function showValue (value: unknown): string {
  if (value === undefined) return 'nothing'
  let text: string
  try {
    text = JSON.stringify(value) ?? String(value)
  } catch {
    text = String(value)
  }
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
 * from the issue.
 */
export function makeIssue (path: string, value: unknown, expected: string, options: { secret?: boolean, source?: string } = {}): ConfigIssue {
  const shown = options.secret === true ? '<redacted>' : showValue(value)
  const issue: ConfigIssue = {
    path,
    value: options.secret === true ? '<redacted>' : value,
    expected,
    message: value === undefined
      ? `${path}: missing, expected ${expected}`
      : `${path}: got ${shown} (${kindOf(value)}), expected ${expected}`
  }
  if (options.source !== undefined) issue.source = options.source
  return issue
}

/** `path: message`, the one-line form of a warning. */
export function formatWarning (warning: ConfigWarning): string {
  return `${warning.path}: ${warning.message}`
}
