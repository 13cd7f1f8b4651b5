import type { Command } from './io.ts'
import { parseCommandArgs } from './io.ts'
import { queryAgent } from '../agent/api.ts'
import { formatStatus, type AgentStatus } from '../agent/status.ts'
import { UsageError } from '../util/errors.ts'

const HELP = `Usage: kairos-p2p status [--json] [--state-dir DIR | --config FILE…]

Shows the running agent's view of the site: identity and network fingerprint,
phase, role and init server, peers with liveness, overlay address and WireGuard
handshakes, state size, rejection counters and the formation timeline. Read from
the agent's local socket (<state dir>/agent.sock).

Options:
  --json            print the status as JSON
  --state-dir DIR   the agent's state dir
  --config FILE     read p2p.state_dir from these cloud-configs (repeatable)
  --metrics         print Prometheus metrics instead
  --help            show this help
`

export const command: Command = {
  summary: 'show the running agent\'s view of the site',
  run: async (argv, io) => {
    const { values } = parseCommandArgs('status', argv, {
      json: { type: 'boolean' },
      metrics: { type: 'boolean' },
      'state-dir': { type: 'string' },
      config: { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h' }
    }, false)
    if (values.help === true) { io.stdout(HELP); return 0 }
    let stateDir = values['state-dir']
    if (stateDir === undefined) {
      const { loadConfig } = await import('../config/index.ts')
      const files = values.config ?? []
      if (files.length === 0) stateDir = (await loadConfig([])).config.p2p.stateDir
      else stateDir = (await loadConfig(files)).config.p2p.stateDir
    }
    if (stateDir === '') throw new UsageError('status: empty --state-dir; expected the agent\'s state directory')
    if (values.metrics === true) {
      io.stdout(await queryAgent(stateDir, '/metrics'))
      return 0
    }
    const text = await queryAgent(stateDir, '/status')
    if (values.json === true) { io.stdout(text.endsWith('\n') ? text : text + '\n'); return 0 }
    io.stdout(formatStatus(JSON.parse(text) as AgentStatus))
    return 0
  }
}
