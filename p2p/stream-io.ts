import type { Stream } from '@libp2p/interface'
import type { Clock } from '../util/clock.ts'
import { encodeFrame } from './framing.ts'

/**
 * Writes `bodies` as frames, waiting for the stream to drain when its buffer
 * is full. Rejects when `signal` aborts.
 */
export async function sendFrames (stream: Stream, bodies: Uint8Array[], signal: AbortSignal): Promise<void> {
  for (const body of bodies) {
    signal.throwIfAborted()
    if (!stream.send(encodeFrame(body))) await stream.onDrain({ signal })
  }
}

/** A signal that aborts when `parent` does or `ms` pass on `clock`; call `cancel()` when done. */
export interface Deadline {
  signal: AbortSignal
  cancel: () => void
}

/** A timeout error for a named operation. */
export class DeadlineError extends Error {
  constructor (what: string, ms: number) {
    super(`${what}: no answer within ${ms} ms`)
    this.name = 'DeadlineError'
  }
}

/** Creates a `Deadline` of `ms` for `what`, chained to `parent`. */
export function deadline (clock: Clock, ms: number, what: string, parent: AbortSignal): Deadline {
  const controller = new AbortController()
  const stopTimer = new AbortController()
  const onParent = (): void => { controller.abort(parent.reason) }
  if (parent.aborted) controller.abort(parent.reason)
  else parent.addEventListener('abort', onParent, { once: true })
  clock.sleep(ms, stopTimer.signal).then(() => { controller.abort(new DeadlineError(what, ms)) }, () => {})
  return {
    signal: controller.signal,
    cancel: () => {
      stopTimer.abort()
      parent.removeEventListener('abort', onParent)
    }
  }
}

/**
 * Runs `fn` with the stream aborted when `signal` fires, so a pending read
 * ends instead of hanging. The stream is aborted on failure and closed on success.
 */
export async function withStream<T> (stream: Stream, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  const onAbort = (): void => { stream.abort(signal.reason instanceof Error ? signal.reason : new Error('aborted')) }
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    if (signal.aborted) onAbort()
    const result = await fn()
    await stream.close({ signal }).catch(() => { stream.abort(new Error('close failed')) })
    return result
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    throw err
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}
