import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { Config } from '../../config/types.ts'
import { PRESETS } from '../../config/presets.ts'
import * as credentials from '../../roles/credentials.ts'
import { createRolesController, type RolesController } from '../../roles/controller.ts'
import type { ClusterState } from '../../p2p/types.ts'
import { waitFor } from '../helpers/wait.ts'
import { createFakeSite, type FakeClusterState } from '../../sim/cluster-state.ts'

function testConfig (stateDir: string): Config {
  const section = { enabled: true, args: [], env: {} }
  return {
    p2p: {
      networkToken: 'x', networkId: 'test', role: 'auto', minimumNodes: 2, disableDht: true,
      autoEnable: true, haEnable: false, haMasterNodes: 0,
      vpn: { create: true, use: true, cidr: '10.88.0.0/16', interface: 'kairos0', port: 51820, mtu: 1420 },
      bootstrapPeers: [], listen: [], mdns: false, stateDir, installer: { kind: 'dry-run' }, preset: 'lab', timing: PRESETS.lab
    },
    k3s: section,
    k3sAgent: section
  }
}

/** A node's view of the fake site, with the departures the p2p node would report. */
function withDepartures (state: FakeClusterState, departed: Map<string, 'removed' | 'forgotten'>): ClusterState {
  return {
    get self () { return state.self },
    get: (owner, key) => state.get(owner, key),
    list: (prefix) => state.list(prefix),
    put: async (key, value) => await state.put(key, value),
    members: () => state.members().filter((m) => !departed.has(m.peerId)),
    departed: () => departed,
    addEventListener: (type, listener) => { state.addEventListener(type, listener) },
    removeEventListener: (type, listener) => { state.removeEventListener(type, listener) }
  }
}

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c() })

describe('roles: departed identities and the size warning', () => {
  it('a removed or forgotten identity with a roles/node entry no longer counts as a node seen', async () => {
    const site = createFakeSite()
    const departed = new Map<string, 'removed' | 'forgotten'>()
    const controllers: RolesController[] = []
    for (let i = 0; i < 3; i++) {
      const dir = await mkdtemp(join(tmpdir(), 'roles-departed-'))
      cleanups.push(async () => { await rm(dir, { recursive: true, force: true }) })
      const c = createRolesController({
        config: testConfig(dir),
        state: withDepartures(site.node(`12D3KooWnode${i}`), departed),
        stateDir: dir,
        credentials,
        installer: { install: async () => ({ changed: true }) },
        overlay: () => ({ address: `10.88.0.${i + 1}`, interface: 'kairos0' })
      })
      await c.start()
      cleanups.push(async () => { await c.stop() })
      controllers.push(c)
    }
    const [first] = controllers as [RolesController]
    await waitFor('all joined', () => controllers.every((c) => c.status().phase === 'joined') || undefined, 20_000)
    expect(first.status().warnings.join('\n')).not.toMatch(/at most half/)
    // Two ghosts: the old identities of reinstalled boxes, with their roles/node entries still in the state.
    const nodeValue = site.node('12D3KooWnode0').get('12D3KooWnode0', 'roles/node')?.value ?? null
    site.inject('12D3KooWghost1', 'roles/node', nodeValue)
    site.inject('12D3KooWghost2', 'roles/node', nodeValue)
    await waitFor('the ghosts count', () => /at most half of the 5 nodes seen/.test(first.status().warnings.join('\n')) || undefined, 10_000)
    departed.set('12D3KooWghost1', 'removed')
    departed.set('12D3KooWghost2', 'forgotten')
    site.inject('12D3KooWnode9', 'unrelated', 1) // wakes the controllers
    await waitFor('the ghosts no longer count', () => !/at most half/.test(first.status().warnings.join('\n')) || undefined, 10_000)
  }, 60_000)
})
