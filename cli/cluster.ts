import type { Command, CliIO } from './io.ts'
import { parseCommandArgs } from './io.ts'
import { UsageError } from '../util/errors.ts'

const HELP = `Usage: kairos-p2p cluster <reset> [options]

Subcommands:
  reset    leave the old cluster on this box, to form a new one on purpose

Run 'kairos-p2p cluster <subcommand> --help' for its options.
`

const RESET_HELP = `Usage: kairos-p2p cluster reset --yes-start-a-new-cluster [--config FILE…] [--state-dir DIR] [--json]

Starts a new cluster on purpose, when the only server that could issue join
credentials is gone for good (no HA server, no backup of its state dir): a
waiting box says so in its status (init-server-down). A cluster-init runs once
per network token and p2p.network_id, so:

  1. give every box a new p2p.network_id in its cloud-config;
  2. on each box, stop the agent and run this command;
  3. on a box that had joined the old cluster, uninstall k3s;
  4. start the agents: they elect an init server for the new cluster.

On this box it moves aside, as <file>.reset-<UTC time> in the state dir (never
deleted): roles.json (role, votes, the accepted cluster record),
cluster-secrets.json (the old k3s tokens) and the state file. The identity,
the seal key and the WireGuard key and address stay. It refuses while the
agent runs, and while the configured p2p.network_id is still the old
cluster's. Without --yes-start-a-new-cluster it only lists what it would move.

Options:
  --yes-start-a-new-cluster  move the files (the confirmation)
  --config FILE              the cloud-configs the agent reads (repeatable)
  --state-dir DIR            the agent's state dir (default: p2p.state_dir)
  --json                     print the answer as JSON
  --help                     show this help

Exit codes: 0 done (or listed), 1 failure, 2 refused or bad input.
`

async function reset (argv: string[], io: CliIO): Promise<number> {
  const { values } = parseCommandArgs('cluster reset', argv, {
    'yes-start-a-new-cluster': { type: 'boolean' },
    config: { type: 'string', multiple: true },
    'state-dir': { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' }
  }, false)
  if (values.help === true) { io.stdout(RESET_HELP); return 0 }
  const { loadConfig } = await import('../config/index.ts')
  const { parseConfiguredToken } = await import('../token/parse.ts')
  const { deriveKeys } = await import('../token/derive.ts')
  const { queryAgent } = await import('../agent/api.ts')
  const { ClusterResetError, resetCluster } = await import('../roles/cluster-reset.ts')
  const { config } = await loadConfig(values.config ?? [])
  const stateDir = values['state-dir'] ?? config.p2p.stateDir
  if (stateDir === '') throw new UsageError('cluster reset: empty --state-dir; expected the agent\'s state directory')
  if (config.p2p.networkToken === '') throw new UsageError('cluster reset: p2p.network_token missing in the cloud-config; expected the configs the agent reads (--config)')
  const running = await queryAgent(stateDir, '/status', 1_000).then(() => true, () => false)
  if (running) throw new ClusterResetError(`cluster reset: the agent of ${stateDir} is running; stop it first (systemctl stop kairos-p2p)`)
  const keys = deriveKeys(parseConfiguredToken(config.p2p.networkToken), config.p2p.networkId)
  const confirm = values['yes-start-a-new-cluster'] === true
  const r = await resetCluster({ stateDir, networkId: config.p2p.networkId, stateKey: keys.stateKey, now: Date.now(), confirm })
  if (values.json === true) { io.stdout(JSON.stringify({ stateDir, networkId: config.p2p.networkId, ...r }) + '\n'); return 0 }
  if (r.files.length === 0) {
    io.stdout(`nothing of an earlier cluster in ${stateDir}: start the agent with p2p.network_id ${JSON.stringify(config.p2p.networkId)}\n`)
    return 0
  }
  if (!r.done) {
    io.stdout(`would move aside in ${stateDir}: ${r.files.map((f) => f.file).join(', ')}\nrun again with --yes-start-a-new-cluster to leave the old cluster on this box\n`)
    return 0
  }
  io.stdout(`moved aside in ${stateDir}: ${r.files.map((f) => `${f.file} → ${f.movedTo ?? ''}`).join(', ')}\n` +
    `this box forms a new cluster with p2p.network_id ${JSON.stringify(config.p2p.networkId)} once the agent starts; if it had joined the old cluster, uninstall k3s first\n`)
  return 0
}

export const command: Command = {
  summary: 'start a new cluster on purpose (cluster reset)',
  run: async (argv, io) => {
    const [sub, ...rest] = argv
    if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') { io.stdout(HELP); return sub === undefined ? 2 : 0 }
    if (sub === 'reset') return await reset(rest, io)
    throw new UsageError(`cluster: unknown subcommand '${sub}'; expected reset (see 'cluster --help')`)
  }
}
