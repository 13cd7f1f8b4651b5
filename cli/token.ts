// `kairos-p2p token generate | inspect`. Loads only token/ (no libp2p), so it
// starts as fast as Node does.
import { systemClock } from '../util/clock.ts'
import { UsageError } from '../util/errors.ts'
import { DEFAULT_PRESET, PRESET_NAMES, PRESETS } from '../config/presets.ts'
import type { PresetName } from '../config/types.ts'
import {
  deriveKeys, generateToken, parseToken, type DerivedKeys, type NetworkToken
} from '../token/index.ts'
import { parseCommandArgs, type CliIO, type Command } from './io.ts'

const USAGE = `Usage: kairos-p2p token <generate | inspect> [options]

Commands:
  generate   print a new network token (256 random bits, versioned, with a checksum)
  inspect    check a token and print its public derived values

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

Checks a network token (ours or a Kairos/edgevpn token) and prints its version,
kind, public fingerprint and the public values derived from it. '-' reads the
token from stdin, which keeps it out of the process list and shell history.

Options:
  --network-id ID    p2p.network_id the per-network values are scoped to (default: empty)
  --preset NAME      timing preset whose rendezvous epoch to use: ${PRESET_NAMES.join(', ')} (default: ${DEFAULT_PRESET})
  --epoch-ms N       DHT rendezvous epoch length in ms (default: the preset's, ${PRESETS[DEFAULT_PRESET].rendezvousEpochMs})
  --show-secrets     also print the derived secret keys (pnet key, state key, admission key)
  --json             print JSON
  --help             show this help
`

/** The `token` command: `generate` and `inspect`. */
export const command: Command = {
  summary: 'generate and inspect network tokens',
  run: async (argv, io) => {
    const [sub, ...rest] = argv
    if (sub === '--help' || sub === '-h' || sub === 'help') { io.stdout(USAGE); return 0 }
    if (sub === 'generate') return generate(rest, io)
    if (sub === 'inspect') return await inspect(rest, io)
    if (sub === undefined) throw new UsageError('missing command; expected generate or inspect (see \'kairos-p2p token --help\')')
    throw new UsageError(`unknown command '${sub}'; expected generate or inspect (see 'kairos-p2p token --help')`)
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
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' }
  })
  if (values.help === true) { io.stdout(INSPECT_USAGE); return 0 }
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
