import { createHash } from 'node:crypto'
import { isIP } from 'node:net'
import { isAbsolute, join, resolve } from 'node:path'
import { dump } from 'js-yaml'
import type { InstallerConfig, K3sSection } from '../config/types.ts'
import { InputError } from '../util/errors.ts'

/**
 * The install plan: what this node hands to k3s once its role and credential
 * are known. Pure: the same input always gives the same plan, byte for byte,
 * and its digest is what makes the hand-off idempotent across restarts.
 *
 * Translation of the user's `k3s.args` / `k3s-agent.args` into config.yaml keys:
 * - an element is `--name=value`, `--name value`, or `--name` whose value is the
 *   next element when that one does not start with `-`; a lone `--name` is `true`
 *   (k3s's boolean switches). Single-dash aliases (`-d`, `-i`, `-o`, `-t`, `-s`, `-c`,
 *   `-l`) map to their long names;
 * - the values `true` and `false` become YAML booleans, everything else a string;
 * - a flag k3s declares repeatable is always a list; any flag given more than once
 *   becomes a list in the order given; for the flags k3s itself splits on commas
 *   (`disable`, `tls-san`, `node-ip`, …) `a,b` becomes two items;
 * - keys kairos-p2p manages (token, server, cluster-init, …, and with an overlay
 *   node-ip, advertise-address, flannel-iface) are refused with an
 *   `InstallPlanError`; `tls-san` is merged after the overlay address.
 */

/** Role of this node in the k3s cluster. */
export type InstallRole = 'init' | 'server' | 'agent'

/** systemd service (and k3s subcommand) a role runs. */
export type K3sService = 'k3s' | 'k3s-agent'

/** Port of the k3s supervisor / API server on every server. */
export const K3S_API_PORT = 6443

/** Service per role. */
export const SERVICE_FOR_ROLE = { init: 'k3s', server: 'k3s', agent: 'k3s-agent' } as const satisfies Record<InstallRole, K3sService>

/**
 * k3s flags declared as string slices (repeatable) in k3s's own flag
 * definitions; test/roles/install-plan.test.ts holds this list against the
 * recorded k3s flag fixture.
 */
export const K3S_LIST_FLAGS: ReadonlySet<string> = new Set([
  'airgap-extra-registry', 'cluster-cidr', 'cluster-dns', 'disable', 'etcd-arg', 'kube-apiserver-arg',
  'kube-cloud-controller-arg', 'kube-cloud-controller-manager-arg', 'kube-controller-arg',
  'kube-controller-manager-arg', 'kube-proxy-arg', 'kube-scheduler-arg', 'kubelet-arg', 'node-external-dns',
  'node-external-ip', 'node-internal-dns', 'node-ip', 'node-label', 'node-taint', 'service-cidr', 'tls-san'
])

/** List flags whose comma-separated values k3s splits itself; we split them too, for a readable config. */
export const K3S_COMMA_FLAGS: ReadonlySet<string> = new Set([
  'cluster-cidr', 'cluster-dns', 'disable', 'node-external-ip', 'node-ip', 'service-cidr', 'tls-san'
])

const SHORT_ALIASES: Readonly<Record<string, string>> = {
  c: 'config', d: 'data-dir', i: 'node-ip', l: 'log', o: 'write-kubeconfig', s: 'server', t: 'token'
}

/** Keys only the plan writes: credentials, cluster membership, and keys that make no sense in config.yaml. */
const MANAGED_KEYS: Readonly<Record<string, string>> = {
  token: 'the join token comes from the sealed cluster credentials',
  'token-file': 'the join token comes from the sealed cluster credentials',
  'agent-token': 'the agent token comes from the sealed cluster credentials',
  'agent-token-file': 'the agent token comes from the sealed cluster credentials',
  server: 'the server URL comes from the election',
  'cluster-init': 'cluster-init is decided by the election',
  'cluster-reset': 'a reset in config.yaml would repeat on every k3s restart; run it by hand',
  config: 'this is the config file itself'
}

/** Keys the overlay sets when kairos-p2p gives k3s its VPN address and interface. */
const OVERLAY_KEYS: Readonly<Record<string, string>> = {
  'node-ip': 'the overlay address is the node IP',
  'advertise-address': 'the overlay address is the advertised address',
  'flannel-iface': 'the overlay interface carries flannel'
}

/** Environment variables k3s reads as credentials or membership; only the plan sets them (in config.yaml). */
const MANAGED_ENV = new Set(['K3S_TOKEN', 'K3S_TOKEN_FILE', 'K3S_AGENT_TOKEN', 'K3S_AGENT_TOKEN_FILE', 'K3S_URL', 'K3S_CLUSTER_INIT', 'K3S_CLUSTER_RESET'])

/** Header of every config.yaml we write. */
export const CONFIG_HEADER = '# Written by kairos-p2p from the cluster plan; local edits are replaced on the next hand-off.\n'

/** What `buildInstallPlan` needs to know. */
export interface InstallPlanInput {
  /** `init` runs cluster-init, `server` joins as an HA server, `agent` joins as a worker. */
  role: InstallRole
  /** `https://<init server overlay address>:6443`; absent for `init`, required otherwise. */
  serverUrl?: string
  /** The server token for `init` and `server`; the AGENT token for `agent`. */
  token: string
  /** The agent token: required for `init`, recommended for `server` (k3s wants it equal on all servers), refused for `agent`. */
  agentToken?: string
  /**
   * sha256 (hex) of the cluster CA the init server published; joiners only. With it the
   * join token is written in k3s's secure format (`secureJoinToken`), so k3s checks the
   * server's CA against it before it sends the credential.
   */
  caHash?: string
  /** Overlay address given to k3s as node-ip (and advertise-address, tls-san on servers); absent without an overlay. */
  nodeIp?: string
  /** Overlay interface given to k3s as flannel-iface; absent without an overlay. */
  flannelIface?: string
  /** The user's `k3s` section (servers). */
  k3s: K3sSection
  /** The user's `k3s-agent` section (agents). */
  k3sAgent: K3sSection
}

/** The hand-off, ready for an installer. */
export interface InstallPlan {
  /** The role the plan is for. */
  role: InstallRole
  /** `k3s` for servers, `k3s-agent` for agents. */
  service: K3sService
  /** `/etc/rancher/k3s/config.yaml` content. */
  configYaml: string
  /** The same content as an object (keys are k3s flag names). */
  config: Record<string, unknown>
  /** Environment for the k3s service (`<service>.service.env`): the user's `env`. */
  env: Record<string, string>
  /** Environment for the `exec` installer: `KAIROS_ROLE`, `KAIROS_SERVICE`, `KAIROS_SERVER_URL`, `KAIROS_TOKEN`, `KAIROS_AGENT_TOKEN`, `KAIROS_NODE_IP`, `KAIROS_IFACE`, `KAIROS_K3S_CONFIG`, plus `env`. */
  execEnv: Record<string, string>
  /** SHA-256 (hex) over everything above; equal digests mean an identical hand-off. */
  digest: string
}

/** An install plan input that cannot become a valid k3s configuration. */
export class InstallPlanError extends InputError {
  constructor (message: string) {
    super(message)
    this.name = 'InstallPlanError'
  }
}

/** Where k3s keeps its state when run as root and no `--data-dir` is given. */
export const K3S_DEFAULT_DATA_DIR = '/var/lib/rancher/k3s'

/** The cluster CA k3s creates on a server's first start and serves at `/cacerts`, under its data dir. */
export const K3S_SERVER_CA_FILE = 'server/tls/server-ca.crt'

/**
 * The file holding the cluster CA of this node's k3s server, as the init server reads
 * it to publish its hash: `<data-dir>/server/tls/server-ca.crt`, with the data dir from
 * `k3s.args` (`--data-dir`/`-d`) or k3s's default, under the `k3s` installer's root.
 * Undefined for `dry-run`, which starts no k3s. Throws `InstallPlanError` on bad args.
 */
export function clusterCaFile (installer: InstallerConfig, k3s: Pick<K3sSection, 'args'>): string | undefined {
  if (installer.kind === 'dry-run') return undefined
  const given = translateK3sArgs(k3s.args, 'k3s.args')['data-dir']
  const dataDir = typeof given === 'string' && given !== '' ? given : K3S_DEFAULT_DATA_DIR
  const absolute = isAbsolute(dataDir) ? dataDir : resolve('/', dataDir)
  return join(installer.kind === 'k3s' ? installer.root : '/', absolute, K3S_SERVER_CA_FILE)
}

/** The server URL for a server address: `https://<address>:6443` (IPv6 in brackets). */
export function serverUrlFor (address: string): string {
  return `https://${isIP(address) === 6 ? `[${address}]` : address}:${K3S_API_PORT}`
}

/** Builds the plan for one node. Throws `InstallPlanError` on inconsistent input or a user arg that collides with a managed key. */
export function buildInstallPlan (input: InstallPlanInput): InstallPlan {
  const { role } = input
  if (!(role in SERVICE_FOR_ROLE)) throw new InstallPlanError(`install plan: role must be init, server or agent, got ${JSON.stringify(role)}`)
  const service = SERVICE_FOR_ROLE[role]
  const isServer = role !== 'agent'
  const sectionName = isServer ? 'k3s' : 'k3s-agent'
  const section = isServer ? input.k3s : input.k3sAgent

  checkSecret(input.token, role === 'agent' ? 'agent token' : 'server token')
  if (input.agentToken !== undefined) {
    if (role === 'agent') throw new InstallPlanError('install plan: an agent receives only the agent token (as token), got a separate agentToken as well')
    checkSecret(input.agentToken, 'agent token')
    if (input.agentToken === input.token) throw new InstallPlanError('install plan: the agent token must differ from the server token')
  } else if (role === 'init') {
    throw new InstallPlanError('install plan: the init server needs agentToken, so agents never hold the server token')
  }
  if (input.caHash !== undefined) {
    if (role === 'init') throw new InstallPlanError('install plan: the init server creates the cluster CA and pins none, got a caHash')
    if (!/^[0-9a-f]{64}$/.test(input.caHash)) throw new InstallPlanError(`install plan: caHash must be the sha256 of the cluster CA as 64 lowercase hex digits, got ${JSON.stringify(input.caHash)}`)
  }
  if (role === 'init' && input.serverUrl !== undefined) throw new InstallPlanError(`install plan: the init server starts the cluster and takes no serverUrl, got ${JSON.stringify(input.serverUrl)}`)
  if (role !== 'init') checkServerUrl(input.serverUrl, role)
  if (input.nodeIp !== undefined && isIP(input.nodeIp) === 0) throw new InstallPlanError(`install plan: nodeIp must be an IPv4 or IPv6 address, got ${JSON.stringify(input.nodeIp)}`)
  if (input.flannelIface !== undefined && !/^[A-Za-z0-9_.:-]{1,15}$/.test(input.flannelIface)) {
    throw new InstallPlanError(`install plan: flannelIface must be an interface name of 1-15 characters, got ${JSON.stringify(input.flannelIface)}`)
  }

  const user = translateK3sArgs(section.args, `${sectionName}.args`)
  const overlayKeys = new Set<string>()
  if (input.nodeIp !== undefined) { overlayKeys.add('node-ip'); if (isServer) overlayKeys.add('advertise-address') }
  if (input.flannelIface !== undefined) overlayKeys.add('flannel-iface')
  for (const key of Object.keys(user)) {
    const managed = MANAGED_KEYS[key]
    if (managed !== undefined) throw new InstallPlanError(`${sectionName}.args: --${key} is managed by kairos-p2p (${managed}); remove it`)
    if (overlayKeys.has(key)) throw new InstallPlanError(`${sectionName}.args: --${key} conflicts with the VPN overlay (${OVERLAY_KEYS[key]}); remove it or set p2p.vpn.use: false`)
  }

  const config: Record<string, unknown> = {}
  if (role === 'init') config['cluster-init'] = true
  else config.server = input.serverUrl
  const token = input.caHash === undefined ? input.token : secureJoinToken(input.caHash, role === 'agent' ? 'agent' : 'server', input.token)
  config.token = token
  if (input.agentToken !== undefined) config['agent-token'] = input.agentToken
  if (input.nodeIp !== undefined) {
    config['node-ip'] = input.nodeIp
    if (isServer) {
      config['advertise-address'] = input.nodeIp
      config['tls-san'] = unique([input.nodeIp, ...asList(user['tls-san'])])
    }
  }
  if (input.flannelIface !== undefined) config['flannel-iface'] = input.flannelIface
  for (const [key, value] of Object.entries(user)) {
    if (!(key in config)) config[key] = value
  }

  const env = checkEnv(section.env, `${sectionName}.env`)
  const configYaml = CONFIG_HEADER + dump(config, { lineWidth: -1, noRefs: true })
  const execEnv: Record<string, string> = { ...env, KAIROS_ROLE: role, KAIROS_SERVICE: service }
  if (input.serverUrl !== undefined) execEnv.KAIROS_SERVER_URL = input.serverUrl
  execEnv.KAIROS_TOKEN = token
  if (input.agentToken !== undefined) execEnv.KAIROS_AGENT_TOKEN = input.agentToken
  if (input.nodeIp !== undefined) execEnv.KAIROS_NODE_IP = input.nodeIp
  if (input.flannelIface !== undefined) execEnv.KAIROS_IFACE = input.flannelIface
  execEnv.KAIROS_K3S_CONFIG = configYaml

  const digest = createHash('sha256')
    .update(JSON.stringify(['kairos-p2p/install-plan/v1', role, service, configYaml, sortedEntries(env), sortedEntries(execEnv)]))
    .digest('hex')
  return { role, service, configYaml, config, env, execEnv, digest }
}

/**
 * The user's k3s args as config.yaml keys (see the module comment for the rules).
 * `path` names the config key in error messages, e.g. `k3s.args`.
 */
export function translateK3sArgs (args: readonly string[], path: string): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  const seen = new Set<string>()
  for (let i = 0; i < args.length; i++) {
    const arg = (args[i] ?? '').trim()
    const match = /^(--?)([A-Za-z0-9][A-Za-z0-9-]*)(?:(=|\s+)([\s\S]*))?$/.exec(arg)
    if (match === null) {
      throw new InstallPlanError(`${path}[${i}]: expected --flag, --flag=value or --flag value, got ${JSON.stringify(args[i])}`)
    }
    const [, dashes, rawName = '', separator, rawValue] = match
    let name = rawName
    if (dashes === '-') {
      const long = SHORT_ALIASES[rawName]
      if (long === undefined) throw new InstallPlanError(`${path}[${i}]: unknown short flag -${rawName}; use the long --name form`)
      name = long
    }
    let text: string | undefined = separator === undefined ? undefined : rawValue
    if (text === undefined) {
      const next = args[i + 1]
      if (next !== undefined && !next.trimStart().startsWith('-')) { text = next; i++ }
    }
    const values: unknown[] = text === undefined
      ? [true]
      : K3S_COMMA_FLAGS.has(name)
        ? text.split(',').map((v) => v.trim()).filter((v) => v !== '')
        : [scalar(text)]
    const previous = out[name]
    if (seen.has(name) || K3S_LIST_FLAGS.has(name)) {
      out[name] = [...(previous === undefined ? [] : asList(previous)), ...values]
    } else {
      out[name] = values.length === 1 ? values[0] : values
    }
    seen.add(name)
  }
  return out
}

/**
 * k3s's secure join token: `K10<sha256 of the cluster CA>::<user>:<secret>`, user
 * `server` for the server token and `node` for the agent token, as k3s writes them
 * to its own token files. A joiner holding it fetches the server's `/cacerts`, checks
 * its hash and only then sends the secret (the short form trusts the first server it
 * reaches).
 */
export function secureJoinToken (caHash: string, kind: 'server' | 'agent', secret: string): string {
  return `K10${caHash}::${kind === 'server' ? 'server' : 'node'}:${secret}`
}

/** The secret inside a secure join token, or the token itself when short. */
function joinSecret (token: string): string {
  const m = /^K10[0-9a-f]{64}::[^:]+:(.+)$/.exec(token)
  return m?.[1] ?? token
}

/** A copy of the plan safe to print or log: every occurrence of a token replaced by `<redacted sha256:…>`. */
export function redactPlan (plan: InstallPlan): { role: InstallRole, service: K3sService, digest: string, config: Record<string, unknown>, env: Record<string, string>, execEnv: Record<string, string> } {
  const tokens = [plan.config.token, plan.config['agent-token']].filter((s): s is string => typeof s === 'string' && s !== '')
  // The whole token first, then the secret inside a secure one, wherever else it shows.
  const secrets = [...tokens, ...tokens.map(joinSecret).filter((s) => !tokens.includes(s))]
  const scrub = (value: unknown): unknown => {
    if (typeof value === 'string') return secrets.reduce((text, secret) => text.split(secret).join(redacted(secret)), value)
    if (Array.isArray(value)) return value.map(scrub)
    return value
  }
  const scrubAll = <T>(record: Record<string, T>): Record<string, T> => Object.fromEntries(Object.entries(record).map(([k, v]) => [k, scrub(v) as T]))
  return { role: plan.role, service: plan.service, digest: plan.digest, config: scrubAll(plan.config), env: scrubAll(plan.env), execEnv: scrubAll(plan.execEnv) }
}

function redacted (secret: string): string {
  return `<redacted sha256:${createHash('sha256').update(secret).digest('hex').slice(0, 12)}>`
}

function checkSecret (value: unknown, what: string): void {
  if (typeof value !== 'string' || value === '' || /[\s\u0000-\u001f\u007f]/.test(value)) {
    throw new InstallPlanError(`install plan: the ${what} must be a non-empty string without whitespace or control characters`)
  }
}

function checkServerUrl (url: string | undefined, role: InstallRole): void {
  if (url === undefined) throw new InstallPlanError(`install plan: a ${role} joins an existing cluster and needs serverUrl (https://<init server address>:${K3S_API_PORT})`)
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new InstallPlanError(`install plan: serverUrl must be https://<host>:<port>, got ${JSON.stringify(url)}`)
  }
  if (parsed.protocol !== 'https:' || parsed.hostname === '' || parsed.username !== '' || parsed.password !== '' || (parsed.pathname !== '/' && parsed.pathname !== '') || parsed.search !== '' || parsed.hash !== '' || url.endsWith('/')) {
    throw new InstallPlanError(`install plan: serverUrl must be https://<host>:<port> with nothing after the port, got ${JSON.stringify(url)}`)
  }
}

function checkEnv (env: Record<string, string>, path: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new InstallPlanError(`${path}: ${JSON.stringify(name)} is not a valid environment variable name`)
    if (MANAGED_ENV.has(name)) throw new InstallPlanError(`${path}: ${name} is managed by kairos-p2p (credentials and membership come from the cluster plan); remove it`)
    if (typeof value !== 'string' || /[\n\r\u0000]/.test(value)) throw new InstallPlanError(`${path}.${name}: expected a single-line string, got ${JSON.stringify(value)}`)
    out[name] = value
  }
  return out
}

function scalar (text: string): unknown {
  if (text === 'true') return true
  if (text === 'false') return false
  return text
}

function asList (value: unknown): unknown[] {
  if (value === undefined) return []
  return Array.isArray(value) ? value : [value]
}

function unique (values: unknown[]): unknown[] {
  return [...new Set(values)]
}

function sortedEntries (record: Record<string, string>): Array<[string, string]> {
  return Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
}
