// `kairos-p2p token generate | inspect | rotate`. Loads only token/ (no libp2p), so it
// starts as fast as Node does.
import { systemClock } from '../util/clock.ts'
import { UsageError } from '../util/errors.ts'
import { DEFAULT_PRESET, PRESET_NAMES, PRESETS } from '../config/presets.ts'
import type { PresetName } from '../config/types.ts'
import {
  deriveKeys, generateToken, parseToken, type DerivedKeys, type NetworkToken
} from '../token/index.ts'
import { parseCommandArgs, type CliIO, type Command } from './io.ts'
import { parseDurationMs } from '../util/duration.ts'

const USAGE = `Usage: kairos-p2p token <generate | inspect | rotate> [options]

Commands:
  generate   print a new network token (256 random bits, versioned, with a checksum)
  inspect    check a token and print its public derived values, or show the
             token this node holds and its generation
  rotate     replace the site's token, on a server, with a grace for members
             that are down

Run 'kairos-p2p token <command> --help' for the command's options.
Exit codes: 0 ok, 2 bad token or usage.
`

const GENERATE_USAGE = `Usage: kairos-p2p token generate [--json]

Prints a new network token on one line. Put it in every node's cloud-config as
p2p.network_token; it is safe unquoted in YAML, shells and URLs. Keep it secret:
whoever holds it can join the network.

Options:
  --json     print {"token", "kind", "version", "fingerprint"} instead
  --help     show this help
`

const INSPECT_USAGE = `Usage: kairos-p2p token inspect <token | -> [options]
       kairos-p2p token inspect --state-dir DIR | --config FILE…

Checks a network token (ours or a Kairos/edgevpn token) and prints its version,
kind, public fingerprint and the public values derived from it. '-' reads the
token from stdin, which keeps it out of the process list and shell history.

Without a token, with --state-dir or --config: shows the token the node holds
(the cloud-config's, or the newer one a rotation gave it), its generation, and
the replaced token while a rotation's grace runs; with --show-secrets also the
token itself, to put in the cloud-config of boxes set up from now on.

Options:
  --state-dir DIR    the agent's state directory (default: from --config)
  --config FILE      Kairos cloud-config (repeatable)
  --network-id ID    p2p.network_id the per-network values are scoped to (default: empty)
  --preset NAME      timing preset whose rendezvous epoch to use: ${PRESET_NAMES.join(', ')} (default: ${DEFAULT_PRESET})
  --epoch-ms N       DHT rendezvous epoch length in ms (default: the preset's, ${PRESETS[DEFAULT_PRESET].rendezvousEpochMs})
  --show-secrets     also print the derived secret keys (pnet key, state key, admission key)
  --json             print JSON
  --help             show this help
`

/** The `token` command: `generate` and `inspect`. */
export const command: Command = {
  summary: 'generate, inspect and rotate network tokens',
  run: async (argv, io) => {
    const [sub, ...rest] = argv
    if (sub === '--help' || sub === '-h' || sub === 'help') { io.stdout(USAGE); return 0 }
    if (sub === 'generate') return generate(rest, io)
    if (sub === 'inspect') return await inspect(rest, io)
    if (sub === 'rotate') return await rotate(rest, io)
    if (sub === undefined) throw new UsageError('missing command; expected generate, inspect or rotate (see \'kairos-p2p token --help\')')
    throw new UsageError(`unknown command '${sub}'; expected generate, inspect or rotate (see 'kairos-p2p token --help')`)
  }
}

function generate (argv: string[], io: CliIO): number {
  const { values } = parseCommandArgs('token generate', argv, {
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' }
  }, false)
  if (values.help === true) { io.stdout(GENERATE_USAGE); return 0 }
  const token = generateToken()
  if (values.json === true) {
    const parsed = parseToken(token)
    const keys = deriveKeys(parsed)
    io.stdout(JSON.stringify({ token, kind: parsed.kind, version: parsed.version, fingerprint: keys.fingerprint }) + '\n')
  } else {
    io.stdout(`${token}\n`)
  }
  return 0
}

async function inspect (argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseCommandArgs('token inspect', argv, {
    'network-id': { type: 'string' },
    preset: { type: 'string' },
    'epoch-ms': { type: 'string' },
    'show-secrets': { type: 'boolean' },
    'state-dir': { type: 'string' },
    config: { type: 'string', multiple: true },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' }
  })
  if (values.help === true) { io.stdout(INSPECT_USAGE); return 0 }
  if (positionals.length === 0 && (values['state-dir'] !== undefined || values.config !== undefined)) return await inspectHeld({ ...values, showSecrets: values['show-secrets'] === true }, io)
  if (positionals.length === 0) throw new UsageError('inspect: missing token; pass it as an argument or \'-\' to read stdin (see \'kairos-p2p token inspect --help\')')
  if (positionals.length > 1) throw new UsageError(`inspect: expected one token, got ${positionals.length} arguments (see 'kairos-p2p token inspect --help')`)
  const preset = values.preset ?? DEFAULT_PRESET
  if (!(PRESET_NAMES as readonly string[]).includes(preset)) {
    throw new UsageError(`inspect: --preset must be one of ${PRESET_NAMES.join(', ')}, got '${preset}'`)
  }
  const epochText = values['epoch-ms'] ?? String(PRESETS[preset as PresetName].rendezvousEpochMs)
  const epochMs = /^\d{1,15}$/.test(epochText) ? Number(epochText) : NaN
  if (!(epochMs > 0)) throw new UsageError(`inspect: --epoch-ms must be a positive integer of milliseconds, got '${epochText}'`)

  const text = positionals[0] === '-' ? await io.readStdin() : positionals[0] as string
  const token = parseToken(text)
  const keys = deriveKeys(token, values['network-id'] ?? '')
  const report = describeToken(token, keys, systemClock.now(), epochMs, values['show-secrets'] === true)
  io.stdout(values.json === true ? JSON.stringify(report, null, 2) + '\n' : formatReport(report))
  return 0
}

interface InspectReport {
  kind: NetworkToken['kind']
  version: number
  fingerprint: string
  networkId: string
  mdnsTag: string
  mdnsServiceName: string
  dhtProtocol: string
  gossipTopic: string
  syncProtocol: string
  rendezvous: { epochMs: number, epoch: number, currentKeyId: string, previousKeyId: string }
  kairos?: { dhtInterval: number, cryptoInterval: number, maxMessageSize: number }
  secrets?: {
    pnetKey: string
    stateKey: string
    admissionKey: string
    rendezvousCurrent: string
    rendezvousPrevious: string
    kairos?: { room: string, rendezvous: string, mdns: string }
  }
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

function describeToken (token: NetworkToken, keys: DerivedKeys, now: number, epochMs: number, showSecrets: boolean): InspectReport {
  const rv = keys.rendezvousKey(now, epochMs)
  const report: InspectReport = {
    kind: token.kind,
    version: token.version,
    fingerprint: keys.fingerprint,
    networkId: keys.networkId,
    mdnsTag: keys.mdnsTag,
    mdnsServiceName: keys.mdnsServiceName,
    dhtProtocol: keys.dhtProtocol,
    gossipTopic: keys.gossipTopic,
    syncProtocol: keys.syncProtocol,
    // A key id is a prefix of the key: enough to compare two nodes' epochs.
    rendezvous: { epochMs, epoch: rv.epoch, currentKeyId: hex(rv.current).slice(0, 16), previousKeyId: hex(rv.previous).slice(0, 16) }
  }
  if (token.kairos !== undefined) {
    const k = token.kairos
    report.kairos = { dhtInterval: k.dhtInterval, cryptoInterval: k.cryptoInterval, maxMessageSize: k.maxMessageSize }
  }
  if (showSecrets) {
    const psk = new TextDecoder().decode(keys.pnetKey).split('\n')[2] ?? ''
    report.secrets = {
      pnetKey: psk,
      stateKey: hex(keys.stateKey),
      admissionKey: hex(keys.admissionKey),
      rendezvousCurrent: hex(rv.current),
      rendezvousPrevious: hex(rv.previous)
    }
    if (token.kairos !== undefined) {
      report.secrets.kairos = { room: token.kairos.room, rendezvous: token.kairos.rendezvous, mdns: token.kairos.mdns }
    }
  }
  return report
}

function formatReport (r: InspectReport): string {
  const rows: Array<[string, string]> = [
    ['kind', r.kind === 'kairos' ? 'kairos (imported Kairos/edgevpn network token)' : 'kairos-p2p'],
    ['version', String(r.version)],
    ['fingerprint', r.fingerprint],
    ['network id', r.networkId === '' ? '(empty)' : r.networkId],
    ['mdns tag', r.mdnsTag],
    ['mdns service', r.mdnsServiceName],
    ['dht protocol', r.dhtProtocol],
    ['gossip topic', r.gossipTopic],
    ['sync protocol', r.syncProtocol],
    ['rendezvous', `epoch ${r.rendezvous.epoch} (${r.rendezvous.epochMs} ms), key id ${r.rendezvous.currentKeyId}, previous ${r.rendezvous.previousKeyId}`]
  ]
  if (r.kairos !== undefined) {
    rows.push(['kairos otp', `dht interval ${r.kairos.dhtInterval} s, crypto interval ${r.kairos.cryptoInterval} s`])
    rows.push(['kairos max msg', `${r.kairos.maxMessageSize} bytes`])
  }
  if (r.secrets !== undefined) {
    rows.push(['pnet key', r.secrets.pnetKey])
    rows.push(['state key', r.secrets.stateKey])
    rows.push(['admission key', r.secrets.admissionKey])
    rows.push(['rendezvous key', r.secrets.rendezvousCurrent])
    rows.push(['previous key', r.secrets.rendezvousPrevious])
    if (r.secrets.kairos !== undefined) {
      rows.push(['kairos room', r.secrets.kairos.room])
      rows.push(['kairos rendezvous', r.secrets.kairos.rendezvous])
      rows.push(['kairos mdns', r.secrets.kairos.mdns])
    }
  } else {
    rows.push(['secrets', 'hidden (--show-secrets prints them)'])
  }
  const width = Math.max(...rows.map(([k]) => k.length)) + 2
  return rows.map(([k, v]) => `${(k + ':').padEnd(width)}${v}\n`).join('')
}

/** `token inspect --state-dir | --config`: the token the node holds, its generation and grace. */
async function inspectHeld (values: { 'state-dir'?: string | undefined, config?: string[] | undefined, json?: boolean | undefined, showSecrets: boolean }, io: CliIO): Promise<number> {
  const { readTokenState, chooseToken } = await import('../agent/token-state.ts')
  let stateDir = values['state-dir']
  let configured: NetworkToken | undefined
  if (values.config !== undefined) {
    const { loadConfig } = await import('../config/index.ts')
    const p2p = (await loadConfig(values.config)).config.p2p
    stateDir ??= p2p.stateDir
    if (p2p.networkToken !== '') configured = parseToken(p2p.networkToken)
  }
  if (stateDir === undefined || stateDir === '') throw new UsageError('inspect: --state-dir got an empty value; expected the agent\'s state directory')
  const read = readTokenState(stateDir)
  if (read.problem !== undefined) io.stderr(`warning: ${read.file} is damaged (${read.problem}); the agent sets it aside at its next start and runs with the cloud-config's token\n`)
  const persisted = read.state
  if (configured === undefined && persisted === undefined) throw new UsageError(`inspect: no token: ${read.file} does not exist and no --config with p2p.network_token was given`)
  const now = systemClock.now()
  const chosen = chooseToken(configured ?? parseToken(persisted?.token ?? ''), persisted, now)
  const report = {
    fingerprint: deriveKeys(chosen.token).fingerprint,
    generation: chosen.generation,
    source: chosen.source,
    ...(values.showSecrets ? { token: chosen.token.text } : {}),
    ...(chosen.previous === undefined ? {} : { previous: { fingerprint: deriveKeys(chosen.previous.token).fingerprint, until: new Date(chosen.previous.until).toISOString() } })
  }
  if (values.json === true) { io.stdout(JSON.stringify(report, null, 2) + '\n'); return 0 }
  io.stdout((report.token === undefined ? '' : `token:        ${report.token}\n`) + `fingerprint:  ${report.fingerprint}\ngeneration:   ${report.generation}${report.source === 'state' ? ` (from ${read.file}, given by a rotation)` : ' (the cloud-config\'s token)'}\n` +
    (report.previous === undefined ? '' : `grace:        ${report.previous.fingerprint} (the replaced token) is honoured until ${report.previous.until}\n`))
  return 0
}

const ROTATE_USAGE = `Usage: kairos-p2p token rotate [--grace DURATION] [--json] [--state-dir DIR | --config FILE…]

Replaces the site's network token, run on a server (the init server or an HA
server) while its agent runs. A new token is sealed to every known member; each
member switches to it as the record reaches it, and honours the old token until
the grace ends, so a member that is down now catches up when it comes back within
the grace. After the grace the old token admits nothing: a box still holding only
it needs the new token in its cloud-config ('kairos-p2p token inspect --state-dir
DIR --show-secrets' on a member prints it), as do boxes set up from now on.

Options:
  --grace DURATION  how long the old token stays honoured: a number and a unit,
                    s, m, h or d (e.g. 30s, 10m, 36h, 7d); from 10s to 365d
                    (default: 7d)
  --json            print the agent's answer as JSON
  --state-dir DIR   the agent's state directory (default: from --config)
  --config FILE     Kairos cloud-config (repeatable)
  --help            show this help

Exit codes: 0 published, 1 agent failure, 2 bad usage or this node may not rotate.
`

/** Default grace of `token rotate`. @default 7 days */
export const DEFAULT_ROTATE_GRACE = '7d'

/** Milliseconds of a `--grace` value (`30s`, `10m`, `36h`, `7d`); throws `UsageError` naming the value and the form expected. */
export function parseGrace (text: string): number {
  const ms = parseDurationMs(text, 6) ?? NaN
  if (!(ms >= 10_000 && ms <= 365 * 86_400_000)) {
    throw new UsageError(`rotate: --grace got '${text}', expected a duration from 10s to 365d: a number and a unit s, m, h or d, such as 30s, 10m, 36h or 7d`)
  }
  return ms
}

async function rotate (argv: string[], io: CliIO): Promise<number> {
  const { values } = parseCommandArgs('token rotate', argv, {
    grace: { type: 'string' },
    json: { type: 'boolean' },
    'state-dir': { type: 'string' },
    config: { type: 'string', multiple: true },
    help: { type: 'boolean', short: 'h' }
  }, false)
  if (values.help === true) { io.stdout(ROTATE_USAGE); return 0 }
  const graceMs = parseGrace(values.grace ?? DEFAULT_ROTATE_GRACE)
  let stateDir = values['state-dir']
  if (stateDir === undefined) {
    const { loadConfig } = await import('../config/index.ts')
    stateDir = (await loadConfig(values.config ?? [])).config.p2p.stateDir
  }
  if (stateDir === '') throw new UsageError('rotate: empty --state-dir; expected the agent\'s state directory')
  const { postAgent } = await import('../agent/api.ts')
  const text = await postAgent(stateDir, '/token/rotate', { graceMs })
  if (values.json === true) { io.stdout(text.endsWith('\n') ? text : text + '\n'); return 0 }
  const r = JSON.parse(text) as { generation: number, fingerprint: string, until: number, sealedTo: number }
  io.stdout(`rotated to generation ${r.generation} (fingerprint ${r.fingerprint}), sealed to ${r.sealedTo} members; the old token is honoured until ${new Date(r.until).toISOString()}\n`)
  return 0
}
