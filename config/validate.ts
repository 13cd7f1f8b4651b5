import type { Config, ConfigWarning, InstallerConfig, K3sSection, PresetName, StaticRole, Timing } from './types.ts'
import { ConfigError, makeIssue, type ConfigIssue } from './errors.ts'
import { isMap, type YamlMap } from './merge.ts'
import { nearest } from './suggest.ts'
import { checkMultiaddr, isValidInterfaceName, parseIpv4Cidr } from './net.ts'
import { isTemplate } from './template.ts'
import { collectSecrets, redactText } from './redact.ts'
import { DEFAULT_PRESET, PRESET_NAMES, PRESETS, TIMING_FIELDS, isPresetName, timingKey } from './presets.ts'
import {
  DEFAULT_HA_MASTER_NODES, DEFAULT_INSTALLER, DEFAULT_K3S_ROOT, DEFAULT_LISTEN, DEFAULT_MINIMUM_NODES,
  DEFAULT_FORGET_AFTER_MS, DEFAULT_STATE_DIR, DEFAULT_VPN_CIDR, DEFAULT_VPN_INTERFACE, DEFAULT_VPN_MTU, DEFAULT_VPN_PORT, EXAMPLE_METRICS_PORT
} from './defaults.ts'
import { isIP } from 'node:net'
import { parseDurationMs } from '../util/duration.ts'

/** Options of {@link resolveConfig}. */
export interface ResolveOptions {
  /** Which file wrote each leaf path (from `deepMerge`), to name it in errors. */
  origins?: ReadonlyMap<string, string>
  /** Overrides `p2p.preset`. @default the file's `p2p.preset`, else 'lan' */
  preset?: PresetName
}

// Keys under p2p that we read (Kairos's and ours), and Kairos keys we accept but do not use.
const P2P_KEYS = ['network_token', 'network_id', 'role', 'minimum_nodes', 'disable_dht', 'auto', 'vpn',
  'bootstrap_peers', 'listen', 'mdns', 'state_dir', 'installer', 'preset', 'timing', 'forget_after', 'metrics'] as const
const METRICS_KEYS = ['listen'] as const
const P2P_KAIROS_UNUSED = ['dns', 'loglevel', 'dynamic_roles', 'distribution', 'hybrid', 'hybrid_vpn', 'skip_auto'] as const
const AUTO_KEYS = ['enable', 'ha'] as const
const HA_KEYS = ['enable', 'master_nodes'] as const
const HA_KAIROS_UNUSED = ['external_db'] as const
const VPN_KEYS = ['create', 'use', 'cidr', 'interface', 'port', 'mtu'] as const
const VPN_KAIROS_SILENT = ['env'] as const
const K3S_KEYS = ['enabled', 'args', 'env'] as const
const K3S_KAIROS_SILENT = ['replace_args', 'replace_env', 'embedded_registry'] as const
const INSTALLER_KINDS = ['k3s', 'exec', 'dry-run'] as const
/** Arguments kairos-p2p sets itself at hand-off; a user copy would conflict. */
const MANAGED_K3S_ARGS = ['--token', '--agent-token', '--server', '--cluster-init', '--node-ip', '--flannel-iface', '--advertise-address']

// yaml.v3, which Kairos uses, accepts YAML 1.1 booleans when the target field is a bool.
const YAML11_TRUE = new Set(['y', 'Y', 'yes', 'Yes', 'YES', 'on', 'On', 'ON'])
const YAML11_FALSE = new Set(['n', 'N', 'no', 'No', 'NO', 'off', 'Off', 'OFF'])

/** Collects issues and warnings while reading one merged document. */
class Reader {
  readonly issues: ConfigIssue[] = []
  readonly warnings: ConfigWarning[] = []
  readonly origins: ReadonlyMap<string, string>
  /** Every secret string of the document, blanked out of every message (see `collectSecrets`). */
  readonly secrets: ReadonlySet<string>

  constructor (origins: ReadonlyMap<string, string>, secrets: ReadonlySet<string>) {
    this.origins = origins
    this.secrets = secrets
  }

  fail (path: string, value: unknown, expected: string, secret = false): undefined {
    const source = this.origins.get(path)
    const options = { secret, secrets: this.secrets }
    this.issues.push(makeIssue(path, value, expected, source === undefined ? options : { ...options, source }))
    return undefined
  }

  warn (path: string, message: string): void {
    this.warnings.push({ path: redactText(path, this.secrets), message: redactText(message, this.secrets) })
  }

  /** Warns about keys of `map` that are neither read nor known Kairos keys, suggesting the nearest one. */
  checkKeys (map: YamlMap, path: string, known: readonly string[], kairosUnused: readonly string[] = [], silent: readonly string[] = []): void {
    for (const key of Object.keys(map)) {
      if (known.includes(key) || silent.includes(key)) continue
      const keyPath = `${path}.${key}`
      if (kairosUnused.includes(key)) {
        this.warn(keyPath, 'Kairos key not used by kairos-p2p; ignored')
        continue
      }
      const guess = nearest(key, [...known, ...kairosUnused, ...silent])
      this.warn(keyPath, guess === undefined ? 'unknown key, ignored' : `unknown key (did you mean ${path}.${guess}?)`)
    }
  }

  map (parent: YamlMap, key: string, path: string): YamlMap | undefined {
    const v = parent[key]
    if (v === undefined || v === null) return undefined
    if (!isMap(v)) return this.fail(path, v, 'a mapping')
    return v
  }

  bool (parent: YamlMap, key: string, path: string): boolean | undefined {
    const v = parent[key]
    if (v === undefined || v === null) return undefined
    if (typeof v === 'boolean') return v
    if (typeof v === 'string' && YAML11_TRUE.has(v)) return true
    if (typeof v === 'string' && YAML11_FALSE.has(v)) return false
    return this.fail(path, v, 'true or false')
  }

  int (parent: YamlMap, key: string, path: string, min: number, max: number, expected: string): number | undefined {
    const v = parent[key]
    if (v === undefined || v === null) return undefined
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) return this.fail(path, v, expected)
    return v
  }

  string (parent: YamlMap, key: string, path: string, expected: string, secret = false): string | undefined {
    const v = parent[key]
    if (v === undefined || v === null) return undefined
    if (typeof v !== 'string') return this.fail(path, v, expected, secret)
    return v
  }

  stringList (parent: YamlMap, key: string, path: string, expected: string): string[] | undefined {
    const v = parent[key]
    if (v === undefined || v === null) return undefined
    if (!Array.isArray(v)) return this.fail(path, v, expected)
    const out: string[] = []
    let ok = true
    v.forEach((item, i) => {
      if (typeof item === 'string') out.push(item)
      else { this.fail(`${path}[${i}]`, item, 'a string'); ok = false }
    })
    return ok ? out : undefined
  }
}

/**
 * Validates a merged cloud-config document and resolves it into a {@link Config}:
 * Kairos defaults, our defaults, the preset's timing and `p2p.timing` overrides.
 * Pure. Collects every problem and throws one {@link ConfigError} listing them all.
 */
export function resolveConfig (doc: YamlMap, options: ResolveOptions = {}): { config: Config, warnings: ConfigWarning[] } {
  const r = new Reader(options.origins ?? new Map(), collectSecrets(doc))
  checkTopLevel(r, doc)

  const p2p = r.map(doc, 'p2p', 'p2p') ?? {}
  r.checkKeys(p2p, 'p2p', P2P_KEYS, P2P_KAIROS_UNUSED)

  const networkToken = r.string(p2p, 'network_token', 'p2p.network_token', 'a string (the network token)', true) ?? ''
  const networkId = readNetworkId(r, p2p)
  const role = readRole(r, p2p)
  const minimumNodes = readMinimumNodes(r, p2p)
  const disableDht = r.bool(p2p, 'disable_dht', 'p2p.disable_dht') ?? false

  const auto = r.map(p2p, 'auto', 'p2p.auto') ?? {}
  r.checkKeys(auto, 'p2p.auto', AUTO_KEYS)
  const autoEnable = r.bool(auto, 'enable', 'p2p.auto.enable') ?? true
  const { haEnable, haMasterNodes } = readHa(r, auto)

  const vpn = readVpn(r, p2p)
  const bootstrapPeers = readMultiaddrs(r, p2p, 'bootstrap_peers', true) ?? []
  const listen = readMultiaddrs(r, p2p, 'listen', false) ?? [...DEFAULT_LISTEN]
  const mdns = r.bool(p2p, 'mdns', 'p2p.mdns') ?? true
  const stateDir = readAbsolutePath(r, p2p, 'state_dir', 'p2p.state_dir') ?? DEFAULT_STATE_DIR
  const forgetAfterMs = readForgetAfter(r, p2p)
  const installer = readInstaller(r, p2p)
  const preset = readPreset(r, p2p, options.preset)
  const timing = readTiming(r, p2p, preset)
  const metrics = readMetrics(r, p2p)

  const k3s = readK3s(r, doc, 'k3s')
  const k3sAgent = readK3s(r, doc, 'k3s-agent')

  const config: Config = {
    p2p: {
      networkToken,
      networkId,
      role,
      minimumNodes,
      disableDht,
      autoEnable,
      haEnable,
      haMasterNodes,
      vpn,
      bootstrapPeers,
      listen,
      mdns,
      stateDir,
      forgetAfterMs,
      installer,
      preset,
      timing,
      ...(metrics === undefined ? {} : { metrics })
    },
    k3s,
    k3sAgent
  }
  if (r.issues.length === 0) crossChecks(r, config, p2p)
  if (r.issues.length > 0) throw new ConfigError(r.issues)
  return { config, warnings: r.warnings }
}

function checkTopLevel (r: Reader, doc: YamlMap): void {
  for (const key of Object.keys(doc)) {
    if (key === 'p2p' || key === 'k3s' || key === 'k3s-agent') continue
    const canonical = key.toLowerCase().replaceAll('_', '-')
    const meant = ['p2p', 'k3s', 'k3s-agent'].find((k) => k === canonical || (k.length > 3 && nearest(key, [k]) !== undefined))
    if (meant !== undefined) r.warn(key, `unknown key (did you mean ${meant}?)`)
  }
  const legacy = doc.kairos
  if (isMap(legacy) && legacy.network_token !== undefined && !isMap(doc.p2p)) {
    r.warn('kairos', 'the old name of the p2p block; kairos-p2p reads only p2p: (move network_token and the rest under p2p:)')
  }
}

function readNetworkId (r: Reader, p2p: YamlMap): string {
  const v = p2p.network_id
  // yaml.v3 decodes any scalar into a string field, so `network_id: 2024` is an id too.
  if (typeof v === 'number' && Number.isInteger(v)) return String(v)
  const id = r.string(p2p, 'network_id', 'p2p.network_id', 'a string') ?? ''
  if (isTemplate(id)) {
    r.warn('p2p.network_id', 'is an unrendered template; it is checked once Kairos has rendered the file')
    return id
  }
  if (id.length > 64 || /[\s\u0000-\u001f]/.test(id)) {
    r.fail('p2p.network_id', id, 'at most 64 characters without spaces or control characters')
    return ''
  }
  return id
}

function readRole (r: Reader, p2p: YamlMap): StaticRole {
  const v = p2p.role
  const expected = 'one of "master", "worker", "none", or "" for automatic'
  if (v === undefined || v === null || v === '' || v === 'auto') return 'auto'
  if (v === 'master' || v === 'worker' || v === 'none') return v
  const guess = typeof v === 'string' ? nearest(v, ['master', 'worker', 'none', 'auto']) : undefined
  r.fail('p2p.role', v, guess === undefined ? expected : `${expected} (did you mean "${guess}"?)`)
  return 'auto'
}

/** Bounds of `p2p.forget_after`: a minute (tests, labs) to ten years. */
const FORGET_AFTER_MIN_MS = 60_000
const FORGET_AFTER_MAX_MS = 3650 * 86_400_000

function readForgetAfter (r: Reader, p2p: YamlMap): number {
  const v = p2p.forget_after
  if (v === undefined || v === null) return DEFAULT_FORGET_AFTER_MS
  const expected = `a duration from 1m to 3650d, such as 7d, 36h, 90m, 600s or a number of seconds`
  let ms: number | undefined
  if (typeof v === 'number' && Number.isInteger(v)) ms = v * 1_000
  else if (typeof v === 'string') ms = parseDurationMs(v, 7)
  if (ms === undefined || ms < FORGET_AFTER_MIN_MS || ms > FORGET_AFTER_MAX_MS) return r.fail('p2p.forget_after', v, expected) ?? DEFAULT_FORGET_AFTER_MS
  return ms
}

function readMinimumNodes (r: Reader, p2p: YamlMap): number {
  const n = r.int(p2p, 'minimum_nodes', 'p2p.minimum_nodes', 0, 10_000, 'a non-negative integer')
  if (n === 0) r.warn('p2p.minimum_nodes', `0 means the default (${DEFAULT_MINIMUM_NODES}), as in Kairos; write 1 for a single-node site`)
  return n === undefined || n === 0 ? DEFAULT_MINIMUM_NODES : n
}

function readHa (r: Reader, auto: YamlMap): { haEnable: boolean, haMasterNodes: number } {
  const ha = r.map(auto, 'ha', 'p2p.auto.ha') ?? {}
  r.checkKeys(ha, 'p2p.auto.ha', HA_KEYS, HA_KAIROS_UNUSED)
  const enable = r.bool(ha, 'enable', 'p2p.auto.ha.enable')
  const masters = r.int(ha, 'master_nodes', 'p2p.auto.ha.master_nodes', 0, 100, 'a non-negative integer (servers besides the cluster-init server)')
  if (enable === undefined && masters !== undefined) {
    // Kairos turns HA on when master_nodes is given without enable; so do we, and say so.
    r.warn('p2p.auto.ha.master_nodes', 'set without p2p.auto.ha.enable; HA is enabled, as in Kairos (write enable: true to be explicit)')
    return { haEnable: true, haMasterNodes: masters }
  }
  if (enable === false && masters !== undefined && masters > 0) {
    r.warn('p2p.auto.ha.master_nodes', 'ignored because p2p.auto.ha.enable is false')
  }
  if (enable !== true) return { haEnable: false, haMasterNodes: 0 }
  return { haEnable: true, haMasterNodes: masters ?? DEFAULT_HA_MASTER_NODES }
}

function readMetrics (r: Reader, p2p: YamlMap): Config['p2p']['metrics'] {
  const m = r.map(p2p, 'metrics', 'p2p.metrics')
  if (m === undefined) return undefined
  r.checkKeys(m, 'p2p.metrics', METRICS_KEYS)
  const expected = `host:port with an IP address and a port from 1 to 65535, e.g. 127.0.0.1:${EXAMPLE_METRICS_PORT} or [fd00::1]:${EXAMPLE_METRICS_PORT}`
  const listen = r.string(m, 'listen', 'p2p.metrics.listen', expected)
  if (listen === undefined) return {}
  const hp = /^\[([^\]]+)\]:(\d{1,5})$/.exec(listen) ?? /^([^:[\]]+):(\d{1,5})$/.exec(listen)
  const port = hp === null ? NaN : Number(hp[2])
  const host = hp?.[1] ?? ''
  const family = isIP(host)
  const bracketed = listen.startsWith('[')
  if (hp === null || !(port >= 1 && port <= 65535) || family === 0 || (family === 6) !== bracketed) {
    r.fail('p2p.metrics.listen', listen, expected)
    return {}
  }
  return { listen }
}

function readVpn (r: Reader, p2p: YamlMap): Config['p2p']['vpn'] {
  const vpn = r.map(p2p, 'vpn', 'p2p.vpn') ?? {}
  r.checkKeys(vpn, 'p2p.vpn', VPN_KEYS, [], VPN_KAIROS_SILENT)
  const create = r.bool(vpn, 'create', 'p2p.vpn.create') ?? true
  const useRaw = r.bool(vpn, 'use', 'p2p.vpn.use')
  if (useRaw === true && !create) r.warn('p2p.vpn.use', 'has no effect when p2p.vpn.create is false (k3s uses the LAN addresses)')
  // Kairos: the overlay is used by Kubernetes only when it is also created.
  const use = create && (useRaw ?? true)

  let cidr = DEFAULT_VPN_CIDR
  const cidrText = r.string(vpn, 'cidr', 'p2p.vpn.cidr', 'an IPv4 network in CIDR form, e.g. 10.88.0.0/16')
  if (cidrText !== undefined) {
    const parsed = parseIpv4Cidr(cidrText)
    if (parsed === undefined || parsed.prefix > 30) {
      r.fail('p2p.vpn.cidr', cidrText, 'an IPv4 network in CIDR form with a prefix length of at most 30, e.g. 10.88.0.0/16')
    } else {
      if (parsed.address !== parsed.network) r.warn('p2p.vpn.cidr', `host bits set in ${cidrText}; using the network ${parsed.canonical}`)
      cidr = parsed.canonical
    }
  }

  let iface = DEFAULT_VPN_INTERFACE
  const ifaceText = r.string(vpn, 'interface', 'p2p.vpn.interface', 'an interface name of 1–15 characters from A–Z a–z 0–9 _ . -')
  if (ifaceText !== undefined) {
    if (isValidInterfaceName(ifaceText)) iface = ifaceText
    else r.fail('p2p.vpn.interface', ifaceText, 'an interface name of 1–15 characters from A–Z a–z 0–9 _ . -')
  }
  const port = r.int(vpn, 'port', 'p2p.vpn.port', 1, 65535, 'a UDP port number 1–65535') ?? DEFAULT_VPN_PORT
  const mtu = r.int(vpn, 'mtu', 'p2p.vpn.mtu', 1280, 9000, 'an MTU from 1280 to 9000') ?? DEFAULT_VPN_MTU
  return { create, use, cidr, interface: iface, port, mtu }
}

function readMultiaddrs (r: Reader, p2p: YamlMap, key: 'bootstrap_peers' | 'listen', requirePeerId: boolean): string[] | undefined {
  const path = `p2p.${key}`
  const what = requirePeerId
    ? 'a multiaddr with a peer id, e.g. /ip4/10.0.0.1/tcp/4001/p2p/12D3KooW…'
    : 'a listen multiaddr, e.g. /ip4/0.0.0.0/tcp/4001'
  const list = r.stringList(p2p, key, path, `a list of multiaddrs (each ${what})`)
  if (list === undefined) return undefined
  let ok = true
  list.forEach((addr, i) => {
    const problem = checkMultiaddr(addr, { requirePeerId })
    if (problem !== undefined) { r.fail(`${path}[${i}]`, addr, `${what} (${problem})`); ok = false }
  })
  return ok ? list : undefined
}

function readAbsolutePath (r: Reader, map: YamlMap, key: string, path: string): string | undefined {
  const v = r.string(map, key, path, 'an absolute path')
  if (v === undefined) return undefined
  if (!v.startsWith('/') || v.includes('\0')) return r.fail(path, v, 'an absolute path')
  return v
}

function readInstaller (r: Reader, p2p: YamlMap): InstallerConfig {
  const v = p2p.installer
  const kinds = 'one of "k3s", "exec", "dry-run"'
  if (v === undefined || v === null) return { ...DEFAULT_INSTALLER }
  // Shorthand: `installer: dry-run` or `installer: k3s`.
  if (v === 'dry-run') return { kind: 'dry-run' }
  if (v === 'k3s') return { kind: 'k3s', root: DEFAULT_K3S_ROOT }
  if (!isMap(v)) {
    r.fail('p2p.installer', v, 'a mapping with kind: k3s | exec | dry-run (or the word k3s or dry-run)')
    return { ...DEFAULT_INSTALLER }
  }
  const kind = v.kind
  if (kind === 'k3s') {
    r.checkKeys(v, 'p2p.installer', ['kind', 'root'])
    return { kind: 'k3s', root: readAbsolutePath(r, v, 'root', 'p2p.installer.root') ?? DEFAULT_K3S_ROOT }
  }
  if (kind === 'exec') {
    r.checkKeys(v, 'p2p.installer', ['kind', 'command'])
    const expected = 'a non-empty list of strings (argv, not a shell string)'
    const command = r.stringList(v, 'command', 'p2p.installer.command', expected)
    if (v.command === undefined || v.command === null) r.fail('p2p.installer.command', v.command, `${expected} for kind exec`)
    else if (command !== undefined && (command.length === 0 || command[0] === '')) r.fail('p2p.installer.command', command, expected)
    return { kind: 'exec', command: command ?? [] }
  }
  if (kind === 'dry-run') {
    r.checkKeys(v, 'p2p.installer', ['kind'])
    return { kind: 'dry-run' }
  }
  const guess = typeof kind === 'string' ? nearest(kind, INSTALLER_KINDS) : undefined
  r.fail('p2p.installer.kind', kind, guess === undefined ? kinds : `${kinds} (did you mean "${guess}"?)`)
  return { ...DEFAULT_INSTALLER }
}

function readPreset (r: Reader, p2p: YamlMap, override: PresetName | undefined): PresetName {
  const v = p2p.preset
  let preset: PresetName = DEFAULT_PRESET
  if (v !== undefined && v !== null) {
    if (isPresetName(v)) preset = v
    else r.fail('p2p.preset', v, `one of ${PRESET_NAMES.map((n) => `"${n}"`).join(', ')}`)
  }
  return override ?? preset
}

function readTiming (r: Reader, p2p: YamlMap, preset: PresetName): Timing {
  const timing: Timing = { ...PRESETS[preset] }
  const overrides = r.map(p2p, 'timing', 'p2p.timing')
  if (overrides === undefined) return timing
  const keys = TIMING_FIELDS.map(timingKey)
  r.checkKeys(overrides, 'p2p.timing', keys)
  for (const field of TIMING_FIELDS) {
    const key = timingKey(field)
    const ms = r.int(overrides, key, `p2p.timing.${key}`, 1, 86_400_000, 'a positive integer number of milliseconds')
    if (ms !== undefined) timing[field] = ms
  }
  return timing
}

function readK3s (r: Reader, doc: YamlMap, name: 'k3s' | 'k3s-agent'): K3sSection {
  const section = r.map(doc, name, name) ?? {}
  r.checkKeys(section, name, K3S_KEYS, [], K3S_KAIROS_SILENT)
  const enabled = r.bool(section, 'enabled', `${name}.enabled`) ?? false
  const args = r.stringList(section, 'args', `${name}.args`, 'a list of strings, e.g. ["--disable=traefik,servicelb"]') ?? []
  for (const arg of args) {
    const flag = arg.split('=')[0] ?? ''
    if (MANAGED_K3S_ARGS.includes(flag)) r.warn(`${name}.args`, `${flag} is set by kairos-p2p at hand-off; remove it from ${name}.args`)
  }
  const env: Record<string, string> = {}
  const envMap = r.map(section, 'env', `${name}.env`)
  for (const [key, value] of Object.entries(envMap ?? {})) {
    // yaml.v3 decodes any scalar into a string value, so numbers and booleans are fine.
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') env[key] = String(value)
    else r.fail(`${name}.env.${key}`, value, 'a string', true)
  }
  return { enabled, args, env }
}

function crossChecks (r: Reader, config: Config, p2p: YamlMap): void {
  const c = config.p2p
  if (c.networkToken === '') {
    r.warn('p2p.network_token', 'not set; a node cannot join a network without it (create one with `kairos-p2p token generate`)')
  } else if (isTemplate(c.networkToken)) {
    r.warn('p2p.network_token', 'is an unrendered template; it is checked once Kairos has rendered the file')
  }
  if (c.disableDht && !c.mdns && c.bootstrapPeers.length === 0) {
    r.fail('p2p.mdns', false, 'true when p2p.disable_dht is true and p2p.bootstrap_peers is empty (otherwise no peer can ever be found)')
  }
  if (!c.autoEnable && c.role === 'auto') {
    r.warn('p2p.auto.enable', 'false with no p2p.role: this node never gets a role; set p2p.role')
  }
  if (c.role === 'none' && !c.vpn.create) {
    r.warn('p2p.role', 'none with p2p.vpn.create false: this node only relays cluster state')
  }
  if (c.autoEnable && c.role === 'auto' && p2p.minimum_nodes === 1) {
    r.warn('p2p.minimum_nodes', '1 lets a node that boots alone form its own cluster; use it only for a single-node site')
  }
  if (c.haEnable) {
    const servers = 1 + c.haMasterNodes
    if (servers % 2 === 0) r.warn('p2p.auto.ha.master_nodes', `${c.haMasterNodes} gives ${servers} servers; etcd needs an odd number to tolerate the same failures with fewer machines`)
    if (c.minimumNodes < servers) r.warn('p2p.minimum_nodes', `${c.minimumNodes} is less than the ${servers} servers HA needs; the cluster forms first and HA servers join as nodes arrive`)
  }
  const t = c.timing
  const order: Array<[keyof Timing, keyof Timing]> = [['heartbeatIntervalMs', 'suspectAfterMs'], ['suspectAfterMs', 'deadAfterMs']]
  for (const [lower, higher] of order) {
    if (t[higher] <= t[lower]) {
      r.fail(`p2p.timing.${timingKey(higher)}`, t[higher], `more than p2p.timing.${timingKey(lower)} (${t[lower]})`)
    }
  }
}
