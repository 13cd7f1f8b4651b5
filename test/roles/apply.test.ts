import { describe, expect, it } from 'vitest'
import type { JsonValue, StateEntry } from '../../p2p/types.ts'
import { applyDecision, applyDecisionNow, credentialFor, credentialOf, issuersOf, sealerOf, type ApplyPorts, type Issuers } from '../../roles/apply.ts'
import { memorySealKeys, openCredential, sealCredential, type ClusterSecrets } from '../../roles/credentials.ts'
import { EMPTY_FACTS, type LocalFacts, type RolesAction } from '../../roles/types.ts'
import { seededRandom } from '../../util/random.ts'

const random = seededRandom(7)
const SECRETS: ClusterSecrets = { serverToken: 'server-token', agentToken: 'agent-token' }
const FACTS: LocalFacts = { ...EMPTY_FACTS, promised: { n: 1, by: 'a' }, promisedAt: 5 }

/** Ports that record every call, in order; `fail` makes a port throw for one key or action. */
function recordingPorts (over: Partial<ApplyPorts> = {}, held?: ClusterSecrets): { ports: ApplyPorts, calls: string[], puts: Map<string, JsonValue> } {
  const calls: string[] = []
  const puts = new Map<string, JsonValue>()
  let secrets = held
  const ports: ApplyPorts = {
    persist: (f) => { calls.push(`persist ${f.promised?.n ?? '-'}`) },
    secrets: () => secrets,
    generateSecrets: (clusterId) => { calls.push(`generate ${clusterId}`); secrets = SECRETS },
    put: (key, value) => { calls.push(`put ${key}`); puts.set(key, value) },
    seal: (kind, s, publicKey) => sealCredential(kind, s, publicKey, random),
    handOff: (h, planKey) => { calls.push(`handOff ${h.role} ${planKey}`) },
    ...over
  }
  return { ports, calls, puts }
}

describe('applyDecision', () => {
  const bob = memorySealKeys(seededRandom(1))
  const actions: RolesAction[] = [
    { persist: FACTS },
    { generateSecrets: true },
    { put: 'roles/vote', value: { promised: null, accepted: null } },
    { sealCredential: 'bob', kind: 'agent', publicKey: bob.publicKey, clusterId: 'c1' },
    { handOff: { role: 'server', clusterInit: true, clusterId: 'c1', initServer: 'a' }, planKey: 'p1' }
  ]

  it('carries out the actions in order, generating secrets before it seals with them', () => {
    const { ports, calls, puts } = recordingPorts()
    const r = applyDecisionNow({ actions, clusterId: 'c1' }, ports)
    expect(calls).toEqual(['persist 1', 'generate c1', 'put roles/vote', 'put cred/bob', 'handOff server p1'])
    expect(r).toEqual({ published: ['roles/vote', 'cred/bob'], refused: [], applied: 5 })
    // The credential is sealed with roles/credentials.ts: only bob opens it, as an agent credential.
    const cred = puts.get('cred/bob') as { kind: string, to: string, clusterId: string, box: JsonValue }
    expect(cred).toMatchObject({ kind: 'agent', to: bob.publicKey, clusterId: 'c1' })
    expect(openCredential(bob, cred.box)).toEqual({ role: 'agent', token: 'agent-token' })
    expect(JSON.stringify(cred)).not.toContain('agent-token')
  })

  it('generates secrets only when none are held, and seals nothing without them', () => {
    const held = recordingPorts({}, SECRETS)
    applyDecisionNow({ actions, clusterId: 'c1' }, held.ports)
    expect(held.calls).not.toContain('generate c1')
    const none = recordingPorts({ generateSecrets: () => {} })
    const r = applyDecisionNow({ actions, clusterId: 'c1' }, none.ports)
    expect(none.puts.has('cred/bob')).toBe(false)
    expect(r.published).toEqual(['roles/vote'])
  })

  it('a refused put skips that entry only; a failed persist ends the decision', async () => {
    const refusing = recordingPorts({ put: async (key) => { if (key === 'roles/vote') throw new Error('owner quota reached') } })
    const r = await applyDecision({ actions, clusterId: 'c1' }, refusing.ports)
    expect(r.refused).toEqual([{ key: 'roles/vote', error: 'owner quota reached' }])
    expect(r.published).toEqual(['cred/bob'])
    expect(refusing.calls.at(-1)).toBe('handOff server p1')

    const failing = recordingPorts({ persist: async () => { throw new Error('disk full') } })
    await expect(applyDecision({ actions, clusterId: 'c1' }, failing.ports)).rejects.toThrow('disk full')
    expect(failing.calls).toEqual([])
    const sync = recordingPorts({ persist: () => { throw new Error('disk full') } })
    expect(() => applyDecisionNow({ actions, clusterId: 'c1' }, sync.ports)).toThrow('disk full')
  })

  it('waits for each pending port before the next action, and stops at an abort', async () => {
    const order: string[] = []
    const controller = new AbortController()
    const { ports } = recordingPorts({
      persist: async () => { await Promise.resolve(); order.push('persisted') },
      generateSecrets: async () => { order.push('generate'); controller.abort() },
      put: (key) => { order.push(`put ${key}`) }
    })
    const r = await applyDecision({ actions, clusterId: 'c1' }, ports, { signal: controller.signal })
    expect(order).toEqual(['persisted', 'generate'])
    expect(r.applied).toBe(2)
  })

  it('applyDecisionNow refuses ports that return promises', () => {
    const { ports } = recordingPorts({ persist: async () => {} })
    expect(() => applyDecisionNow({ actions, clusterId: 'c1' }, ports)).toThrow(TypeError)
  })
})

describe('credentialFor', () => {
  const keys = memorySealKeys(seededRandom(3))
  const other = memorySealKeys(seededRandom(4))
  const entry = (owner: string, version: number, kind: 'server' | 'agent', box: JsonValue, to = keys.publicKey): StateEntry =>
    ({ owner, key: 'cred/me', version, writtenAt: 0, value: { kind, to, clusterId: 'c1', box } })
  const sealed = (kind: 'server' | 'agent', to = keys.publicKey): JsonValue => sealCredential(kind, SECRETS, to, random) as unknown as JsonValue
  const open = (box: JsonValue): ReturnType<typeof openCredential> => openCredential(keys, box)
  const only = (init: string, ...servers: string[]): Issuers => ({ init, servers: new Set([init, ...servers]) })

  it('opens only the credential of the accepted init server, and none before it accepted a record', () => {
    const entries = [entry('mallory', 1, 'agent', sealed('agent')), entry('init', 2, 'server', sealed('server'))]
    expect(credentialFor({ self: 'me', sealKey: keys.publicKey, entries, issuers: only('init'), held: undefined, open })).toMatchObject({ role: 'server', token: 'server-token', agentToken: 'agent-token', owner: 'init', version: 2 })
    expect(credentialFor({ self: 'me', sealKey: keys.publicKey, entries: entries.slice(0, 1), issuers: only('init'), held: undefined, open })).toBeUndefined()
    expect(credentialFor({ self: 'me', sealKey: keys.publicKey, entries, issuers: undefined, held: undefined, open })).toBeUndefined()
    expect(credentialFor({ self: 'me', sealKey: keys.publicKey, entries, issuers: only('mallory'), held: undefined, open })?.owner).toBe('mallory')
  })

  it('opens an entry once, reopens a new version, and reports what does not open', () => {
    let opens = 0
    const counting = (box: JsonValue): ReturnType<typeof openCredential> => { opens++; return open(box) }
    const first = [entry('init', 1, 'agent', sealed('agent'))]
    const held = credentialFor({ self: 'me', sealKey: keys.publicKey, entries: first, issuers: only('init'), held: undefined, open: counting })
    expect(credentialFor({ self: 'me', sealKey: keys.publicKey, entries: first, issuers: only('init'), held, open: counting })).toBe(held)
    expect(opens).toBe(1)
    const errors: string[] = []
    const onError = (owner: string, error: string): void => { errors.push(`${owner}: ${error}`) }
    // Sealed to another key but published as ours; relabelled from agent to server.
    const bad = [entry('init', 2, 'agent', sealed('agent', other.publicKey)), entry('init', 3, 'server', sealed('agent'))]
    for (const e of bad) expect(credentialFor({ self: 'me', sealKey: keys.publicKey, entries: [e], issuers: only('init'), held, open: counting, onError })).toBeUndefined()
    expect(errors).toHaveLength(2)
    expect(errors[1]).toContain('published as server')
    // Addressed to another key in the clear: not ours, not even tried.
    expect(credentialFor({ self: 'me', sealKey: keys.publicKey, entries: [entry('init', 4, 'agent', sealed('agent'), other.publicKey)], issuers: only('init'), held, open: counting, onError })).toBeUndefined()
    expect(errors).toHaveLength(2)
  })

  it('the sealer is the accepted record\'s init server, and a different credential gives a different digest', () => {
    expect(sealerOf(undefined)).toBeUndefined()
    expect(sealerOf(EMPTY_FACTS)).toBeUndefined()
    expect(sealerOf({ cluster: { clusterId: 'c1', init: 'init' }, role: null })).toBe('init')
    expect(sealerOf({ cluster: null, role: { role: 'agent', clusterId: 'c1', init: 'old' } })).toBe('old')
    expect(credentialOf(undefined)).toBeUndefined()
    const a = credentialFor({ self: 'me', sealKey: keys.publicKey, entries: [entry('init', 1, 'agent', sealed('agent'))], issuers: only('init'), held: undefined, open })
    const b = credentialFor({ self: 'me', sealKey: keys.publicKey, entries: [entry('init', 2, 'server', sealed('server'))], issuers: only('init'), held: undefined, open })
    expect(credentialOf(a)?.owner).toBe('init')
    expect(credentialOf(a)?.digest).toMatch(/^[0-9a-f]{32}$/)
    expect(credentialOf(a)?.digest).not.toBe(credentialOf(b)?.digest)
    expect(JSON.stringify(credentialOf(b))).not.toContain('server-token')
  })
})
