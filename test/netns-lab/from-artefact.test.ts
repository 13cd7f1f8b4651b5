// The lab's artefact mode without root: what a host's config says, and the refusal of a
// missing artefact before anything is built.
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../config/index.ts'
import { hostCloudConfig, renderCloudConfig } from '../../netns-lab/cloud-config.ts'
import { createLab } from '../../netns-lab/lab.ts'
import { DEFAULT_STATE_DIR } from '../../config/defaults.ts'

const host = { name: 'n1', address: '10.99.0.11', stateDir: '/tmp/kairos-lab/x/hosts/n1/state' }
const token = 'kp1pegr2e5fm3pzl2c4nymxgkhyr2q7t3kssekxj4z327s7mx9mlz6dsw37xgn'

describe('a lab host running the artefact', () => {
  let root = ''
  beforeAll(async () => { root = await mkdtemp(join(tmpdir(), 'lab-artefact-')) })
  afterAll(async () => { await rm(root, { recursive: true, force: true }) })

  it('has no state_dir in its config, so the agent uses the default dir', () => {
    const text = renderCloudConfig(hostCloudConfig({ host, token, minimumNodes: 2, bootstrapPeers: [], installerCommand: ['/bin/true'], defaultStateDir: true }), 'n1.yaml')
    expect(text).not.toContain('state_dir')
    expect(parseConfig([{ name: 'n1.yaml', text }]).config.p2p.stateDir).toBe(DEFAULT_STATE_DIR)
    const usual = renderCloudConfig(hostCloudConfig({ host, token, minimumNodes: 2, bootstrapPeers: [], installerCommand: ['/bin/true'] }), 'n1.yaml')
    expect(parseConfig([{ name: 'n1.yaml', text: usual }]).config.p2p.stateDir).toBe(host.stateDir)
  })

  it('refuses a missing artefact, naming how to build it, before building anything', async () => {
    const lab = createLab({ id: 'zart', root, nodes: 2, artefact: join(root, 'no-such-artefact') })
    await expect(lab.up()).rejects.toMatchObject({ name: 'LabInputError', message: expect.stringMatching(/no self-contained artefact at .*no-such-artefact.*npm run build/) })
    expect(await readdir(root)).toEqual([])
  })
})
