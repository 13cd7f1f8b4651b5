import type { Command, CliIO } from './io.ts'
import { parseCommandArgs } from './io.ts'
import { postAgent, queryAgent } from '../agent/api.ts'
import { describeNode, formatNodes, type KnownNode } from '../agent/nodes.ts'
import type { RemoveResult } from '../agent/removals.ts'
import { UsageError } from '../util/errors.ts'

const HELP = `Usage: kairos-p2p node <list | remove> [options]

Subcommands:
  list     every identity this node knows: host, overlay address, role,
           liveness or removed/forgotten, last seen
  remove   remove a node from the site and revoke its identity

Run 'kairos-p2p node <subcommand> --help' for its options.
`

const LIST_HELP = `Usage: kairos-p2p node list [--json] [--state-dir DIR | --config FILE…]

Lists every identity the running agent knows, this node first: peer id, host
name, overlay address, k3s role, state (alive, suspect, dead, removed,
forgotten: dead longer than p2p.forget_after) and when it was last seen.

Options:
  --json            print the list as JSON
  --state-dir DIR   the agent's state dir
  --config FILE     read p2p.state_dir from these cloud-configs (repeatable)
  --help            show this help
`

const REMOVE_HELP = `Usage: kairos-p2p node remove <peer-id | host name | overlay address> [--force] [--json] [--state-dir DIR | --config FILE…]

Removes a node from the site: every node drops its WireGuard peer, its overlay
address and its state entries, stops counting it toward quorum and the size
warning, and refuses its identity from then on (revocation). A box that was
reinstalled joins again under its new identity; remove the old one.

Who may remove: the init server may remove any node; a server (a node holding
a server credential) any node that is not a server. On any other node the
removal needs --force, and is then only this node's vote: it takes effect once
a majority of the site's nodes has published it (or the init server has).

Options:
  --force           publish this node's vote although it cannot remove alone
  --json            print the answer as JSON
  --state-dir DIR   the agent's state dir
  --config FILE     read p2p.state_dir from these cloud-configs (repeatable)
  --help            show this help

Exit codes: 0 published, 1 agent failure, 2 unknown or ambiguous node, or not
allowed without --force.
`

async function stateDirOf (sub: string, values: { 'state-dir'?: string | undefined, config?: string[] | undefined }): Promise<string> {
  let stateDir = values['state-dir']
  if (stateDir === undefined) {
    const { loadConfig } = await import('../config/index.ts')
    stateDir = (await loadConfig(values.config ?? [])).config.p2p.stateDir
  }
  if (stateDir === '') throw new UsageError(`node ${sub}: empty --state-dir; expected the agent's state directory`)
  return stateDir
}

const common = {
  json: { type: 'boolean' },
  'state-dir': { type: 'string' },
  config: { type: 'string', multiple: true },
  help: { type: 'boolean', short: 'h' }
} as const

async function list (argv: string[], io: CliIO): Promise<number> {
  const { values } = parseCommandArgs('node list', argv, common, false)
  if (values.help === true) { io.stdout(LIST_HELP); return 0 }
  const text = await queryAgent(await stateDirOf('list', values), '/nodes')
  if (values.json === true) { io.stdout(text.endsWith('\n') ? text : text + '\n'); return 0 }
  const answer = JSON.parse(text) as { now: number, nodes: KnownNode[] }
  io.stdout(formatNodes(answer.nodes, answer.now))
  return 0
}

async function remove (argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseCommandArgs('node remove', argv, { ...common, force: { type: 'boolean' } })
  if (values.help === true) { io.stdout(REMOVE_HELP); return 0 }
  if (positionals.length !== 1) {
    throw new UsageError(`node remove: expected one node (a peer id, host name or overlay address), got ${positionals.length === 0 ? 'none' : positionals.join(' ')} (see 'node remove --help')`)
  }
  const text = await postAgent(await stateDirOf('remove', values), '/nodes/remove', { node: positionals[0], force: values.force === true })
  if (values.json === true) { io.stdout(text.endsWith('\n') ? text : text + '\n'); return 0 }
  const r = JSON.parse(text) as RemoveResult
  if (r.warning !== undefined) io.stderr(`warning: ${r.warning}\n`)
  if (r.applied !== undefined) io.stdout(`removed ${r.peer}${describeNode(r.node) === r.peer ? '' : ` ${describeNode(r.node)}`} (${r.applied.basis}); every node applies the removal as the state reaches it\n`)
  else io.stdout(`published this node's removal vote for ${r.peer}${r.pending === undefined ? '' : `: ${r.pending.needed} more needed`}\n`)
  return 0
}

export const command: Command = {
  summary: 'list the site\'s nodes, remove and revoke a node',
  run: async (argv, io) => {
    const [sub, ...rest] = argv
    if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') { io.stdout(HELP); return sub === undefined ? 2 : 0 }
    if (sub === 'list') return await list(rest, io)
    if (sub === 'remove') return await remove(rest, io)
    throw new UsageError(`node: unknown subcommand '${sub}'; expected list or remove (see 'node --help')`)
  }
}
