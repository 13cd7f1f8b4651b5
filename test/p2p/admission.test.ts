import { randomBytes } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import { admissionProof, proofMatches } from '../../p2p/admission.ts'
import { deriveKeys } from '../../token/index.ts'
import { Cluster, alivePeers, newToken } from './harness.ts'
import { waitFor } from '../helpers/wait.ts'

const A = '12D3KooWA'
const B = '12D3KooWB'

describe('admission proof', () => {
  const key = new Uint8Array(randomBytes(32))
  const nI = new Uint8Array(randomBytes(32))
  const nR = new Uint8Array(randomBytes(32))

  it('binds the key, the role, both peer ids and both nonces', () => {
    const base = admissionProof(key, 'initiator', A, B, nI, nR)
    expect(proofMatches(base, admissionProof(key, 'initiator', A, B, nI, nR))).toBe(true)
    expect(proofMatches(base, admissionProof(new Uint8Array(32), 'initiator', A, B, nI, nR))).toBe(false)
    expect(proofMatches(base, admissionProof(key, 'responder', A, B, nI, nR))).toBe(false)
    expect(proofMatches(base, admissionProof(key, 'initiator', B, A, nI, nR))).toBe(false)
    expect(proofMatches(base, admissionProof(key, 'initiator', A, B, nR, nI))).toBe(false)
    expect(proofMatches(base, base.subarray(0, 31))).toBe(false)
  })

  it('cannot be shifted between fields (length-prefixed)', () => {
    expect(proofMatches(admissionProof(key, 'initiator', 'ab', 'c', nI, nR), admissionProof(key, 'initiator', 'a', 'bc', nI, nR))).toBe(false)
  })
})

describe('admission on a live network', () => {
  let cluster: Cluster
  afterEach(async () => { await cluster.close() })

  it('a node with another token cannot connect and receives nothing', async () => {
    cluster = new Cluster()
    const token = newToken()
    const a = await cluster.node(token)
    const boot = [a.addresses()[0] as string]
    await a.state.put('secret', 'only for token holders')
    const stranger = await cluster.node(newToken(), { bootstrapPeers: boot })
    const friend = await cluster.node(token, { bootstrapPeers: boot })
    // The friend bootstrapping at the same moment is the control: once it has the entry,
    // the stranger had the same chances (and several redials) to get it.
    await waitFor('the friend has the entry', () => (friend.state.get(a.peerId, 'secret') !== undefined) || undefined)
    await waitFor('the stranger tried and failed to connect', () => (stranger.status().dials.failed >= 1) || undefined, 5_000)
    // Nothing but its own presence entry.
    expect(stranger.state.list().filter((e) => e.owner !== stranger.peerId)).toEqual([])
    expect(stranger.state.members()).toEqual([])
    expect(a.state.members().map((m) => m.peerId)).not.toContain(stranger.peerId)
    expect(a.status().peers.find((p) => p.id === stranger.peerId)?.connected ?? false).toBe(false)
  })

  it('a peer with the pnet key but a wrong admission key is disconnected, counted and never a member', async () => {
    cluster = new Cluster()
    const token = newToken()
    const a = await cluster.node(token)
    await a.state.put('secret', 1)
    const wrong = deriveKeys(newToken())
    const intruder = await cluster.node(token, { bootstrapPeers: [a.addresses()[0] as string] }, { keyOverrides: { admissionKey: wrong.admissionKey } })
    await waitFor('a counted a failed admission', () => (a.status().admissionFailures > 0) || undefined)
    await waitFor('the intruder counted a bad proof', () => (intruder.status().admissionFailuresByReason['bad-proof'] > 0) || undefined)
    expect(a.state.members().map((m) => m.peerId)).not.toContain(intruder.peerId)
    expect(intruder.state.members()).toEqual([])
    expect(intruder.state.list().filter((e) => e.owner !== intruder.peerId)).toEqual([])
    await waitFor('the connection is gone', () => (a.status().peers.every((p) => p.id !== intruder.peerId || !p.connected)) || undefined, 5_000)
    expect(alivePeers(a)).toEqual([])
  })
})
