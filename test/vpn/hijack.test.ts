import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { VpnConfig } from '../../config/types.ts'
import { ManualClock } from '../../util/clock.ts'
import { seededRandom } from '../../util/random.ts'
import { compareClaims, overlayCandidate, parseOverlayCidr } from '../../vpn/address.ts'
import { createVpnController, VOUCH_LINGER_MS, type VpnController } from '../../vpn/controller.ts'
import { createFakeWireGuardDriver, type FakeWireGuardDriver } from '../../vpn/fake-driver.ts'
import { generateKeyPair } from '../../vpn/keys.ts'
import { advertValue, parseAdvert, VPN_ADVERT_KEY, type VpnAdvert } from '../../vpn/peers.ts'
import { createFakeSite, waitFor, type FakeSite } from './cluster-state-fake.ts'
import { randomPeerId } from './random-ids.ts'

/*
 * A token holder running modified code writes whatever advert it likes under its own
 * peer id (as `site.inject` does here). These are the two overlay hijacks: taking an
 * established node's WireGuard slot by copying its public key from a peer id that
 * ranks first, and taking its overlay address with a ground peer id.
 */

const vpn: VpnConfig = { create: true, use: true, cidr: '10.88.7.0/24', interface: 'kairos0', port: 51820, mtu: 1420 }
const net = parseOverlayCidr(vpn.cidr)
const timing = { vpnReconcileMs: 60_000, vpnHandshakeStaleMs: 10_000 }

interface Node { id: string, dir: string, driver: FakeWireGuardDriver, controller: VpnController }

let site: FakeSite
let clock: ManualClock
let dirs: string[]
let controllers: VpnController[]

beforeEach(() => {
  site = createFakeSite()
  clock = new ManualClock(1_700_000_000_000)
  dirs = []
  controllers = []
})
afterEach(async () => {
  for (const c of controllers) await c.stop()
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

async function node (id: string, host: number, again?: Node): Promise<Node> {
  const dir = again?.dir ?? await mkdtemp(join(tmpdir(), 'kairos-vpn-hijack-'))
  if (again === undefined) dirs.push(dir)
  const driver = again?.driver ?? createFakeWireGuardDriver()
  const controller = createVpnController({
    vpn, timing, state: site.node(id), driver, stateDir: dir, clock, coalesceMs: 0,
    hostAddresses: () => [{ interface: 'eth0', address: `192.168.1.${host}`, family: 'IPv4', prefixLength: 24, internal: false }]
  })
  controllers.push(controller)
  await controller.start()
  return { id, dir, driver, controller }
}

function peersOf (n: Node): Map<string, string[]> {
  return new Map([...(n.driver.interfaces.get('kairos0')?.peers.values() ?? [])].map((p) => [p.publicKey, p.allowedIps]))
}

function advertOf (id: string): VpnAdvert {
  const e = site.node(id).get(id, VPN_ADVERT_KEY)
  const a = e?.value == null ? undefined : parseAdvert(e.value)
  if (a === undefined) throw new Error(`no advert of ${id}`)
  return a
}

/** Lets every controller run the passes woken by the latest change. */
async function settle (nodes: Node[]): Promise<void> {
  for (let i = 0; i < 3; i++) for (const n of nodes) await n.controller.reconcile()
}

describe('overlay hijack by a token holder', () => {
  it('copying an established node\'s public key from a lower peer id takes nothing: the holder stays everywhere', async () => {
    const victim = await node('node-v', 10)
    const witness = await node('node-w', 11)
    await waitFor(() => peersOf(witness).size === 1 && peersOf(victim).size === 1, 5_000, 'mesh of two')
    clock.advance(30_000) // the victim has been known for a while
    const v = advertOf('node-v')
    // 'node-a' < 'node-v': the old rule gave a shared key to the lower peer id.
    const attacker = 'node-a'
    site.inject(attacker, VPN_ADVERT_KEY, advertValue({ publicKey: v.publicKey, port: 51820, endpoints: ['192.168.1.66:51820'], address: overlayCandidate(net, attacker, 0), attempt: 0 }))
    await settle([victim, witness])
    // The witness keeps the victim's key pointing at the victim's address and endpoint.
    expect(peersOf(witness).get(v.publicKey)).toEqual([`${v.address}/32`])
    expect(witness.driver.interfaces.get('kairos0')?.peers.get(v.publicKey)?.endpoint).toBe('192.168.1.10:51820')
    expect(witness.controller.status().ignored).toContainEqual({ peerId: attacker, reason: 'duplicate-key' })
    expect(witness.controller.status().duplicateKeys).toEqual([{ publicKey: v.publicKey, holders: [attacker, 'node-v'].sort(), kept: 'node-v' }])
    // The victim never configures its own key as a peer.
    expect(peersOf(victim).has(v.publicKey)).toBe(false)
    expect(peersOf(victim).size).toBe(1)
    // A node that joins after the attack follows the witness's vouch.
    await waitFor(() => (advertOf('node-w').vouch ?? []).includes('node-v'), 5_000, 'the witness vouches for the victim')
    const late = await node('node-z', 12)
    await settle([late])
    expect(peersOf(late).get(v.publicKey)).toEqual([`${v.address}/32`])
  })

  it('a ground peer id whose first candidate is an established address does not take it over', async () => {
    const holderId = 'node-h' // think of the init server and its :6443
    const holder = await node(holderId, 10)
    const w1 = await node('node-w1', 11)
    const w2 = await node('node-w2', 12)
    await waitFor(() => [holder, w1, w2].every((n) => peersOf(n).size === 2), 5_000, 'mesh of three')
    clock.advance(30_000)
    const h = advertOf(holderId)
    // Grind peer ids until one's first candidate is the holder's address and it ranks first.
    const rng = seededRandom(6443)
    let attacker = ''
    let tries = 0
    for (;;) {
      tries++
      const id = randomPeerId(rng)
      if (overlayCandidate(net, id, 0) !== h.address) continue
      if (compareClaims({ peerId: id, address: h.address, attempt: 0 }, { peerId: holderId, address: h.address, attempt: h.attempt }) < 0) { attacker = id; break }
    }
    expect(tries).toBeLessThan(100_000)
    const moved: unknown[] = []
    holder.controller.addEventListener('address:moved', (e) => { moved.push(e.detail) })
    const attackerKey = generateKeyPair().publicKey
    // It vouches for itself too; a contender's word about itself counts for nothing.
    site.inject(attacker, VPN_ADVERT_KEY, advertValue({ publicKey: attackerKey, port: 51820, endpoints: ['192.168.1.66:51820'], address: h.address, attempt: 0, vouch: [attacker] }))
    await settle([holder, w1, w2])
    expect(moved).toEqual([])
    expect(holder.controller.status().address).toBe(h.address)
    for (const w of [w1, w2]) {
      expect(peersOf(w).get(h.publicKey)).toEqual([`${h.address}/32`])
      expect(peersOf(w).has(attackerKey)).toBe(false)
      expect(w.controller.status().ignored).toContainEqual({ peerId: attacker, reason: 'lost-claim' })
    }
    // A node joining later has seen neither claim first; the vouches decide for it.
    await waitFor(() => ['node-w1', 'node-w2'].every((id) => (advertOf(id).vouch ?? []).includes(holderId)), 5_000, 'vouches published')
    const late = await node('node-z', 13)
    await settle([late])
    expect(peersOf(late).get(h.publicKey)).toEqual([`${h.address}/32`])
    expect(peersOf(late).has(attackerKey)).toBe(false)
    expect(late.controller.status().address).not.toBe(h.address)
    // A contender that withdraws and claims again over and over costs the witnesses no
    // advert writes: their vouches linger.
    const putsBefore = ['node-w1', 'node-w2'].map((id) => site.node(id).puts)
    const claimAgain = advertValue({ publicKey: attackerKey, port: 51820, endpoints: ['192.168.1.66:51820'], address: h.address, attempt: 0 })
    for (let i = 0; i < 5; i++) {
      site.inject(attacker, VPN_ADVERT_KEY, null)
      await settle([holder, w1, w2, late])
      site.inject(attacker, VPN_ADVERT_KEY, claimAgain)
      await settle([holder, w1, w2, late])
    }
    expect(['node-w1', 'node-w2'].map((id) => site.node(id).puts)).toEqual(putsBefore)
    expect(holder.controller.status().address).toBe(h.address)
    // The contest over for good, the vouches go after a while and the adverts are as before.
    site.inject(attacker, VPN_ADVERT_KEY, null)
    await settle([holder, w1, w2, late])
    expect(advertOf('node-w1').vouch).toEqual([holderId])
    clock.advance(VOUCH_LINGER_MS)
    await settle([holder, w1, w2, late])
    await waitFor(() => ['node-w1', 'node-w2'].every((id) => advertOf(id).vouch === undefined), 5_000, 'vouches withdrawn')
  })

  it('a whole-site restart during the attack changes nothing: establishment and vouches are remembered', async () => {
    const holderId = 'node-h'
    const nodes = [await node(holderId, 10), await node('node-w1', 11), await node('node-w2', 12)]
    await waitFor(() => nodes.every((n) => peersOf(n).size === 2), 5_000, 'mesh of three')
    clock.advance(30_000)
    await settle(nodes) // the holder notes its claim established in its claim file
    const h = advertOf(holderId)
    const rng = seededRandom(16443)
    let attacker = ''
    while (attacker === '') {
      const id = randomPeerId(rng)
      if (overlayCandidate(net, id, 0) === h.address && compareClaims({ peerId: id, address: h.address, attempt: 0 }, { peerId: holderId, address: h.address, attempt: h.attempt }) < 0) attacker = id
    }
    site.inject(attacker, VPN_ADVERT_KEY, advertValue({ publicKey: generateKeyPair().publicKey, port: 51820, endpoints: ['192.168.1.66:51820'], address: h.address, attempt: 0 }))
    await settle(nodes)
    await waitFor(() => ['node-w1', 'node-w2'].every((id) => (advertOf(id).vouch ?? []).includes(holderId)), 5_000, 'vouches published')
    // Power cycle: every controller stops and starts again from its state dir.
    for (const n of nodes) await n.controller.stop()
    const back = [await node(holderId, 10, nodes[0]), await node('node-w1', 11, nodes[1]), await node('node-w2', 12, nodes[2])]
    await settle(back)
    expect(back[0]?.controller.status().address).toBe(h.address)
    for (const w of back.slice(1)) {
      expect(peersOf(w).get(h.publicKey)).toEqual([`${h.address}/32`])
      expect(w.controller.status().vouching).toEqual([holderId])
    }
  })

  it('in a boot race neither claim is established and the rank settles it, with no vouches', async () => {
    const rng = seededRandom(77)
    const seen = new Map<string, string>()
    let pair: [string, string] | undefined
    while (pair === undefined) {
      const id = randomPeerId(rng)
      const a = overlayCandidate(net, id, 0)
      const prior = seen.get(a)
      if (prior !== undefined) pair = [prior, id]
      seen.set(a, id)
    }
    const address = overlayCandidate(net, pair[0], 0)
    const winner = compareClaims({ peerId: pair[0], address, attempt: 0 }, { peerId: pair[1], address, attempt: 0 }) < 0 ? pair[0] : pair[1]
    const held = site.hold()
    const starting = Promise.all(pair.map(async (id, i) => await node(id, 20 + i)))
    await waitFor(() => held.waiting() === 2, 5_000, 'both publishing')
    held.release()
    const nodes = await starting
    await settle(nodes)
    await waitFor(() => nodes.every((n) => peersOf(n).size === 1), 5_000, 'mesh after the race')
    expect(site.node(winner).get(winner, VPN_ADVERT_KEY)).toBeDefined()
    expect(advertOf(winner).address).toBe(address)
    expect(nodes.every((n) => n.controller.status().vouching.length === 0)).toBe(true)
  })
})
