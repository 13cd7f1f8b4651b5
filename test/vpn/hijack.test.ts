import { describe, expect, it } from 'vitest'
import { seededRandom } from '../../util/random.ts'
import { compareClaims, overlayCandidate, parseOverlayCidr } from '../../vpn/address.ts'
import { VOUCH_LINGER_MS } from '../../vpn/controller.ts'
import { generateKeyPair } from '../../vpn/keys.ts'
import { advertValue, parseAdvert, VPN_ADVERT_KEY, type VpnAdvert } from '../../vpn/peers.ts'
import { waitFor } from '../helpers/wait.ts'
import { randomPeerId } from '../../sim/random-ids.ts'
import { collidingPeerIds, peersOf, VPN, vpnFixture, type VpnTestNode } from './fixture.ts'

/*
 * A token holder running modified code writes whatever advert it likes under its own
 * peer id (as `fx.site.inject` does here). These are the two overlay hijacks: taking an
 * established node's WireGuard slot by copying its public key from a peer id that
 * ranks first, and taking its overlay address with a ground peer id.
 */

const net = parseOverlayCidr(VPN.cidr)
const fx = vpnFixture()
type Node = VpnTestNode

/** A started controller of node `id`; `again` restarts one from its state dir. */
async function node (id: string, host: number, again?: Node): Promise<Node> {
  const n = await fx.node(id, { host, ...(again === undefined ? {} : { dir: again.dir, driver: again.driver }) })
  await n.controller.start()
  return n
}

function advertOf (id: string): VpnAdvert {
  const e = fx.site.node(id).get(id, VPN_ADVERT_KEY)
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
    await waitFor('mesh of two', () => (peersOf(witness).size === 1 && peersOf(victim).size === 1) || undefined, 5_000)
    fx.clock.advance(30_000) // the victim has been known for a while
    const v = advertOf('node-v')
    // 'node-a' < 'node-v': the old rule gave a shared key to the lower peer id.
    const attacker = 'node-a'
    fx.site.inject(attacker, VPN_ADVERT_KEY, advertValue({ publicKey: v.publicKey, port: 51820, endpoints: ['192.168.1.66:51820'], address: overlayCandidate(net, attacker, 0), attempt: 0 }))
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
    await waitFor('the witness vouches for the victim', () => ((advertOf('node-w').vouch ?? []).includes('node-v')) || undefined, 5_000)
    const late = await node('node-z', 12)
    await settle([late])
    expect(peersOf(late).get(v.publicKey)).toEqual([`${v.address}/32`])
  })

  it('a ground peer id whose first candidate is an established address does not take it over', async () => {
    const holderId = 'node-h' // think of the init server and its :6443
    const holder = await node(holderId, 10)
    const w1 = await node('node-w1', 11)
    const w2 = await node('node-w2', 12)
    await waitFor('mesh of three', () => ([holder, w1, w2].every((n) => peersOf(n).size === 2)) || undefined, 5_000)
    fx.clock.advance(30_000)
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
    fx.site.inject(attacker, VPN_ADVERT_KEY, advertValue({ publicKey: attackerKey, port: 51820, endpoints: ['192.168.1.66:51820'], address: h.address, attempt: 0, vouch: [attacker] }))
    await settle([holder, w1, w2])
    expect(moved).toEqual([])
    expect(holder.controller.status().address).toBe(h.address)
    for (const w of [w1, w2]) {
      expect(peersOf(w).get(h.publicKey)).toEqual([`${h.address}/32`])
      expect(peersOf(w).has(attackerKey)).toBe(false)
      expect(w.controller.status().ignored).toContainEqual({ peerId: attacker, reason: 'lost-claim' })
    }
    // A node joining later has seen neither claim first; the vouches decide for it.
    await waitFor('vouches published', () => (['node-w1', 'node-w2'].every((id) => (advertOf(id).vouch ?? []).includes(holderId))) || undefined, 5_000)
    const late = await node('node-z', 13)
    await settle([late])
    expect(peersOf(late).get(h.publicKey)).toEqual([`${h.address}/32`])
    expect(peersOf(late).has(attackerKey)).toBe(false)
    expect(late.controller.status().address).not.toBe(h.address)
    // A contender that withdraws and claims again over and over costs the witnesses no
    // advert writes: their vouches linger.
    const putsBefore = ['node-w1', 'node-w2'].map((id) => fx.site.node(id).puts)
    const claimAgain = advertValue({ publicKey: attackerKey, port: 51820, endpoints: ['192.168.1.66:51820'], address: h.address, attempt: 0 })
    for (let i = 0; i < 5; i++) {
      fx.site.inject(attacker, VPN_ADVERT_KEY, null)
      await settle([holder, w1, w2, late])
      fx.site.inject(attacker, VPN_ADVERT_KEY, claimAgain)
      await settle([holder, w1, w2, late])
    }
    expect(['node-w1', 'node-w2'].map((id) => fx.site.node(id).puts)).toEqual(putsBefore)
    expect(holder.controller.status().address).toBe(h.address)
    // The contest over for good, the vouches go after a while and the adverts are as before.
    fx.site.inject(attacker, VPN_ADVERT_KEY, null)
    await settle([holder, w1, w2, late])
    expect(advertOf('node-w1').vouch).toEqual([holderId])
    fx.clock.advance(VOUCH_LINGER_MS)
    await settle([holder, w1, w2, late])
    await waitFor('vouches withdrawn', () => (['node-w1', 'node-w2'].every((id) => advertOf(id).vouch === undefined)) || undefined, 5_000)
  })

  it('a whole-site restart during the attack changes nothing: establishment and vouches are remembered', async () => {
    const holderId = 'node-h'
    const nodes = [await node(holderId, 10), await node('node-w1', 11), await node('node-w2', 12)]
    await waitFor('mesh of three', () => (nodes.every((n) => peersOf(n).size === 2)) || undefined, 5_000)
    fx.clock.advance(30_000)
    await settle(nodes) // the holder notes its claim established in its claim file
    const h = advertOf(holderId)
    const rng = seededRandom(16443)
    let attacker = ''
    while (attacker === '') {
      const id = randomPeerId(rng)
      if (overlayCandidate(net, id, 0) === h.address && compareClaims({ peerId: id, address: h.address, attempt: 0 }, { peerId: holderId, address: h.address, attempt: h.attempt }) < 0) attacker = id
    }
    fx.site.inject(attacker, VPN_ADVERT_KEY, advertValue({ publicKey: generateKeyPair().publicKey, port: 51820, endpoints: ['192.168.1.66:51820'], address: h.address, attempt: 0 }))
    await settle(nodes)
    await waitFor('vouches published', () => (['node-w1', 'node-w2'].every((id) => (advertOf(id).vouch ?? []).includes(holderId))) || undefined, 5_000)
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
    const pair = collidingPeerIds(net, seededRandom(77))
    const address = overlayCandidate(net, pair[0], 0)
    const winner = compareClaims({ peerId: pair[0], address, attempt: 0 }, { peerId: pair[1], address, attempt: 0 }) < 0 ? pair[0] : pair[1]
    const held = fx.site.hold()
    const starting = Promise.all(pair.map(async (id, i) => await node(id, 20 + i)))
    await waitFor('both publishing', () => (held.waiting() === 2) || undefined, 5_000)
    held.release()
    const nodes = await starting
    await settle(nodes)
    await waitFor('mesh after the race', () => (nodes.every((n) => peersOf(n).size === 1)) || undefined, 5_000)
    expect(fx.site.node(winner).get(winner, VPN_ADVERT_KEY)).toBeDefined()
    expect(advertOf(winner).address).toBe(address)
    expect(nodes.every((n) => n.controller.status().vouching.length === 0)).toBe(true)
  })
})
