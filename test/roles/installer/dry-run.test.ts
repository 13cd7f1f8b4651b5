import { load } from 'js-yaml'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createInstaller, renderPlan } from '../../../roles/installer/index.ts'
import { AGENT_TOKEN, SERVER_TOKEN, plan, scratch, type Scratch } from './fixtures.ts'

describe('dry-run installer', () => {
  let s: Scratch
  beforeEach(async () => { s = await scratch() })
  afterEach(async () => { await s.remove() })

  it('prints a complete server plan with the tokens redacted, once', async () => {
    const printed: string[] = []
    const installer = createInstaller({ kind: 'dry-run' }, { stateDir: s.stateDir, write: (text) => { printed.push(text) } })
    const p = plan('init', { k3s: { enabled: true, args: ['--disable=traefik'], env: { HTTP_PROXY: 'http://proxy:3128' } } })
    expect(await installer.install(p)).toEqual({ changed: true, detail: 'printed the k3s plan' })
    expect(await installer.install(p)).toMatchObject({ changed: false })
    expect(printed).toHaveLength(1)
    const text = printed[0] ?? ''
    expect(text).not.toContain(SERVER_TOKEN)
    expect(text).not.toContain(AGENT_TOKEN)
    expect(text.startsWith('# kairos-p2p install plan (dry run')).toBe(true)
    const doc = load(text) as Record<string, Record<string, unknown>>
    expect(doc).toMatchObject({ role: 'init', service: 'k3s', digest: p.digest, env: { HTTP_PROXY: 'http://proxy:3128' } })
    expect(doc.config).toMatchObject({
      'cluster-init': true,
      token: expect.stringMatching(/^<redacted sha256:[0-9a-f]{12}>$/),
      'agent-token': expect.stringMatching(/^<redacted sha256:/),
      'node-ip': '10.88.0.1',
      'advertise-address': '10.88.0.1',
      'tls-san': ['10.88.0.1'],
      'flannel-iface': 'kairos0',
      disable: ['traefik']
    })
    expect(doc.execEnv).toMatchObject({ KAIROS_ROLE: 'init', KAIROS_TOKEN: doc.config?.token })
    expect(doc.execEnv).not.toHaveProperty('KAIROS_K3S_CONFIG')
  })

  it('prints a complete agent plan', () => {
    const doc = load(renderPlan(plan('agent'))) as Record<string, Record<string, unknown>>
    expect(Object.keys(doc.config ?? {})).toEqual(['server', 'token', 'node-ip', 'flannel-iface'])
    expect(doc.service).toBe('k3s-agent')
    expect(doc.execEnv).toMatchObject({ KAIROS_SERVER_URL: 'https://10.88.0.1:6443', KAIROS_IFACE: 'kairos0' })
  })

  it('shows the tokens when asked', async () => {
    const printed: string[] = []
    const installer = createInstaller({ kind: 'dry-run' }, { stateDir: s.stateDir, write: (text) => { printed.push(text) }, revealSecrets: true })
    await installer.install(plan('init'))
    expect(printed.join('')).toContain(`token: ${SERVER_TOKEN}`)
    expect(printed.join('')).toContain(`agent-token: ${AGENT_TOKEN}`)
  })
})
