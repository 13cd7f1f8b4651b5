import { errorMessage } from './errors.ts'
import type { Logger } from './log.ts'

/** How long a fatal error waits for the bounded stop before the process exits, ms. @default 5000 */
export const DEFAULT_FATAL_STOP_MS = 5_000

/** Exit code after a fatal error: a runtime failure, so a supervisor restarts the process. */
export const FATAL_EXIT_CODE = 1

/** Options of {@link installFatalHandlers}. */
export interface FatalHandlersInit {
  /** Where the error is logged (one `error` line with the kind, message and stack). */
  logger: Logger
  /** Stops what is running (the agent); called once, given at most `stopTimeoutMs`. @default nothing to stop */
  stop?: () => Promise<void>
  /** Bound on `stop`, ms. @default DEFAULT_FATAL_STOP_MS */
  stopTimeoutMs?: number
  /** Ends the process. @default process.exit */
  exit?: (code: number) => void
  /** The process whose events are watched. @default process */
  target?: NodeJS.EventEmitter
}

/**
 * Turns an unhandled rejection or an uncaught exception into a clean exit: log it,
 * try a bounded stop (the agent leaves the site, saves its state and closes its
 * socket), exit with {@link FATAL_EXIT_CODE}. A process that carried on after such
 * an error could be half-running (a loop dead, the rest alive), which no supervisor
 * notices; one that exits is restarted by systemd. A second fatal error during the
 * stop exits at once. Returns a function that removes the handlers.
 *
 * `stop` may be set later through the returned handle (the agent exists only after
 * its config has been loaded).
 */
export function installFatalHandlers (init: FatalHandlersInit): { uninstall: () => void, setStop: (stop: (() => Promise<void>) | undefined) => void } {
  const target = init.target ?? process
  const exit = init.exit ?? ((code: number) => { process.exit(code) })
  const timeoutMs = init.stopTimeoutMs ?? DEFAULT_FATAL_STOP_MS
  let stop = init.stop
  let fatal = false

  const onFatal = (kind: 'unhandled rejection' | 'uncaught exception', err: unknown): void => {
    init.logger.error(`fatal: ${kind}; stopping and exiting`, {
      error: errorMessage(err),
      ...(err instanceof Error && err.stack !== undefined ? { stack: err.stack } : {})
    })
    if (fatal) { exit(FATAL_EXIT_CODE); return }
    fatal = true
    const stopping = stop
    if (stopping === undefined) { exit(FATAL_EXIT_CODE); return }
    let timer: NodeJS.Timeout | undefined
    const bounded = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => { resolve('timeout') }, timeoutMs) })
    void Promise.race([stopping().then(() => 'stopped' as const), bounded])
      .then((outcome) => {
        if (outcome === 'timeout') init.logger.error('fatal: stop did not finish in time', { timeoutMs })
        else init.logger.info('stopped after a fatal error')
      }, (stopErr: unknown) => {
        init.logger.error('fatal: stop failed', { error: errorMessage(stopErr) })
      })
      .finally(() => {
        clearTimeout(timer)
        exit(FATAL_EXIT_CODE)
      })
  }
  const onRejection = (reason: unknown): void => { onFatal('unhandled rejection', reason) }
  const onException = (err: unknown): void => { onFatal('uncaught exception', err) }
  target.on('unhandledRejection', onRejection)
  target.on('uncaughtException', onException)
  return {
    uninstall: () => {
      target.off('unhandledRejection', onRejection)
      target.off('uncaughtException', onException)
    },
    setStop: (next) => { stop = next }
  }
}
