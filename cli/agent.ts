import type { Command } from './io.ts'
import { parseCommandArgs } from './io.ts'
import { KairosError, UsageError, errorMessage } from '../util/errors.ts'
import { installFatalHandlers } from '../util/fatal.ts'
import { createLogger, type LogLevel } from '../util/log.ts'

const HELP = `Usage: kairos-p2p agent --config FILE… [options]

Runs the node: discovery and admission, replicated cluster state, election,
credentials, WireGuard overlay and the hand-off to the installer. Stops cleanly
on SIGTERM or SIGINT (the overlay interface stays up; k3s depends on it). When it
follows a token rotation, and when the rotation's grace ends, the agent restarts
itself in this process with the token kept in its state dir (token.json).

Options:
  --config FILE        Kairos cloud-config (repeatable; later files win)
  --preset lan|lab     timing preset (overrides p2p.preset)
  --log-format F       json (default when stderr is not a terminal) or text
  --log-level L        debug, info (default), warn or error
  --help               show this help
`

const LEVELS = ['debug', 'info', 'warn', 'error'] as const

export const command: Command = {
  summary: 'run the node agent',
  run: async (argv, io) => {
    const { values } = parseCommandArgs('agent', argv, {
      config: { type: 'string', multiple: true },
      preset: { type: 'string' },
      'log-format': { type: 'string' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' }
    }, false)
    if (values.help === true) { io.stdout(HELP); return 0 }
    const files = values.config ?? []
    if (files.length === 0) throw new UsageError('agent: --config FILE is required (the Kairos cloud-config with p2p.network_token)')
    const preset = values.preset
    if (preset !== undefined && preset !== 'lan' && preset !== 'lab') throw new UsageError(`agent: --preset got '${preset}', expected 'lan' or 'lab'`)
    const format = values['log-format'] ?? (process.stderr.isTTY ? 'text' : 'json')
    if (format !== 'json' && format !== 'text') throw new UsageError(`agent: --log-format got '${format}', expected 'json' or 'text'`)
    const level = values['log-level'] ?? 'info'
    if (!(LEVELS as readonly string[]).includes(level)) throw new UsageError(`agent: --log-level got '${level}', expected one of ${LEVELS.join(', ')}`)
    const logger = createLogger({ format, level: level as LogLevel, write: (line) => { io.stderr(line + '\n') } })
    // From here on an error nobody awaited ends the process cleanly instead of leaving
    // it half-running (see installFatalHandlers); systemd restarts it. Only in a real
    // process (one that may be ended), never inside a test runner.
    const fatal = io.exit === undefined ? undefined : installFatalHandlers({ logger, exit: io.exit })
    try {
      // Until the agent runs, SIGTERM ends the command at once: the load is bounded
      // (see MAX_YAML_NODES) but may wait on a slow file, and libp2p takes a second to load.
      const { loadConfig } = await import('../config/index.ts')
      const loaded = await untilAborted(loadConfig(files, preset === undefined ? undefined : { preset }), io.signal)
      if (loaded === undefined) { logger.info('stopped before the agent started', { reason: String(io.signal.reason) }); return 0 }
      for (const w of loaded.warnings) logger.warn('config', { path: w.path, warning: w.message })

      const { DEFAULT_STATE_DIR, LEGACY_STATE_DIR } = await import('../config/index.ts')
      if (loaded.config.p2p.stateDir === DEFAULT_STATE_DIR) {
        const { migrateStateDir } = await import('../box/state-dir.ts')
        const how = await migrateStateDir(LEGACY_STATE_DIR, DEFAULT_STATE_DIR)
        if (how !== 'none') logger.info('moved the state dir from its old default', { from: LEGACY_STATE_DIR, to: DEFAULT_STATE_DIR, how })
      }
      if (io.signal.aborted) return 0

      const { createAgent } = await import('../agent/agent.ts')
      // The agent runs until a signal; it is stopped and created again when it asks to
      // (it followed a token rotation: every key changes), with the same config.
      for (;;) {
        let restart: ((reason: string) => void) | undefined
        const restartAsked = new Promise<string>((resolve) => { restart = resolve })
        const agent = await untilAborted(createAgent({ config: loaded.config, logger, onRestart: (reason) => { restart?.(reason) } }), io.signal)
        if (agent === undefined) { logger.info('stopped before the agent started', { reason: String(io.signal.reason) }); return 0 }
        fatal?.setStop(agent.stop)
        try {
          await agent.start()
        } catch (err) {
          throw await identityOfInitServer(describeStartError(err), loaded.config.p2p.stateDir)
        }
        // Node's options name the memory settings the process runs with (AGENT-10).
        logger.info('agent started', { peerId: agent.peerId, stateDir: loaded.config.p2p.stateDir, nodeOptions: process.execArgv })
        const stopped = new Promise<undefined>((resolve) => {
          if (io.signal.aborted) { resolve(undefined); return }
          io.signal.addEventListener('abort', () => { resolve(undefined) }, { once: true })
        })
        const reason = await Promise.race([stopped, restartAsked])
        if (reason === undefined) {
          logger.info('stopping', { reason: String(io.signal.reason) })
          await agent.stop()
          break
        }
        logger.info('restarting the agent', { reason })
        await agent.stop()
        if (io.signal.aborted) break
      }
      logger.info('stopped')
      return 0
    } finally {
      fatal?.uninstall()
    }
  }
}

/**
 * `promise`'s value, or undefined as soon as `signal` aborts (the promise is left to
 * settle on its own; a rejection after the abort is ignored).
 */
async function untilAborted<T> (promise: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) { promise.catch(() => {}); return undefined }
  let onAbort: (() => void) | undefined
  const aborted = new Promise<undefined>((resolve) => {
    onAbort = () => { resolve(undefined) }
    signal.addEventListener('abort', onAbort, { once: true })
  })
  try {
    return await Promise.race([promise, aborted])
  } finally {
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
    promise.catch(() => {})
  }
}

/** A damaged peer identity of the init server: a new identity cannot take its place. Exit code 2. */
export class InitIdentityError extends KairosError {
  constructor (message: string, options: { cause?: unknown } = {}) {
    super(message, { ...options, exitCode: 2 })
    this.name = 'InitIdentityError'
  }
}

/**
 * A damaged identity.key on the init server, said as such: elsewhere a new identity
 * is a new node (the old one can be removed), but the cluster record names the init
 * server's peer id, so only the old key will do. Anything else is returned as it is.
 */
export async function identityOfInitServer (err: unknown, stateDir: string): Promise<unknown> {
  if (!(err instanceof KairosError) || err.name !== 'IdentityFileError' || err.exitCode !== 2) return err
  const { loadFacts } = await import('../roles/local-store.ts')
  const facts = await loadFacts(stateDir).catch(() => undefined)
  if (facts?.role?.role !== 'init') return err
  return new InitIdentityError(`${err.message}. This node is the init server of cluster ${facts.role.clusterId} (roles.json), and the cluster record names its peer id: ` +
    'a new identity cannot take its place. Restore identity.key from a backup of the state dir; without one, see \'Recovery\' in the README (HA servers keep issuing credentials; a new cluster on purpose otherwise)', { cause: err })
}

/** A listen address libp2p could not bind, and why (`address already in use`). */
export class ListenError extends KairosError {
  /** The multiaddr that failed. */
  readonly address: string

  constructor (address: string, reason: string, options: { cause?: unknown } = {}) {
    super(`cannot listen on ${address}: ${reason}${/in use/i.test(reason) ? ' (another process holds it; stop that process or change p2p.listen)' : ' (check p2p.listen)'}`, options)
    this.name = 'ListenError'
    this.address = address
  }
}

/**
 * A start failure as the operator should read it: libp2p reports listen failures as
 * one message holding every address and a stack trace each; this keeps the first
 * address and its one-line reason. Anything else is returned as it is.
 */
export function describeStartError (err: unknown): unknown {
  if (!(err instanceof Error) || err.name !== 'UnsupportedListenAddressesError') return err
  const line = /^\s*(\/\S+): (?:\w*Error: )?(.*)$/m.exec(err.message)
  if (line === null) return new ListenError('a listen address', errorMessage(err).split('\n')[0] ?? '', { cause: err })
  const reason = (line[2] ?? '').replace(/^listen E[A-Z]+: /, '').replace(/ \S+:\d+$/, '')
  return new ListenError(line[1] ?? '', reason, { cause: err })
}
