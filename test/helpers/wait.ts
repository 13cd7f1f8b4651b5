import { systemClock } from '../../util/clock.ts'

/**
 * Polls `probe` until it returns a value (not undefined) or `timeoutMs` passes;
 * the error names what was awaited. For tests that wait on real processes.
 */
export async function waitFor<T> (what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 20_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await systemClock.sleep(intervalMs)
  }
}
