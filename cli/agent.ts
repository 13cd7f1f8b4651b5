import type { Command } from './io.ts'
import { parseCommandArgs } from './io.ts'
import { UsageError } from '../util/errors.ts'
import { createLogger, type LogLevel } from '../util/log.ts'

const HELP = `Usage: kairos-p2p agent --config FILE… [options]

Runs the node: discovery and admission, replicated cluster state, election,
credentials, WireGuard overlay and the hand-off to the installer. Stops cleanly
on SIGTERM or SIGINT (the overlay interface stays up; k3s depends on it).

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

    const { loadConfig } = await import('../config/index.ts')
    const loaded = await loadConfig(files, preset === undefined ? undefined : { preset })
    for (const w of loaded.warnings) logger.warn('config', { path: w.path, warning: w.message })
    const { DEFAULT_STATE_DIR, LEGACY_STATE_DIR } = await import('../config/index.ts')
    if (loaded.config.p2p.stateDir === DEFAULT_STATE_DIR) {
      const { migrateStateDir } = await import('../box/state-dir.ts')
      const how = await migrateStateDir(LEGACY_STATE_DIR, DEFAULT_STATE_DIR)
      if (how !== 'none') logger.info('moved the state dir from its old default', { from: LEGACY_STATE_DIR, to: DEFAULT_STATE_DIR, how })
    }
    if (io.signal.aborted) return 0

    const { createAgent } = await import('../agent/agent.ts')
    const agent = await createAgent({ config: loaded.config, logger })
    await agent.start()
    logger.info('agent started', { peerId: agent.peerId, stateDir: loaded.config.p2p.stateDir })
    await new Promise<void>((resolve) => {
      if (io.signal.aborted) { resolve(); return }
      io.signal.addEventListener('abort', () => { resolve() }, { once: true })
    })
    logger.info('stopping', { reason: String(io.signal.reason) })
    await agent.stop()
    logger.info('stopped')
    return 0
  }
}
