/**
 * When and how the state file is written: a change schedules one write after a short
 * delay (changes in between share it), and a flush waits until the file holds every
 * change made before it. Each write is a whole snapshot (persist.ts `writeFileAtomic`).
 */
import type { Clock } from '../../util/clock.ts'
import { errorMessage } from '../../util/errors.ts'
import type { Logger } from '../../util/log.ts'
import { StatePersistError } from './errors.ts'

/** What the writer is given. */
export interface StateFileWriterInit {
  /** The state file; absent, nothing is written. */
  file: string | undefined
  /** Delay between the first change and its write, ms. */
  delayMs: number
  writeFile: (path: string, bytes: Uint8Array) => Promise<void>
  /** The snapshot to write, taken when the write starts. */
  snapshot: () => Uint8Array
  clock: Clock
  log: Logger
}

/** Writes the state file behind the store's changes. */
export class StateFileWriter {
  private changes = 0
  private durable = 0
  private writing: Promise<void> | undefined
  private timer: AbortController | undefined
  private stopped = false
  private readonly init: StateFileWriterInit

  constructor (init: StateFileWriterInit) { this.init = init }

  /** A change the file does not hold yet. */
  changed (): void { this.changes++ }

  /** The file holds every change so far (it was just loaded). */
  settled (): void { this.durable = this.changes }

  /** Writes soon, unless a write is already scheduled or the writer is stopped. */
  schedule (): void {
    if (this.init.file === undefined || this.timer !== undefined || this.stopped) return
    const timer = new AbortController()
    this.timer = timer
    this.init.clock.sleep(this.init.delayMs, timer.signal).then(async () => {
      this.timer = undefined
      await this.flush()
    }, () => {}).catch((err: unknown) => {
      this.init.log.warn('state file write failed; retrying with the next change', { file: this.init.file, error: errorMessage(err) })
    })
  }

  /** No write is scheduled from now on; `flush()` still writes. */
  stop (): void {
    this.stopped = true
    this.timer?.abort()
    this.timer = undefined
  }

  /**
   * Writes the state file until it holds every change made before the call. Changes
   * that arrive meanwhile are left to the next flush: while a site forms they keep
   * coming, and chasing them kept a caller waiting for one fsync'd write after another.
   * Rejects with StatePersistError when the write fails.
   */
  async flush (): Promise<void> {
    const file = this.init.file
    if (file === undefined) return
    const upTo = this.changes
    while (this.durable < upTo) {
      if (this.writing !== undefined) {
        await this.writing.catch(() => {})
        continue
      }
      const at = this.changes
      const writing = this.init.writeFile(file, this.init.snapshot()).then(() => { this.durable = Math.max(this.durable, at) })
      this.writing = writing
      try {
        await writing
      } catch (err) {
        throw new StatePersistError(`writing state file ${file} failed: ${errorMessage(err)}`, { cause: err })
      } finally {
        if (this.writing === writing) this.writing = undefined
      }
    }
  }
}
