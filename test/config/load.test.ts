import { describe, expect, it } from 'vitest'
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  ConfigError, ConfigFileError, ConfigSyntaxError, PRESETS, formatWarning, loadConfig, parseConfig, type Config
} from '../../config/index.ts'

const one = (text: string, name = 'a.yaml'): ReturnType<typeof parseConfig> => parseConfig([{ name, text }])

/** The ConfigError thrown for `text`; fails the test when nothing is thrown. */
function errorOf (text: string): ConfigError {
  try {
    one(text)
  } catch (err) {
    if (err instanceof ConfigError) return err
    throw err
  }
  throw new Error(`expected a ConfigError for:\n${text}`)
}

const PEER = '12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp'

// Each malformed config and the exact message it must produce.
const MALFORMED: Array<[string, string, string]> = [
  ['minimum_nodes as a word', 'p2p:\n  minimum_nodes: "three"\n',
    'p2p.minimum_nodes: got "three" (string), expected a non-negative integer'],
  ['negative minimum_nodes', 'p2p:\n  minimum_nodes: -1\n',
    'p2p.minimum_nodes: got -1 (number), expected a non-negative integer'],
  ['fractional minimum_nodes', 'p2p:\n  minimum_nodes: 2.5\n',
    'p2p.minimum_nodes: got 2.5 (number), expected a non-negative integer'],
  ['unknown role', 'p2p:\n  role: leader\n',
    'p2p.role: got "leader" (string), expected one of "master", "worker", "none", or "" for automatic'],
  ['role in the wrong case', 'p2p:\n  role: Master\n',
    'p2p.role: got "Master" (string), expected one of "master", "worker", "none", or "" for automatic (did you mean "master"?)'],
  ['disable_dht not a boolean', 'p2p:\n  disable_dht: sometimes\n',
    'p2p.disable_dht: got "sometimes" (string), expected true or false'],
  ['auto.enable as a number', 'p2p:\n  auto:\n    enable: 1\n',
    'p2p.auto.enable: got 1 (number), expected true or false'],
  ['ha.master_nodes as a word', 'p2p:\n  auto:\n    ha:\n      enable: true\n      master_nodes: two\n',
    'p2p.auto.ha.master_nodes: got "two" (string), expected a non-negative integer (servers besides the cluster-init server)'],
  ['vpn.create not a boolean', 'p2p:\n  vpn:\n    create: maybe\n',
    'p2p.vpn.create: got "maybe" (string), expected true or false'],
  ['cidr without prefix', 'p2p:\n  vpn:\n    cidr: 10.88.0.0\n',
    'p2p.vpn.cidr: got "10.88.0.0" (string), expected an IPv4 network in CIDR form with a prefix length of at most 30, e.g. 10.88.0.0/16'],
  ['cidr too small for peers', 'p2p:\n  vpn:\n    cidr: 10.88.0.0/31\n',
    'p2p.vpn.cidr: got "10.88.0.0/31" (string), expected an IPv4 network in CIDR form with a prefix length of at most 30, e.g. 10.88.0.0/16'],
  ['cidr with a bad octet', 'p2p:\n  vpn:\n    cidr: 300.1.0.0/16\n',
    'p2p.vpn.cidr: got "300.1.0.0/16" (string), expected an IPv4 network in CIDR form with a prefix length of at most 30, e.g. 10.88.0.0/16'],
  ['interface name too long', 'p2p:\n  vpn:\n    interface: wireguard-overlay0\n',
    'p2p.vpn.interface: got "wireguard-overlay0" (string), expected an interface name of 1–15 characters from A–Z a–z 0–9 _ . -'],
  ['interface name with a slash', 'p2p:\n  vpn:\n    interface: wg/0\n',
    'p2p.vpn.interface: got "wg/0" (string), expected an interface name of 1–15 characters from A–Z a–z 0–9 _ . -'],
  ['port out of range', 'p2p:\n  vpn:\n    port: 70000\n',
    'p2p.vpn.port: got 70000 (number), expected a UDP port number 1–65535'],
  ['port as a string', 'p2p:\n  vpn:\n    port: "51820"\n',
    'p2p.vpn.port: got "51820" (string), expected a UDP port number 1–65535'],
  ['mtu below IPv6 minimum', 'p2p:\n  vpn:\n    mtu: 1000\n',
    'p2p.vpn.mtu: got 1000 (number), expected an MTU from 1280 to 9000'],
  ['bootstrap_peers not a list', 'p2p:\n  bootstrap_peers: /ip4/10.0.0.1/tcp/4001\n',
    'p2p.bootstrap_peers: got "/ip4/10.0.0.1/tcp/4001" (string), expected a list of multiaddrs (each a multiaddr with a peer id, e.g. /ip4/10.0.0.1/tcp/4001/p2p/12D3KooW…)'],
  ['bootstrap peer without peer id', 'p2p:\n  bootstrap_peers:\n    - /ip4/10.0.0.1/tcp/4001\n',
    'p2p.bootstrap_peers[0]: got "/ip4/10.0.0.1/tcp/4001" (string), expected a multiaddr with a peer id, e.g. /ip4/10.0.0.1/tcp/4001/p2p/12D3KooW… (no /p2p/<peer id> part)'],
  ['bootstrap peer as host:port', `p2p:\n  bootstrap_peers:\n    - /ip4/10.0.0.1/tcp/4001/p2p/${PEER}\n    - 10.0.0.2:4001\n`,
    'p2p.bootstrap_peers[1]: got "10.0.0.2:4001" (string), expected a multiaddr with a peer id, e.g. /ip4/10.0.0.1/tcp/4001/p2p/12D3KooW… (a multiaddr starts with "/")'],
  ['listen port out of range', 'p2p:\n  listen:\n    - /ip4/0.0.0.0/tcp/99999\n',
    'p2p.listen[0]: got "/ip4/0.0.0.0/tcp/99999" (string), expected a listen multiaddr, e.g. /ip4/0.0.0.0/tcp/4001 (/tcp needs a port 0–65535, got "99999")'],
  ['relative state_dir', 'p2p:\n  state_dir: var/lib/kairos-p2p\n',
    'p2p.state_dir: got "var/lib/kairos-p2p" (string), expected an absolute path'],
  ['unknown installer kind', 'p2p:\n  installer:\n    kind: ansible\n',
    'p2p.installer.kind: got "ansible" (string), expected one of "k3s", "exec", "dry-run"'],
  ['exec installer without command', 'p2p:\n  installer:\n    kind: exec\n',
    'p2p.installer.command: missing, expected a non-empty list of strings (argv, not a shell string) for kind exec'],
  ['exec installer with a shell string', 'p2p:\n  installer:\n    kind: exec\n    command: install.sh --server\n',
    'p2p.installer.command: got "install.sh --server" (string), expected a non-empty list of strings (argv, not a shell string)'],
  ['unknown preset', 'p2p:\n  preset: fast\n',
    'p2p.preset: got "fast" (string), expected one of "lan", "lab"'],
  ['zero timing override', 'p2p:\n  timing:\n    dead_after_ms: 0\n',
    'p2p.timing.dead_after_ms: got 0 (number), expected a positive integer number of milliseconds'],
  ['dead before suspect', 'p2p:\n  timing:\n    suspect_after_ms: 2000\n    dead_after_ms: 1000\n',
    'p2p.timing.dead_after_ms: got 1000 (number), expected more than p2p.timing.suspect_after_ms (2000)'],
  ['token as a number', 'p2p:\n  network_token: 123456789\n',
    'p2p.network_token: got <redacted> (number), expected a string (the network token)'],
  ['p2p block as a scalar', 'p2p: on\n',
    'p2p: got "on" (string), expected a mapping'],
  ['k3s args as one string', 'k3s:\n  enabled: true\n  args: --disable=traefik\n',
    'k3s.args: got "--disable=traefik" (string), expected a list of strings, e.g. ["--disable=traefik,servicelb"]'],
  ['k3s-agent env as a list', 'k3s-agent:\n  env:\n    - A=1\n',
    'k3s-agent.env: got ["A=1"] (list), expected a mapping'],
  ['no way to find peers', 'p2p:\n  disable_dht: true\n  mdns: false\n',
    'p2p.mdns: got false (boolean), expected true when p2p.disable_dht is true and p2p.bootstrap_peers is empty (otherwise no peer can ever be found)'],
  ['templated number', 'p2p:\n  minimum_nodes: {{ .Values.nodes }}\n',
    'p2p.minimum_nodes: got "{{ .Values.nodes }}" (unrendered template), expected a non-negative integer'],
  ['network id with spaces', 'p2p:\n  network_id: "plant a"\n',
    'p2p.network_id: got "plant a" (string), expected at most 64 characters without spaces or control characters']
]

describe('malformed configs', () => {
  it('has at least 20 cases', () => {
    expect(MALFORMED.length).toBeGreaterThanOrEqual(20)
  })

  it.each(MALFORMED)('%s', (_label, text, message) => {
    const err = errorOf(text)
    expect(err.name).toBe('ConfigError')
    expect(err.exitCode).toBe(2)
    expect(err.issues.map((i) => i.message)).toEqual([message])
    expect(err.message).toBe(message)
  })

  it('reports every problem at once, one per line', () => {
    const err = errorOf('p2p:\n  minimum_nodes: "three"\n  vpn:\n    port: 0\n    mtu: 99999\n  role: boss\n')
    expect(err.issues.map((i) => i.path).sort()).toEqual(['p2p.minimum_nodes', 'p2p.role', 'p2p.vpn.mtu', 'p2p.vpn.port'])
    expect(err.message.split('\n')).toHaveLength(4)
  })

  it('never prints the token or secret env values', () => {
    const err = errorOf('p2p:\n  network_token: [s3cret-part]\nk3s:\n  env:\n    K3S_TOKEN: [hunter2]\n')
    expect(err.message).not.toContain('s3cret')
    expect(err.message).not.toContain('hunter2')
    expect(err.message).toContain('k3s.env.K3S_TOKEN: got <redacted> (list), expected a string')
  })

  it('names file and line of a YAML syntax error', () => {
    let caught: unknown
    try {
      parseConfig([{ name: 'ok.yaml', text: 'p2p: {}\n' }, { name: 'site.yaml', text: '#cloud-config\np2p:\n  role: master\n   minimum_nodes: 3\n' }])
    } catch (err) { caught = err }
    expect(caught).toBeInstanceOf(ConfigSyntaxError)
    expect(caught).toBeInstanceOf(ConfigError)
    const err = caught as ConfigSyntaxError
    expect(err.name).toBe('ConfigSyntaxError')
    expect(err.message).toBe('site.yaml:4: YAML syntax error: bad indentation of a mapping entry')
    expect(err.issues[0]?.source).toBe('site.yaml')
  })

  it('rejects a document that is not a mapping', () => {
    expect(() => one('- p2p\n- k3s\n')).toThrow('a.yaml: got ["p2p","k3s"] (list), expected a mapping of cloud-config keys')
  })

  it('rejects several YAML documents in one file', () => {
    expect(() => one('p2p: {}\n---\nk3s: {}\n')).toThrow('a.yaml: found 2 YAML documents (separated by ---), expected one')
  })

  it('rejects a duplicated key', () => {
    expect(() => one('p2p:\n  role: master\n  role: worker\n')).toThrow('a.yaml:3: YAML syntax error: duplicated mapping key')
  })
})

describe('defaults', () => {
  it('fills every field with Kairos and kairos-p2p defaults', () => {
    const { config, warnings } = one('p2p:\n  network_token: tok\n')
    const expected: Config = {
      p2p: {
        networkToken: 'tok',
        networkId: '',
        role: 'auto',
        minimumNodes: 2,
        disableDht: false,
        autoEnable: true,
        haEnable: false,
        haMasterNodes: 0,
        vpn: { create: true, use: true, cidr: '10.88.0.0/16', interface: 'kairos0', port: 51820, mtu: 1420 },
        bootstrapPeers: [],
        listen: ['/ip4/0.0.0.0/tcp/4001'],
        mdns: true,
        stateDir: '/var/lib/kairos/p2p',
        forgetAfterMs: 7 * 24 * 3_600_000,
        installer: { kind: 'k3s', root: '/' },
        preset: 'lan',
        timing: { ...PRESETS.lan }
      },
      k3s: { enabled: false, args: [], env: {} },
      k3sAgent: { enabled: false, args: [], env: {} }
    }
    expect(config).toEqual(expected)
    expect(warnings).toEqual([])
  })

  it('accepts an empty file and a bare header, warning that no token is set', () => {
    for (const text of ['', '#cloud-config\n', '#cloud-config\np2p:\n  # network_token: later\n']) {
      const { config, warnings } = one(text)
      expect(config.p2p.networkToken).toBe('')
      expect(warnings.map((w) => w.path)).toEqual(['p2p.network_token'])
    }
  })

  it('treats minimum_nodes 0 as the Kairos default, with a warning', () => {
    const { config, warnings } = one('p2p:\n  network_token: t\n  minimum_nodes: 0\n')
    expect(config.p2p.minimumNodes).toBe(2)
    expect(warnings.map(formatWarning)).toEqual(['p2p.minimum_nodes: 0 means the default (2), as in Kairos; write 1 for a single-node site'])
  })

  it('HA: enable alone gives 2 extra servers; master_nodes alone enables HA as Kairos does', () => {
    expect(one('p2p:\n  network_token: t\n  minimum_nodes: 3\n  auto:\n    ha:\n      enable: true\n').config.p2p)
      .toMatchObject({ haEnable: true, haMasterNodes: 2 })
    const implicit = one('p2p:\n  network_token: t\n  minimum_nodes: 3\n  auto:\n    ha:\n      master_nodes: 2\n')
    expect(implicit.config.p2p).toMatchObject({ haEnable: true, haMasterNodes: 2 })
    expect(implicit.warnings.map((w) => w.path)).toEqual(['p2p.auto.ha.master_nodes'])
    const off = one('p2p:\n  network_token: t\n  auto:\n    ha:\n      enable: false\n      master_nodes: 2\n')
    expect(off.config.p2p).toMatchObject({ haEnable: false, haMasterNodes: 0 })
    expect(off.warnings.map(formatWarning)).toEqual(['p2p.auto.ha.master_nodes: ignored because p2p.auto.ha.enable is false'])
  })

  it('vpn.use follows vpn.create, as in Kairos', () => {
    const { config, warnings } = one('p2p:\n  network_token: t\n  vpn:\n    create: false\n    use: true\n')
    expect(config.p2p.vpn).toMatchObject({ create: false, use: false })
    expect(warnings.map((w) => w.path)).toEqual(['p2p.vpn.use'])
  })

  it('accepts YAML 1.1 booleans the way yaml.v3 does for bool fields', () => {
    const { config } = one('p2p:\n  network_token: t\n  disable_dht: yes\n  mdns: on\n  auto:\n    enable: No\n  role: master\n')
    expect(config.p2p).toMatchObject({ disableDht: true, mdns: true, autoEnable: false })
  })

  it('normalises a CIDR with host bits, with a warning', () => {
    const { config, warnings } = one('p2p:\n  network_token: t\n  vpn:\n    cidr: 10.1.2.3/16\n')
    expect(config.p2p.vpn.cidr).toBe('10.1.0.0/16')
    expect(warnings.map(formatWarning)).toEqual(['p2p.vpn.cidr: host bits set in 10.1.2.3/16; using the network 10.1.0.0/16'])
  })

  it('reads installers, including the one-word forms', () => {
    expect(one('p2p:\n  network_token: t\n  installer: dry-run\n').config.p2p.installer).toEqual({ kind: 'dry-run' })
    expect(one('p2p:\n  network_token: t\n  installer:\n    kind: k3s\n    root: /mnt/node1\n').config.p2p.installer).toEqual({ kind: 'k3s', root: '/mnt/node1' })
    expect(one('p2p:\n  network_token: t\n  installer:\n    kind: exec\n    command: [/usr/local/bin/hand-off, --verbose]\n').config.p2p.installer)
      .toEqual({ kind: 'exec', command: ['/usr/local/bin/hand-off', '--verbose'] })
  })

  it('accepts Kairos-only keys: vpn.env silently, others with a warning', () => {
    const { warnings } = one('p2p:\n  network_token: t\n  dns: true\n  vpn:\n    env:\n      EDGEVPNDHT: "false"\nk3s:\n  replace_args: true\n')
    expect(warnings.map(formatWarning)).toEqual(['p2p.dns: Kairos key not used by kairos-p2p; ignored'])
  })
})

describe('unknown keys', () => {
  it('suggests the nearest known key under p2p', () => {
    const { warnings } = one('p2p:\n  network_token: t\n  minimun_nodes: 3\n  bootstrap_peer: []\n  colour: blue\n')
    expect(warnings.map(formatWarning)).toEqual([
      'p2p.minimun_nodes: unknown key (did you mean p2p.minimum_nodes?)',
      'p2p.bootstrap_peer: unknown key (did you mean p2p.bootstrap_peers?)',
      'p2p.colour: unknown key, ignored'
    ])
  })

  it('suggests nested keys and timing fields', () => {
    const { warnings } = one('p2p:\n  network_token: t\n  vpn:\n    cdir: 10.9.0.0/16\n  timing:\n    heartbeat_interval: 100\n  auto:\n    ha:\n      masters_nodes: 2\n')
    expect(warnings.map(formatWarning)).toEqual([
      'p2p.auto.ha.masters_nodes: unknown key (did you mean p2p.auto.ha.master_nodes?)',
      'p2p.vpn.cdir: unknown key (did you mean p2p.vpn.cidr?)',
      'p2p.timing.heartbeat_interval: unknown key (did you mean p2p.timing.heartbeat_interval_ms?)'
    ])
  })

  it('ignores other Kairos top-level keys but flags a misspelt k3s-agent', () => {
    const { warnings } = one('hostname: x\nusers: []\nwrite_files: []\nstages: {}\ninstall: {auto: true}\nkubevip: {eip: 10.0.0.9}\nk0s: {}\nk3s_agent: {enabled: true}\np2p:\n  network_token: t\n')
    expect(warnings.map(formatWarning)).toEqual(['k3s_agent: unknown key (did you mean k3s-agent?)'])
  })
})

describe('cross-field warnings', () => {
  const T = 'p2p:\n  network_token: t\n'
  it.each([
    ['automatic roles off without a static role', `${T}  auto:\n    enable: false\n`,
      ['p2p.auto.enable: false with no p2p.role: this node never gets a role; set p2p.role']],
    ['role none without a VPN', `${T}  role: none\n  vpn:\n    create: false\n`,
      ['p2p.role: none with p2p.vpn.create false: this node only relays cluster state']],
    ['single-node minimum', `${T}  minimum_nodes: 1\n`,
      ['p2p.minimum_nodes: 1 lets a node that boots alone form its own cluster; use it only for a single-node site']],
    ['even number of HA servers, too few nodes', `${T}  auto:\n    ha:\n      enable: true\n      master_nodes: 1\n`,
      ['p2p.auto.ha.master_nodes: 1 gives 2 servers; etcd needs an odd number to tolerate the same failures with fewer machines']],
    ['HA needs more nodes than the minimum', `${T}  auto:\n    ha:\n      enable: true\n`,
      ['p2p.minimum_nodes: 2 is less than the 3 servers HA needs; the cluster forms first and HA servers join as nodes arrive']],
    ['k3s args that kairos-p2p manages', `${T}k3s:\n  args: [--cluster-init, --token=abc, --disable=traefik]\n`,
      ['k3s.args: --cluster-init is set by kairos-p2p at hand-off; remove it from k3s.args',
        'k3s.args: --token is set by kairos-p2p at hand-off; remove it from k3s.args']],
    ['legacy kairos block', 'kairos:\n  network_token: t\n',
      ['kairos: the old name of the p2p block; kairos-p2p reads only p2p: (move network_token and the rest under p2p:)',
        'p2p.network_token: not set; a node cannot join a network without it (create one with `kairos-p2p token generate`)']],
    ['Kairos HA external datastore', `${T}  auto:\n    ha:\n      enable: true\n      external_db: mysql://x\n  minimum_nodes: 3\n`,
      ['p2p.auto.ha.external_db: Kairos key not used by kairos-p2p; ignored']]
  ])('%s', (_label, text, expected) => {
    expect(one(text).warnings.map(formatWarning)).toEqual(expected)
  })
})

describe('merging several files', () => {
  it('deep-merges maps, replaces lists, later wins, null keeps earlier', () => {
    const { config, sources } = parseConfig([
      { name: 'base.yaml', text: 'p2p:\n  network_token: base\n  minimum_nodes: 3\n  vpn:\n    cidr: 10.50.0.0/16\n    port: 51000\nk3s:\n  enabled: true\n  args: [--disable=traefik, --disable=servicelb]\n  env: {A: "1"}\n' },
      { name: 'site.yaml', text: 'p2p:\n  network_token: site\n  vpn:\n    port: 52000\nk3s:\n  args: [--disable=traefik]\n  env: {B: 2}\n' },
      { name: 'empty.yaml', text: 'p2p:\nk3s:\n' }
    ])
    expect(sources).toEqual(['base.yaml', 'site.yaml', 'empty.yaml'])
    expect(config.p2p.networkToken).toBe('site')
    expect(config.p2p.minimumNodes).toBe(3)
    expect(config.p2p.vpn).toMatchObject({ cidr: '10.50.0.0/16', port: 52000 })
    expect(config.k3s).toEqual({ enabled: true, args: ['--disable=traefik'], env: { A: '1', B: '2' } })
  })

  it('names the file a bad value came from', () => {
    let caught: unknown
    try {
      parseConfig([{ name: 'base.yaml', text: 'p2p:\n  minimum_nodes: 3\n' }, { name: 'node.yaml', text: 'p2p:\n  vpn:\n    port: -1\n' }])
    } catch (err) { caught = err }
    expect(caught).toBeInstanceOf(ConfigError)
    expect((caught as ConfigError).issues).toMatchObject([{ path: 'p2p.vpn.port', value: -1, source: 'node.yaml' }])
  })
})

describe('templates', () => {
  it('keeps Go-template values, quoted or not, and block actions', () => {
    const text = [
      '#cloud-config',
      'hostname: "node-{{ trunc 4 .MachineID }}"',
      'fqdn: {{ .Hostname }}.site.local',
      'name: {{ .Name }}',
      'stages:',
      '  boot:',
      '    - commands:',
      '{{- if .Debug }}',
      '        - echo "{{ "debug" }}"',
      '{{- end }}',
      'p2p:',
      '  network_token: tok',
      '  network_id: "site-{{ .Values.site }}"',
      ''
    ].join('\n')
    const { config, warnings } = one(text)
    expect(config.p2p.networkId).toBe('site-{{ .Values.site }}')
    expect(warnings.map(formatWarning)).toEqual(['p2p.network_id: is an unrendered template; it is checked once Kairos has rendered the file'])
  })

  it('keeps line numbers for syntax errors after a template', () => {
    expect(() => one('hostname: {{ .X }}\np2p:\n  role: master\n bad: 1\n')).toThrow(/^a\.yaml:4: YAML syntax error/)
  })
})

describe('the Kairos article config', () => {
  it('validates examples/kairos-article.yaml', async () => {
    const { config, warnings } = await loadConfig(['examples/kairos-article.yaml'])
    expect(warnings).toEqual([])
    expect(config.k3s).toEqual({ enabled: true, args: ['--disable=traefik,servicelb'], env: {} })
    expect(config.p2p).toMatchObject({ disableDht: true, minimumNodes: 3, role: 'auto', mdns: true })
    expect(config.p2p.networkToken).toMatch(/^b3Rw/)
  })

  it('validates every example', async () => {
    for (const file of ['examples/minimal.yaml', 'examples/lab.yaml', 'examples/ha.yaml']) {
      await expect(loadConfig([file])).resolves.toBeDefined()
    }
    const lab = await loadConfig(['examples/minimal.yaml', 'examples/lab.yaml'])
    expect(lab.config.p2p).toMatchObject({ preset: 'lab', timing: PRESETS.lab, installer: { kind: 'dry-run' } })
    expect(lab.warnings).toEqual([])
  })
})

describe('loadConfig', () => {
  it('names a missing file', async () => {
    const err = await loadConfig(['/nonexistent/kairos.yaml']).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ConfigFileError)
    expect((err as ConfigFileError).name).toBe('ConfigFileError')
    expect((err as ConfigFileError).exitCode).toBe(2)
    expect((err as Error).message).toBe('cannot read config file /nonexistent/kairos.yaml: no such file')
  })

  it('reads files in order and applies the preset override', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kp2p-config-'))
    try {
      await writeFile(join(dir, 'a.yaml'), 'p2p:\n  network_token: t\n  preset: lan\n')
      await writeFile(join(dir, 'b.yaml'), 'p2p:\n  timing:\n    heartbeat_interval_ms: 50\n')
      const { config, sources } = await loadConfig([join(dir, 'a.yaml'), join(dir, 'b.yaml')], { preset: 'lab' })
      expect(sources).toEqual([join(dir, 'a.yaml'), join(dir, 'b.yaml')])
      expect(config.p2p.preset).toBe('lab')
      expect(config.p2p.timing).toEqual({ ...PRESETS.lab, heartbeatIntervalMs: 50 })
      const err = await loadConfig([dir]).catch((e: unknown) => e)
      expect((err as Error).message).toBe(`cannot read config file ${dir}: is a directory, expected a file`)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
    expect(await readFile('examples/minimal.yaml', 'utf8')).toContain('network_token')
  })
})
