// Fuzz of the cloud-config loader: mutations of real configs (the examples, one with
// anchors, merge keys and templates, the alias bomb) and random text. Only ConfigError
// (and its subclasses) may come out, and no input of up to 1 MB may keep it busy.
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'vitest'
import { ConfigError, parseConfig } from '../../config/index.ts'
import { encodeToken } from '../../token/index.ts'
import { fuzz, fuzzSeed, textInputs } from './harness.ts'

const examples = join(import.meta.dirname, '..', '..', 'examples')
const TOKEN = encodeToken(new Uint8Array(32).fill(5))

const SAMPLES = [
  ...readdirSync(examples).filter((f) => f.endsWith('.yaml')).map((f) => readFileSync(join(examples, f), 'utf8')),
  [
    '#cloud-config',
    'x-base: &base {enabled: true, args: ["--disable=traefik"], env: {K3S_TOKEN: secret-value-1234}}',
    'hostname: node-{{ trunc 4 .MachineID }}',
    'p2p:',
    `  network_token: ${TOKEN}`,
    '  role: ""',
    '  minimum_nodes: 3',
    '  auto: {enable: true, ha: {enable: true, master_nodes: 2}}',
    '  vpn: {create: true, use: true, cidr: 10.88.0.0/16, interface: kairos0, port: 51820, mtu: 1420}',
    '  bootstrap_peers: [/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp]',
    '  listen: [/ip4/0.0.0.0/tcp/4001]',
    '  installer: {kind: exec, command: [/bin/true, "--flag"]}',
    '  timing: {heartbeat_interval_ms: 500}',
    'k3s:',
    '  <<: *base',
    'k3s-agent: *base',
    'stages:',
    '  boot:',
    '    - name: a',
    '      commands: ["echo {{ .Values.x }}"]',
    ''
  ].join('\n'),
  'stages:\n  l0: &a0 {a: 1, b: 1, c: 1, d: 1, e: 1, f: 1, g: 1}\n  l1: &a1 {a: *a0, b: *a0, c: *a0, d: *a0, e: *a0, f: *a0, g: *a0}\n  l2: &a2 {a: *a1, b: *a1, c: *a1, d: *a1, e: *a1, f: *a1, g: *a1}\n'
]

describe('fuzz: the config loader', () => {
  it('only ConfigError comes out, and every input of up to 1 MB is done within the bound', async () => {
    const seed = fuzzSeed(30)
    const r = await fuzz('config', seed, textInputs(seed, 1_200, SAMPLES), [ConfigError], (text) => {
      // Two sources, as the agent merges them: the input over a real example.
      parseConfig([{ name: 'base.yaml', text: SAMPLES[0] as string }, { name: 'fuzz.yaml', text }])
    })
    console.log(`fuzz config: ${r.inputs} inputs, ${r.rejected} rejected, slowest ${r.maxMs.toFixed(1)} ms (${r.maxMsInput} characters)`)
  })
})
