import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { load } from 'js-yaml'
import { describe, expect, it } from 'vitest'
import type { K3sSection } from '../../config/types.ts'
import {
  CONFIG_HEADER, K3S_COMMA_FLAGS, clusterCaFile, K3S_LIST_FLAGS, buildInstallPlan, redactPlan, secureJoinToken, serverUrlFor, translateK3sArgs,
  type InstallPlan, type InstallPlanInput
} from '../../roles/install-plan.ts'
import { caHashOf } from '../../roles/credentials.ts'
import { createHash } from 'node:crypto'

interface FlagFixture { k3sVersion: string, server: Record<string, string>, agent: Record<string, string>, serverAliases: Record<string, string>, agentAliases: Record<string, string> }
const flags = JSON.parse(readFileSync(new URL('../fixtures/k3s-flags.json', import.meta.url), 'utf8')) as FlagFixture

const SERVER_TOKEN = 'a'.repeat(64)
const AGENT_TOKEN = 'b'.repeat(64)
const SERVER_URL = 'https://10.88.0.1:6443'
const empty: K3sSection = { enabled: false, args: [], env: {} }
const base = { k3s: empty, k3sAgent: empty }
const overlay = { nodeIp: '10.88.0.7', flannelIface: 'kairos0' }

const userK3s: K3sSection = {
  enabled: true,
  args: ['--disable=traefik,servicelb', '--tls-san=edge.example', '--node-label', 'site=plant-1', '--node-label=rack=2', '--secrets-encryption', '--kubelet-arg=feature-gates=A=true,B=false', '--write-kubeconfig-mode 0644'],
  env: { HTTP_PROXY: 'http://proxy:3128' }
}
const userAgent: K3sSection = { enabled: true, args: ['--node-taint=edge=true:NoSchedule', '--kube-proxy-arg=proxy-mode=ipvs', '-d', '/data/k3s'], env: { NO_PROXY: '10.0.0.0/8' } }

const cases: Array<{ name: string, input: InstallPlanInput, yaml: string }> = [
  {
    name: 'init server on the overlay',
    input: { ...base, ...overlay, role: 'init', token: SERVER_TOKEN, agentToken: AGENT_TOKEN },
    yaml: `cluster-init: true
token: ${SERVER_TOKEN}
agent-token: ${AGENT_TOKEN}
node-ip: 10.88.0.7
advertise-address: 10.88.0.7
tls-san:
  - 10.88.0.7
flannel-iface: kairos0
`
  },
  {
    name: 'HA server on the overlay',
    input: { ...base, ...overlay, role: 'server', serverUrl: SERVER_URL, token: SERVER_TOKEN, agentToken: AGENT_TOKEN },
    yaml: `server: ${SERVER_URL}
token: ${SERVER_TOKEN}
agent-token: ${AGENT_TOKEN}
node-ip: 10.88.0.7
advertise-address: 10.88.0.7
tls-san:
  - 10.88.0.7
flannel-iface: kairos0
`
  },
  {
    name: 'agent on the overlay',
    input: { ...base, ...overlay, role: 'agent', serverUrl: SERVER_URL, token: AGENT_TOKEN },
    yaml: `server: ${SERVER_URL}
token: ${AGENT_TOKEN}
node-ip: 10.88.0.7
flannel-iface: kairos0
`
  },
  {
    name: 'init server with the user\'s k3s args merged',
    input: { ...base, ...overlay, k3s: userK3s, k3sAgent: userAgent, role: 'init', token: SERVER_TOKEN, agentToken: AGENT_TOKEN },
    yaml: `cluster-init: true
token: ${SERVER_TOKEN}
agent-token: ${AGENT_TOKEN}
node-ip: 10.88.0.7
advertise-address: 10.88.0.7
tls-san:
  - 10.88.0.7
  - edge.example
flannel-iface: kairos0
disable:
  - traefik
  - servicelb
node-label:
  - site=plant-1
  - rack=2
secrets-encryption: true
kubelet-arg:
  - feature-gates=A=true,B=false
write-kubeconfig-mode: '0644'
`
  },
  {
    name: 'agent with the user\'s k3s-agent args merged',
    input: { ...base, ...overlay, k3s: userK3s, k3sAgent: userAgent, role: 'agent', serverUrl: SERVER_URL, token: AGENT_TOKEN },
    yaml: `server: ${SERVER_URL}
token: ${AGENT_TOKEN}
node-ip: 10.88.0.7
flannel-iface: kairos0
node-taint:
  - edge=true:NoSchedule
kube-proxy-arg:
  - proxy-mode=ipvs
data-dir: /data/k3s
`
  },
  {
    name: 'HA server without an overlay (vpn.use false) keeps the user\'s node-ip and tls-san',
    input: { ...base, k3s: { enabled: true, args: ['--node-ip=192.168.1.20', '--tls-san=a.example,b.example'], env: {} }, role: 'server', serverUrl: 'https://192.168.1.10:6443', token: SERVER_TOKEN, agentToken: AGENT_TOKEN },
    yaml: `server: https://192.168.1.10:6443
token: ${SERVER_TOKEN}
agent-token: ${AGENT_TOKEN}
node-ip:
  - 192.168.1.20
tls-san:
  - a.example
  - b.example
`
  },
  {
    name: 'agent without an overlay',
    input: { ...base, role: 'agent', serverUrl: 'https://192.168.1.10:6443', token: AGENT_TOKEN },
    yaml: `server: https://192.168.1.10:6443
token: ${AGENT_TOKEN}
`
  }
]

describe('buildInstallPlan', () => {
  it.each(cases)('$name', ({ input, yaml }) => {
    const plan = buildInstallPlan(input)
    expect(plan.configYaml).toBe(CONFIG_HEADER + yaml)
    expect(load(plan.configYaml)).toEqual(plan.config)
    expect(plan.service).toBe(input.role === 'agent' ? 'k3s-agent' : 'k3s')
    expect(plan.role).toBe(input.role)
    expect(plan.digest).toMatch(/^[0-9a-f]{64}$/)
  })

  it('passes the role\'s env to the service and everything to the exec installer', () => {
    const server = buildInstallPlan(cases[3]!.input)
    expect(server.env).toEqual({ HTTP_PROXY: 'http://proxy:3128' })
    expect(server.execEnv).toEqual({
      HTTP_PROXY: 'http://proxy:3128',
      KAIROS_ROLE: 'init',
      KAIROS_SERVICE: 'k3s',
      KAIROS_TOKEN: SERVER_TOKEN,
      KAIROS_AGENT_TOKEN: AGENT_TOKEN,
      KAIROS_NODE_IP: '10.88.0.7',
      KAIROS_IFACE: 'kairos0',
      KAIROS_K3S_CONFIG: server.configYaml
    })
    const agent = buildInstallPlan(cases[4]!.input)
    expect(agent.env).toEqual({ NO_PROXY: '10.0.0.0/8' })
    expect(agent.execEnv).toMatchObject({ KAIROS_ROLE: 'agent', KAIROS_SERVICE: 'k3s-agent', KAIROS_SERVER_URL: SERVER_URL, KAIROS_TOKEN: AGENT_TOKEN })
    expect(agent.execEnv).not.toHaveProperty('KAIROS_AGENT_TOKEN')
    const bare = buildInstallPlan(cases[6]!.input)
    expect(Object.keys(bare.execEnv)).toEqual(['KAIROS_ROLE', 'KAIROS_SERVICE', 'KAIROS_SERVER_URL', 'KAIROS_TOKEN', 'KAIROS_K3S_CONFIG'])
  })

  it('puts no admin credential in an agent\'s plan', () => {
    for (const c of cases.filter((c) => c.input.role === 'agent')) {
      const plan = buildInstallPlan(c.input)
      const everything = JSON.stringify(plan)
      expect(everything).not.toContain(SERVER_TOKEN)
      expect(everything).toContain(AGENT_TOKEN)
      for (const key of Object.keys(plan.config)) expect(key).not.toMatch(/kubeconfig|agent-token|cluster-init|datastore/)
    }
    expect(() => buildInstallPlan({ ...base, role: 'agent', serverUrl: SERVER_URL, token: AGENT_TOKEN, agentToken: AGENT_TOKEN }))
      .toThrow(expect.objectContaining({ name: 'InstallPlanError' }))
  })

  it('emits only flags k3s knows for the service (fixture from k3s\'s own flag definitions)', () => {
    expect(flags.k3sVersion).toMatch(/^v1\.\d+/)
    for (const c of cases) {
      const plan = buildInstallPlan(c.input)
      const known = plan.service === 'k3s' ? flags.server : flags.agent
      for (const key of Object.keys(plan.config)) {
        expect(known, `${c.name}: config key ${key} is not a k3s ${plan.service === 'k3s' ? 'server' : 'agent'} flag`).toHaveProperty([key])
        const kind = known[key]
        const value = plan.config[key]
        // k3s's config file takes a list or a single value for a repeatable flag, but only a single value otherwise
        if (kind !== 'slice') expect(Array.isArray(value), `${key} is not a list flag`).toBe(false)
        if (kind === 'bool') expect(typeof value).toBe('boolean')
      }
    }
  })

  it('knows the same list flags as the k3s fixture', () => {
    const fixtureLists = new Set([...Object.entries(flags.server), ...Object.entries(flags.agent)].filter(([, kind]) => kind === 'slice').map(([name]) => name))
    expect([...K3S_LIST_FLAGS].sort()).toEqual([...fixtureLists].sort())
    for (const name of K3S_COMMA_FLAGS) expect(K3S_LIST_FLAGS.has(name)).toBe(true)
    for (const [alias, name] of Object.entries({ ...flags.serverAliases, ...flags.agentAliases })) {
      const translated = translateK3sArgs([`-${alias}=x`], 'args')
      expect(Object.keys(translated)).toEqual([name])
    }
  })

  it('gives a digest that is stable and changes with any input', () => {
    const input = cases[3]!.input
    const digest = buildInstallPlan(input).digest
    expect(buildInstallPlan(structuredClone(input)).digest).toBe(digest)
    const variants: InstallPlanInput[] = [
      { ...input, nodeIp: '10.88.0.8' },
      { ...input, flannelIface: 'wg0' },
      { ...input, agentToken: 'c'.repeat(64) },
      { ...input, k3s: { ...input.k3s, env: { HTTP_PROXY: 'http://other:3128' } } },
      { ...input, k3s: { ...input.k3s, args: [...input.k3s.args, '--disable-helm-controller'] } },
      { ...input, role: 'server', serverUrl: SERVER_URL }
    ]
    const digests = new Set(variants.map((v) => buildInstallPlan(v).digest))
    expect(digests.size).toBe(variants.length)
    expect(digests.has(digest)).toBe(false)
  })

  const bad: Array<[string, InstallPlanInput, RegExp]> = [
    ['init without an agent token', { ...base, role: 'init', token: SERVER_TOKEN }, /agentToken/],
    ['init with a server URL', { ...base, role: 'init', serverUrl: SERVER_URL, token: SERVER_TOKEN, agentToken: AGENT_TOKEN }, /no serverUrl/],
    ['agent without a server URL', { ...base, role: 'agent', token: AGENT_TOKEN }, /needs serverUrl/],
    ['server URL over http', { ...base, role: 'agent', serverUrl: 'http://10.88.0.1:6443', token: AGENT_TOKEN }, /https/],
    ['server URL with a path', { ...base, role: 'agent', serverUrl: 'https://10.88.0.1:6443/x', token: AGENT_TOKEN }, /nothing after the port/],
    ['empty token', { ...base, role: 'agent', serverUrl: SERVER_URL, token: '' }, /agent token must be a non-empty/],
    ['token with a newline', { ...base, role: 'init', token: 'a\nb', agentToken: AGENT_TOKEN }, /server token/],
    ['equal tokens', { ...base, role: 'init', token: SERVER_TOKEN, agentToken: SERVER_TOKEN }, /must differ/],
    ['bad node IP', { ...base, role: 'init', token: SERVER_TOKEN, agentToken: AGENT_TOKEN, nodeIp: '10.88.0' }, /nodeIp/],
    ['bad interface', { ...base, role: 'init', token: SERVER_TOKEN, agentToken: AGENT_TOKEN, flannelIface: 'a-very-long-interface' }, /flannelIface/],
    ['user --token', { ...base, k3s: { ...empty, args: ['--token=x'] }, role: 'init', token: SERVER_TOKEN, agentToken: AGENT_TOKEN }, /k3s\.args: --token is managed/],
    ['user -t alias', { ...base, k3s: { ...empty, args: ['-t', 'x'] }, role: 'init', token: SERVER_TOKEN, agentToken: AGENT_TOKEN }, /--token is managed/],
    ['user --server on an agent', { ...base, k3sAgent: { ...empty, args: ['--server https://x:6443'] }, role: 'agent', serverUrl: SERVER_URL, token: AGENT_TOKEN }, /k3s-agent\.args: --server is managed/],
    ['user --cluster-init', { ...base, k3s: { ...empty, args: ['--cluster-init'] }, role: 'server', serverUrl: SERVER_URL, token: SERVER_TOKEN }, /--cluster-init is managed/],
    ['user --cluster-reset', { ...base, k3s: { ...empty, args: ['--cluster-reset'] }, role: 'init', token: SERVER_TOKEN, agentToken: AGENT_TOKEN }, /--cluster-reset is managed/],
    ['user --node-ip with an overlay', { ...base, ...overlay, k3s: { ...empty, args: ['--node-ip=1.2.3.4'] }, role: 'init', token: SERVER_TOKEN, agentToken: AGENT_TOKEN }, /--node-ip conflicts with the VPN overlay/],
    ['user --flannel-iface with an overlay', { ...base, ...overlay, k3sAgent: { ...empty, args: ['--flannel-iface=eth0'] }, role: 'agent', serverUrl: SERVER_URL, token: AGENT_TOKEN }, /--flannel-iface conflicts/],
    ['positional arg', { ...base, k3s: { ...empty, args: ['server'] }, role: 'init', token: SERVER_TOKEN, agentToken: AGENT_TOKEN }, /k3s\.args\[0\]: expected --flag/],
    ['unknown short flag', { ...base, k3s: { ...empty, args: ['-x'] }, role: 'init', token: SERVER_TOKEN, agentToken: AGENT_TOKEN }, /unknown short flag -x/],
    ['env K3S_TOKEN', { ...base, k3s: { ...empty, env: { K3S_TOKEN: 'x' } }, role: 'init', token: SERVER_TOKEN, agentToken: AGENT_TOKEN }, /k3s\.env: K3S_TOKEN is managed/],
    ['env K3S_URL on an agent', { ...base, k3sAgent: { ...empty, env: { K3S_URL: 'x' } }, role: 'agent', serverUrl: SERVER_URL, token: AGENT_TOKEN }, /k3s-agent\.env: K3S_URL/],
    ['bad env name', { ...base, k3s: { ...empty, env: { 'A-B': 'x' } }, role: 'init', token: SERVER_TOKEN, agentToken: AGENT_TOKEN }, /"A-B" is not a valid environment variable name/],
    ['multi-line env value', { ...base, k3s: { ...empty, env: { A: 'x\ny' } }, role: 'init', token: SERVER_TOKEN, agentToken: AGENT_TOKEN }, /k3s\.env\.A: expected a single-line string/]
  ]
  it.each(bad)('refuses %s', (_name, input, message) => {
    let caught: unknown
    try { buildInstallPlan(input) } catch (err) { caught = err }
    expect(caught).toMatchObject({ name: 'InstallPlanError', exitCode: 2, message: expect.stringMatching(message) })
  })
})

describe('translateK3sArgs', () => {
  const table: Array<[string[], Record<string, unknown>]> = [
    [['--disable=traefik,servicelb'], { disable: ['traefik', 'servicelb'] }],
    [['--disable=traefik', '--disable', 'servicelb'], { disable: ['traefik', 'servicelb'] }],
    [['--flannel-backend=none'], { 'flannel-backend': 'none' }],
    [['--flannel-backend', 'none'], { 'flannel-backend': 'none' }],
    [['--flannel-backend none'], { 'flannel-backend': 'none' }],
    [['--secrets-encryption'], { 'secrets-encryption': true }],
    [['--secrets-encryption', '--disable-helm-controller'], { 'secrets-encryption': true, 'disable-helm-controller': true }],
    [['--protect-kernel-defaults=false'], { 'protect-kernel-defaults': false }],
    [['--node-label', 'a=b', '--node-label', 'c=d'], { 'node-label': ['a=b', 'c=d'] }],
    [['--kubelet-arg=max-pods=250'], { 'kubelet-arg': ['max-pods=250'] }],
    [['--kube-apiserver-arg=feature-gates=A=true,B=false'], { 'kube-apiserver-arg': ['feature-gates=A=true,B=false'] }],
    [['--custom=1', '--custom=2'], { custom: ['1', '2'] }],
    [['  --https-listen-port=7443  '], { 'https-listen-port': '7443' }],
    [['-i', '10.0.0.1,10.0.0.2'], { 'node-ip': ['10.0.0.1', '10.0.0.2'] }],
    [['--cluster-domain='], { 'cluster-domain': '' }],
    [[], {}]
  ]
  it.each(table)('%j', (args, expected) => {
    expect(translateK3sArgs(args, 'k3s.args')).toEqual(expected)
  })
})

describe('redactPlan', () => {
  it('replaces every token occurrence with a short fingerprint', () => {
    const plan: InstallPlan = buildInstallPlan(cases[3]!.input)
    const view = redactPlan(plan)
    const text = JSON.stringify(view)
    expect(text).not.toContain(SERVER_TOKEN)
    expect(text).not.toContain(AGENT_TOKEN)
    expect(view.config.token).toMatch(/^<redacted sha256:[0-9a-f]{12}>$/)
    expect(view.config.token).not.toBe(view.config['agent-token'])
    expect(view.execEnv.KAIROS_K3S_CONFIG).toContain(`token: ${String(view.config.token)}`)
    expect(view.config['node-ip']).toBe('10.88.0.7')
    expect(plan.config.token).toBe(SERVER_TOKEN)
  })
})

describe('serverUrlFor', () => {
  it('builds the k3s URL for IPv4, IPv6 and names', () => {
    expect(serverUrlFor('10.88.0.1')).toBe('https://10.88.0.1:6443')
    expect(serverUrlFor('fd00::1')).toBe('https://[fd00::1]:6443')
    expect(serverUrlFor('init.local')).toBe('https://init.local:6443')
    expect(buildInstallPlan({ ...base, role: 'agent', serverUrl: serverUrlFor('fd00::1'), token: AGENT_TOKEN }).config.server).toBe('https://[fd00::1]:6443')
  })
})

describe('joiners pin the cluster CA', () => {
  const pem = readFileSync(join(import.meta.dirname, '..', 'fixtures', 'ca', 'server-ca.crt'))
  const caHash = caHashOf(pem)

  it('a joiner with the CA hash the init server published uses k3s\'s secure token format', () => {
    const agent = buildInstallPlan({ role: 'agent', serverUrl: SERVER_URL, token: AGENT_TOKEN, caHash, ...base })
    expect(agent.config.token).toBe(`K10${caHash}::node:${AGENT_TOKEN}`)
    expect(agent.execEnv.KAIROS_TOKEN).toBe(agent.config.token)
    const server = buildInstallPlan({ role: 'server', serverUrl: SERVER_URL, token: SERVER_TOKEN, agentToken: AGENT_TOKEN, caHash, ...base })
    expect(server.config.token).toBe(secureJoinToken(caHash, 'server', SERVER_TOKEN))
    expect(server.config.token).toMatch(/^K10[0-9a-f]{64}::server:a{64}$/)
    expect(server.config['agent-token']).toBe(AGENT_TOKEN)
    expect(caHash).toBe(createHash('sha256').update(pem).digest('hex'))
  })

  it('the init server pins nothing, and a malformed hash is refused', () => {
    expect(() => buildInstallPlan({ role: 'init', token: SERVER_TOKEN, agentToken: AGENT_TOKEN, caHash, ...base })).toThrow(/pins none/)
    expect(() => buildInstallPlan({ role: 'agent', serverUrl: SERVER_URL, token: AGENT_TOKEN, caHash: 'abc', ...base })).toThrow(/64 lowercase hex/)
  })

  it('redaction hides the secret inside a secure token too', () => {
    const view = redactPlan(buildInstallPlan({ role: 'agent', serverUrl: SERVER_URL, token: AGENT_TOKEN, caHash, ...base }))
    expect(JSON.stringify(view)).not.toContain(AGENT_TOKEN)
  })
})

describe('clusterCaFile: where the init server reads the CA k3s serves at /cacerts', () => {
  it.each([
    { name: 'k3s installer, default data dir', installer: { kind: 'k3s' as const, root: '/' }, args: [], want: '/var/lib/rancher/k3s/server/tls/server-ca.crt' },
    { name: 'k3s installer under a root', installer: { kind: 'k3s' as const, root: '/sysroot' }, args: [], want: '/sysroot/var/lib/rancher/k3s/server/tls/server-ca.crt' },
    { name: '--data-dir in k3s.args', installer: { kind: 'k3s' as const, root: '/' }, args: ['--data-dir', '/data/k3s'], want: '/data/k3s/server/tls/server-ca.crt' },
    { name: '-d alias, exec installer', installer: { kind: 'exec' as const, command: ['x'] }, args: ['-d=/srv/k3s'], want: '/srv/k3s/server/tls/server-ca.crt' },
    { name: 'dry-run starts no k3s', installer: { kind: 'dry-run' as const }, args: [], want: undefined }
  ])('$name', ({ installer, args, want }) => {
    expect(clusterCaFile(installer, { args })).toBe(want)
  })

  it('names a bad k3s arg', () => {
    expect(() => clusterCaFile({ kind: 'k3s', root: '/' }, { args: ['data-dir'] })).toThrow(/k3s.args\[0\]/)
  })
})
