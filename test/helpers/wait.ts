/**
 * The one `waitFor` of the tests (util/wait.ts, shared with the benchmarks): polls
 * `probe` until it returns a value (not undefined) or `timeoutMs` passes; the error
 * names what was awaited. For tests that wait on real processes.
 */
export { waitFor } from '../../util/wait.ts'
