// How the agent's process runs: the Node options and the glibc malloc settings it gets
// wherever it runs. On a box the self-contained executable carries the Node options
// (its SEA config's `execArgv`, build/sea.ts) and the launcher exports the malloc
// settings (box/launcher.ts), so the systemd unit, the provider and a shell all get
// both; lab agents, the soak and the lab benchmarks take the same from here
// (netns-lab/host-processes.ts).

/**
 * Node options of the agent (AGENT-10): a 1 MB young generation (about 140 MB RSS per
 * agent at N=10 instead of about 200 MB; the young generation is what a busy formation
 * fills), and an old generation that grows to 1.2 times what the last full GC left
 * before the next (V8's own factor, picked from GC and mutator speed, is several times
 * that, and an idle agent's heap crept towards it). No old-space cap: with
 * `--max-old-space-size=64` an agent ran out of heap during a 30-node formation on a
 * saturated 2-core machine. V8 options that change V8's code cache tag
 * (`v8.cachedDataVersionTag()`; `--heap-growing-percent` does) must also be given where
 * a code cache is made (build/sea.ts, the lab's compile-cache warm-up), or it is refused.
 */
export const AGENT_NODE_OPTIONS: readonly string[] = Object.freeze(['--max-semi-space-size=1', '--heap-growing-percent=20'])

/**
 * glibc malloc settings the agent runs with, unless the environment sets them:
 * at most two malloc arenas (AGENT-8). glibc gives each thread that allocates while
 * another holds the lock an arena of its own (up to eight per core), and Node's worker
 * threads (libuv's pool, V8's platform workers) each fill one during a formation; the
 * pages they freed stay with the arena. Two cap that, at the cost of a thread now and then
 * waiting on a lock. And the mmap and trim thresholds fixed at glibc's defaults (128 KiB,
 * AGENT-10): left dynamic, one freed large block raises both (up to 32 MiB), after which
 * large blocks come from the heap and the freed top of the heap is kept.
 */
export const AGENT_MALLOC_ENV: Readonly<Record<string, string>> = Object.freeze({
  MALLOC_ARENA_MAX: '2',
  MALLOC_MMAP_THRESHOLD_: '131072',
  MALLOC_TRIM_THRESHOLD_: '131072'
})
