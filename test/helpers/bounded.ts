import { Worker } from 'node:worker_threads'

/** What a bounded call gave: its value, the error it threw, or nothing within the time. */
export type Bounded<T> =
  | { kind: 'value', value: T, ms: number }
  | { kind: 'error', name: string, message: string, fields: Record<string, unknown>, ms: number }
  | { kind: 'timeout', ms: number }

// Runs in the worker: imports the module and calls the export; errors come back as plain data.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads')
const started = performance.now()
import(workerData.url).then(async (m) => {
  try {
    const value = await m[workerData.name](...workerData.args)
    parentPort.postMessage({ kind: 'value', value, ms: performance.now() - started })
  } catch (err) {
    const fields = {}
    for (const [k, v] of Object.entries(err ?? {})) if (typeof v !== 'object' && typeof v !== 'function') fields[k] = v
    parentPort.postMessage({ kind: 'error', name: err?.name ?? 'unknown', message: String(err?.message ?? err), fields, ms: performance.now() - started })
  }
})
`

/**
 * Calls export `name` of the module at `url` with `args` in a worker thread, and ends
 * the worker after `timeoutMs`: a synchronous loop that would hang the test process
 * (an alias bomb before the node budget) makes the test fail instead. Arguments and
 * the result cross by structured clone.
 */
export async function callBounded<T> (url: URL, name: string, args: unknown[], timeoutMs: number): Promise<Bounded<T>> {
  const worker = new Worker(WORKER, { eval: true, workerData: { url: url.href, name, args } })
  const started = performance.now()
  try {
    return await new Promise<Bounded<T>>((resolve, reject) => {
      const timer = setTimeout(() => { resolve({ kind: 'timeout', ms: performance.now() - started }) }, timeoutMs)
      worker.once('message', (m: Bounded<T>) => { clearTimeout(timer); resolve(m) })
      worker.once('error', (err) => { clearTimeout(timer); reject(err) })
    })
  } finally {
    await worker.terminate()
  }
}
