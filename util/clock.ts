/**
 * Time as the rest of the code sees it. Product code never calls `Date.now()` or
 * `setTimeout` directly: it takes a `Clock`, so tests and the simulation can drive
 * time by hand.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number
  /** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>
}

function abortReason (signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The operation was aborted', 'AbortError')
}

/** The real clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: async (ms, signal) => {
    await new Promise<void>((resolve, reject) => {
      if (signal?.aborted === true) { reject(abortReason(signal)); return }
      const onAbort = (): void => { clearTimeout(timer); reject(abortReason(signal as AbortSignal)) }
      const timer = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, ms)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }
}

interface PendingSleep { at: number, seq: number, resolve: () => void }

/**
 * A clock that moves only when told to. Sleepers wake in time order when
 * `advance()` passes their deadline.
 */
export class ManualClock implements Clock {
  private current: number
  private seq = 0
  private readonly pending: PendingSleep[] = []

  constructor (start = 0) {
    this.current = start
  }

  now (): number {
    return this.current
  }

  async sleep (ms: number, signal?: AbortSignal): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      if (signal?.aborted === true) { reject(abortReason(signal)); return }
      const entry: PendingSleep = { at: this.current + Math.max(0, ms), seq: this.seq++, resolve }
      this.pending.push(entry)
      signal?.addEventListener('abort', () => {
        const i = this.pending.indexOf(entry)
        if (i >= 0) this.pending.splice(i, 1)
        reject(abortReason(signal))
      }, { once: true })
    })
  }

  /**
   * Moves time forward by `ms`, resolving every sleeper whose deadline has passed,
   * in deadline order. Resolution is synchronous but sleepers resume as microtasks,
   * so they observe the time after the whole advance; use `advanceAsync` when a
   * sleeper must see its own deadline as `now()`.
   */
  advance (ms: number): void {
    const target = this.current + ms
    for (let next = this.takeDue(target); next !== undefined; next = this.takeDue(target)) next.resolve()
    this.current = target
  }

  /** Like `advance`, but lets each woken sleeper run before time moves past its deadline. */
  async advanceAsync (ms: number): Promise<void> {
    const target = this.current + ms
    for (let next = this.takeDue(target); next !== undefined; next = this.takeDue(target)) {
      next.resolve()
      await new Promise<void>((resolve) => { setImmediate(resolve) })
    }
    this.current = target
  }

  /** Removes the earliest sleeper due by `target` and moves time to its deadline. */
  private takeDue (target: number): PendingSleep | undefined {
    this.pending.sort((a, b) => a.at - b.at || a.seq - b.seq)
    const next = this.pending[0]
    if (next === undefined || next.at > target) return undefined
    this.pending.shift()
    this.current = next.at
    return next
  }

  /** Sets the absolute time (never backwards). */
  set (ms: number): void {
    if (ms < this.current) throw new RangeError(`ManualClock cannot go back from ${this.current} to ${ms}`)
    this.advance(ms - this.current)
  }
}
