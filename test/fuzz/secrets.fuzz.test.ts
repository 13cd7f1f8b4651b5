// Fuzz of the decoders that read secrets from outside: sealed credentials as they come
// out of the cluster state, and network tokens (ours and Kairos/edgevpn ones) as a
// config carries them. Seeded (see harness.ts).
import { describe, expect, it } from 'vitest'
import { createSealKeys, generateClusterSecrets, openCredential, sealCredential, SealError } from '../../roles/credentials.ts'
import { encodeToken, parseConfiguredToken, parseToken, TokenError } from '../../token/index.ts'
import { seededRandom } from '../../util/random.ts'
import { edgevpnConfig, edgevpnToken, edgevpnYaml } from '../token/edgevpn.ts'
import { fuzz, fuzzSeed, mutateText, textInputs } from './harness.ts'

const N = 1_500

function report (name: string, r: { inputs: number, rejected: number, maxMs: number, maxMsInput: number }): void {
  console.log(`fuzz ${name}: ${r.inputs} inputs, ${r.rejected} rejected, slowest ${r.maxMs.toFixed(1)} ms (${r.maxMsInput} long)`)
}

describe('fuzz: secrets from outside', () => {
  it('sealed credentials: only SealError, and a mutated box never opens', async () => {
    const random = seededRandom(fuzzSeed(20))
    const keys = await createSealKeys(undefined, { random })
    const secrets = generateClusterSecrets(random)
    const samples = [
      JSON.stringify(sealCredential('agent', secrets, keys.publicKey, random)),
      JSON.stringify(sealCredential('server', secrets, keys.publicKey, random))
    ]
    let opened = 0
    report('credential', await fuzz('credential', fuzzSeed(20), textInputs(fuzzSeed(20), N, samples), [SealError], (text) => {
      let value: unknown
      try { value = JSON.parse(text) } catch { value = text }
      const credential = openCredential(keys, value)
      opened++
      // Only an unaltered box opens (AES-GCM): what it yields is one of the two originals.
      expect([secrets.agentToken, secrets.serverToken]).toContain(credential.token)
    }))
    expect(opened).toBeGreaterThanOrEqual(2)
  })

  it('network tokens, ours and Kairos/edgevpn ones: only TokenError', async () => {
    const random = seededRandom(fuzzSeed(21))
    const config = edgevpnConfig(random)
    const yamls = [edgevpnYaml(config)]
    // Mutated YAML inside valid base64, so the YAML reader is reached, not only the base64 check.
    for (let i = 0; i < 200; i++) yamls.push(mutateText(random, yamls[0] as string, yamls))
    const samples = [
      encodeToken(random.bytes(32)),
      encodeToken(random.bytes(32)).toUpperCase(),
      edgevpnToken(random),
      ...yamls.map((y) => Buffer.from(y, 'utf8').toString('base64'))
    ]
    report('token', await fuzz('token', fuzzSeed(21), textInputs(fuzzSeed(21), N, samples), [TokenError], (text) => {
      parseToken(text)
      parseConfiguredToken(text)
    }))
  })
})
