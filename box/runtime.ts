// How the agent's process runs: the Node options and the glibc malloc settings it gets
// wherever it runs. On a box the self-contained executable carries the Node options
// (its SEA config's `execArgv`, build/sea.ts) and the launcher exports the malloc
// settings (box/launcher.ts), so the systemd unit, the provider and a shell all get
// both; lab agents, the soak and the lab benchmarks take the same from here
// (netns-lab/host-processes.ts).

/**
 * Node options of the agent (AGENT-10): a 1 MB young generation (about 140 MB RSS per
 * agent at N=10 instead of about 200 MB; the young generation is what a busy formation
 * fills). No old-space cap: with `--max-old-space-size=64` an agent ran out of heap
 * during a 30-node formation on a saturated 2-core machine. V8 options that change
 * V8's code cache tag (`v8.cachedDataVersionTag()`) must also be given where a code
 * cache is made (build/sea.ts, the lab's compile-cache warm-up), or the cache is refused.
 */
export const AGENT_NODE_OPTIONS: readonly string[] = Object.freeze(['--max-semi-space-size=1'])

/**
 * glibc malloc settings the agent runs with, unless the environment sets them (AGENT-8):
 * at most two malloc arenas. glibc gives each thread that allocates while another holds
 * the lock an arena of its own (up to eight per core), and Node's worker threads (libuv's
 * pool, V8's platform workers) each fill one during a formation; the pages they freed stay
 * with the arena. Two cap that, at the cost of a thread now and then waiting on a lock.
 */
export const AGENT_MALLOC_ENV: Readonly<Record<string, string>> = Object.freeze({ MALLOC_ARENA_MAX: '2' })
