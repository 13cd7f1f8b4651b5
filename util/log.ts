/**
 * A small structured logger: JSON lines (for journald) or human text on a
 * terminal. Components take a `Logger` and create children with `child(name)`.
 */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void
  info(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
  error(msg: string, fields?: Record<string, unknown>): void
  child(component: string): Logger
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'
const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export interface LoggerInit {
  /** Lowest level written. @default 'info' */
  level?: LogLevel
  /** `json` writes one object per line; `text` a human line. @default 'json' */
  format?: 'json' | 'text'
  /** Where lines go. @default process.stderr */
  write?: (line: string) => void
  /** Clock for timestamps. @default Date.now */
  now?: () => number
  component?: string
}

export function createLogger (init: LoggerInit = {}): Logger {
  const min = LEVELS[init.level ?? 'info']
  const format = init.format ?? 'json'
  const write = init.write ?? ((line: string) => { process.stderr.write(line + '\n') })
  const now = init.now ?? Date.now
  const emit = (level: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
    if (LEVELS[level] < min) return
    const ts = new Date(now()).toISOString()
    if (format === 'json') {
      write(JSON.stringify({ ts, level, component: init.component, msg, ...fields }))
    } else {
      const extra = fields === undefined ? '' : ' ' + Object.entries(fields).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ')
      write(`${ts.slice(11, 23)} ${level.padEnd(5)} ${init.component ?? '-'}: ${msg}${extra}`)
    }
  }
  return {
    debug: (m, f) => { emit('debug', m, f) },
    info: (m, f) => { emit('info', m, f) },
    warn: (m, f) => { emit('warn', m, f) },
    error: (m, f) => { emit('error', m, f) },
    child: (component) => createLogger({ ...init, component: init.component === undefined ? component : `${init.component}.${component}` })
  }
}

/** A logger that drops everything (tests). */
export const silentLogger: Logger = {
  debug: () => {}, info: () => {}, warn: () => {}, error: () => {}, child: () => silentLogger
}
