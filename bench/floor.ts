// The stack floor: what the decided stack alone costs on this machine, to read the lab
// benchmark's figures and issue 6's targets against. For each N (default 3, 10, 30) it
// builds a lab topology with no agents and starts, at once, one process per host that
// runs only the libp2p stack an agent runs (bench/_floor-node.ts: Node, the same kind of
// bundle, TCP, pnet, Noise, yamux, identify, ping, gossipsub, the DHT, the agent's mesh
// links) and none of the agent's own work: no discovery (every address is given), no
// admission, state, membership, election, VPN or installer. Each node publishes one small
// gossip message until it has heard every other node. Reports, per N:
//   - start: spawn → libp2p listening (Node boot, the bundle's load, libp2p start),
//     median / max, and from the first spawn to the last start;
//   - from the last start to every node linked (its mesh links connected) and to every
//     node having heard every other; the latter also from the first spawn;
//   - CPU per process (utime + stime) and memory at that point, median / max;
//   - whole-machine CPU busy from the first spawn to that point.
// An agent's formation on this machine cannot take less than the floor's "heard" time,
// nor less CPU than the floor's; the difference is the agent's own work. Needs root;
// prints {"skipped":"needs root"} otherwise. Progress goes to stderr, the JSON result is
// the last stdout line.
//
//   npx node bench/floor.ts [--nodes 3,10,30] [--dht on|off] [--timeout-seconds 120]
import { parseArgs } from 'node:util'
import { floorOnce } from './_floor-run.ts'
import { runEachSize } from './_harness.ts'

interface Options { nodes: number[], dht: boolean, timeoutMs: number }

function options (): Options {
  const { values } = parseArgs({ options: { nodes: { type: 'string' }, dht: { type: 'string' }, 'timeout-seconds': { type: 'string' } } })
  const nodes = (values.nodes ?? process.env.KAIROS_BENCH_FLOOR_NODES ?? '3,10,30').split(',').map((s) => Number(s.trim()))
  if (nodes.some((n) => !Number.isInteger(n) || n < 2 || n > 200)) throw new Error(`--nodes '${values.nodes ?? ''}': expected comma-separated integers from 2 to 200`)
  const dht = values.dht ?? 'on'
  if (dht !== 'on' && dht !== 'off') throw new Error(`--dht '${dht}': expected on or off`)
  const timeoutS = Number(values['timeout-seconds'] ?? 120)
  if (!Number.isFinite(timeoutS) || timeoutS <= 0) throw new Error(`--timeout-seconds '${String(values['timeout-seconds'])}': expected a positive number`)
  return { nodes, dht: dht === 'on', timeoutMs: timeoutS * 1000 }
}

function progress (msg: string): void {
  process.stderr.write(`[floor-bench ${new Date().toISOString().slice(11, 23)}] ${msg}\n`)
}

await runEachSize(() => {
  const opt = options()
  return { nodes: opt.nodes, runOnce: async (n, signal) => await floorOnce(n, { ...opt, progress }, signal) }
}, progress)
