import { systemClock } from './clock.ts'

/**
 * Polls `probe` until it returns a value (not undefined) or `timeoutMs` passes; the
 * error names what was awaited. For tests and benchmarks that wait on other processes
 * (agents, wireguard-go, pings). Product loops never poll: they wake on events, a
 * ticker or abort.
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
