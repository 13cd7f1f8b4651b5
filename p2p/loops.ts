import type { Clock } from '../util/clock.ts'
import { errorMessage } from '../util/errors.ts'
import type { Logger } from '../util/log.ts'

/**
 * The long-running loops of one node run: each wakes on the clock or an abort, and
 * none dies of an exception in one round. A round that throws is logged and counted
 * (`errors`, reported in the node's status) and the loop carries on after its
 * interval: one bad message must not end failure detection or anti-entropy, and a loop
 * promise must never reject where nobody awaits it (the process would die of an
 * unhandled rejection).
 */
export interface Loops {
  /**
   * Runs `body` first after `firstDelayMs` (at once when undefined), then again after the
   * number of ms it returns, or `everyMs` when it returns nothing or throws; until `signal` aborts.
   */
  spawn(name: string, options: { everyMs: number, firstDelayMs?: number }, body: () => Promise<number | undefined | void> | number | undefined | void): void
  /** Rounds that threw, over every loop, since the set was created. */
  errors(): number
  /** Waits for every loop to end (after the signal aborted). */
  settled(): Promise<void>
}

/** Creates the loop set of one run; every loop ends when `signal` aborts. */
export function createLoops (clock: Clock, signal: AbortSignal, log: Logger): Loops {
  const running: Array<Promise<void>> = []
  let errors = 0
  const failed = (name: string, err: unknown): void => {
    errors++
    log.warn(`${name} failed, carrying on`, { error: errorMessage(err) })
  }
  return {
    spawn (name, { everyMs, firstDelayMs }, body) {
      const run = async (): Promise<void> => {
        let wait = firstDelayMs
        while (!signal.aborted) {
          if (wait !== undefined) {
            try {
              await clock.sleep(Math.max(0, wait), signal)
            } catch {
              return
            }
          }
          try {
            const next = await body()
            wait = typeof next === 'number' ? next : everyMs
          } catch (err) {
            if (signal.aborted) return
            failed(name, err)
            wait = everyMs
          }
        }
      }
      // Belt and braces: `run` catches everything, but a loop promise is never left to reject unobserved.
      running.push(run().catch((err: unknown) => { failed(name, err) }))
    },
    errors: () => errors,
    settled: async () => { await Promise.allSettled(running.splice(0)) }
  }
}
