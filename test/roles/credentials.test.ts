import { mkdtemp, readFile, rm, stat, chmod, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { X509Certificate, createHash } from 'node:crypto'
import {
  CLUSTER_SECRET_BYTES, SEAL_KEY_FILE, caHashOf, createSealKeys, pemCertificates, sealKeyProblem, generateClusterSecrets, openCredential, parseSealedBox, sealCredential, sealTo,
  type SealedBox
} from '../../roles/credentials.ts'
import { cryptoRandom, seededRandom } from '../../util/random.ts'
import { LOW_ORDER_KEYS, sealKeyOf } from '../helpers/seal-keys.ts'

function expectSealError (fn: () => unknown, reason?: string): void {
  let caught: unknown
  try { fn() } catch (err) { caught = err }
  expect(caught).toBeInstanceOf(Error)
  expect((caught as Error).name).toBe('SealError')
  if (reason !== undefined) expect((caught as { reason: string }).reason).toBe(reason)
}

function flipByte (b64: string, index: number, mask: number): string {
  const raw = Buffer.from(b64, 'base64')
  raw[index] = (raw[index] ?? 0) ^ mask
  return raw.toString('base64')
}

describe('generateClusterSecrets', () => {
  it('makes two different 256-bit tokens in a charset k3s takes verbatim', () => {
    const { serverToken, agentToken } = generateClusterSecrets(cryptoRandom)
    expect(CLUSTER_SECRET_BYTES * 8).toBeGreaterThanOrEqual(256)
    for (const token of [serverToken, agentToken]) {
      expect(token).toMatch(/^[0-9a-f]{64}$/)
      expect(Buffer.from(token, 'hex')).toHaveLength(CLUSTER_SECRET_BYTES)
    }
    expect(agentToken).not.toBe(serverToken)
  })

  it('draws every bit from the source: no two of many runs share a token', () => {
    const seen = new Set<string>()
    for (let i = 0; i < 200; i++) {
      const { serverToken, agentToken } = generateClusterSecrets(cryptoRandom)
      seen.add(serverToken); seen.add(agentToken)
    }
    expect(seen.size).toBe(400)
    // every hex digit appears in every position over 400 tokens with overwhelming probability
    const perPosition = Array.from({ length: 64 }, () => new Set<string>())
    for (const token of seen) [...token].forEach((c, i) => perPosition[i]?.add(c))
    for (const digits of perPosition) expect(digits.size).toBe(16)
  })

  it('is deterministic for a seeded source and differs across seeds', () => {
    expect(generateClusterSecrets(seededRandom(7))).toEqual(generateClusterSecrets(seededRandom(7)))
    expect(generateClusterSecrets(seededRandom(7))).not.toEqual(generateClusterSecrets(seededRandom(8)))
  })

  it('never hands out equal server and agent tokens, even from a stuck source', () => {
    let calls = 0
    const stuck = { ...cryptoRandom, bytes: (n: number) => new Uint8Array(n).fill(calls++ < 2 ? 1 : 2) }
    const { serverToken, agentToken } = generateClusterSecrets(stuck)
    expect(agentToken).not.toBe(serverToken)
  })
})

describe('sealTo / SealKeys.open', () => {
  it('round-trips to the recipient and only the recipient', async () => {
    const alice = await createSealKeys()
    const mallory = await createSealKeys()
    const box = sealTo(alice.publicKey, 'k3s-token-✓')
    expect(Object.keys(box).sort()).toEqual(['ct', 'epk', 'nonce', 'v'])
    expect(JSON.parse(JSON.stringify(box))).toEqual(box)
    expect(alice.open(box)).toBe('k3s-token-✓')
    expectSealError(() => mallory.open(box), 'authentication-failed')
  })

  it('uses a fresh ephemeral key per box', async () => {
    const alice = await createSealKeys()
    const a = sealTo(alice.publicKey, 'same')
    const b = sealTo(alice.publicKey, 'same')
    expect(a.epk).not.toBe(b.epk)
    expect(a.ct).not.toBe(b.ct)
  })

  it('rejects every single-byte change of epk, nonce and ct', async () => {
    const alice = await createSealKeys(undefined, { random: seededRandom(1) })
    const box = sealTo(alice.publicKey, 'secret', seededRandom(2))
    let tried = 0
    for (const field of ['epk', 'nonce', 'ct'] as const) {
      const length = Buffer.from(box[field], 'base64').length
      for (let i = 0; i < length; i++) {
        // 0x80 on the last epk byte is the bit X25519 itself ignores: only the binding catches it.
        for (const mask of [0x01, 0x80]) {
          expectSealError(() => alice.open({ ...box, [field]: flipByte(box[field], i, mask) }))
          tried++
        }
      }
    }
    expect(tried).toBe(2 * (32 + 12 + Buffer.from(box.ct, 'base64').length))
    expect(alice.open(box)).toBe('secret')
  })

  it('rejects malformed boxes with a named reason', async () => {
    const alice = await createSealKeys()
    const box = sealTo(alice.publicKey, 'x')
    expectSealError(() => alice.open({ ...box, v: 2 } as unknown as SealedBox), 'unsupported-version')
    expectSealError(() => alice.open({ ...box, epk: 'not base64!' }), 'malformed')
    expectSealError(() => alice.open({ ...box, nonce: Buffer.alloc(8).toString('base64') }), 'malformed')
    expectSealError(() => alice.open({ ...box, ct: Buffer.alloc(4).toString('base64') }), 'malformed')
    expectSealError(() => alice.open({ ...box, epk: Buffer.alloc(32).toString('base64') }), 'authentication-failed')
    expectSealError(() => parseSealedBox('a string'), 'malformed')
    expectSealError(() => parseSealedBox({ v: 1, epk: 1, nonce: '', ct: '' }), 'malformed')
    expect(parseSealedBox(JSON.parse(JSON.stringify(box)))).toEqual(box)
  })

  it('refuses a recipient key that is not 32 raw bytes', () => {
    for (const bad of ['', 'abc', Buffer.alloc(31).toString('base64'), Buffer.alloc(33).toString('base64')]) {
      expect(() => sealTo(bad, 'x')).toThrow(expect.objectContaining({ name: 'SealKeyError' }))
    }
    expect(() => sealTo(Buffer.alloc(32).toString('base64'), 'x')).toThrow(expect.objectContaining({ name: 'SealKeyError' }))
  })

  it('is deterministic with seeded sources (simulation)', async () => {
    const a1 = await createSealKeys(undefined, { random: seededRandom(42) })
    const a2 = await createSealKeys(undefined, { random: seededRandom(42) })
    expect(a1.publicKey).toBe(a2.publicKey)
    expect(sealTo(a1.publicKey, 'tok', seededRandom(9))).toEqual(sealTo(a2.publicKey, 'tok', seededRandom(9)))
    expect(a2.open(sealTo(a1.publicKey, 'tok', seededRandom(9)))).toBe('tok')
  })
})

describe('createSealKeys with a state dir', () => {
  let dir: string
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'seal-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  it('persists the key 0600 and reuses it after a restart', async () => {
    const stateDir = join(dir, 'state')
    const first = await createSealKeys(stateDir)
    const box = sealTo(first.publicKey, 'survives reboot')
    const file = join(stateDir, SEAL_KEY_FILE)
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    expect(await readFile(file, 'utf8')).not.toContain(first.publicKey)
    const second = await createSealKeys(stateDir)
    expect(second.publicKey).toBe(first.publicKey)
    expect(second.open(box)).toBe('survives reboot')
  })

  it('agrees on one key when two starts race', async () => {
    const [a, b] = await Promise.all([createSealKeys(dir), createSealKeys(dir)])
    const again = await createSealKeys(dir)
    expect(again.publicKey).toBe(a.publicKey)
    expect(again.publicKey).toBe(b.publicKey)
  })

  it('tightens a key file readable by others', async () => {
    await createSealKeys(dir)
    await chmod(join(dir, SEAL_KEY_FILE), 0o644)
    await createSealKeys(dir)
    expect((await stat(join(dir, SEAL_KEY_FILE))).mode & 0o777).toBe(0o600)
  })

  it('refuses a damaged key file instead of silently replacing it', async () => {
    await writeFile(join(dir, SEAL_KEY_FILE), '{"v":1,"x25519":"short"}', { mode: 0o600 })
    await expect(createSealKeys(dir)).rejects.toMatchObject({ name: 'SealKeyError', message: expect.stringContaining(SEAL_KEY_FILE) })
    await writeFile(join(dir, SEAL_KEY_FILE), 'garbage', { mode: 0o600 })
    await expect(createSealKeys(dir)).rejects.toMatchObject({ name: 'SealKeyError' })
  })
})

describe('sealCredential / openCredential', () => {
  const secrets = generateClusterSecrets(seededRandom(3))

  it('gives a server both tokens and an agent only the agent token', async () => {
    const server = await createSealKeys()
    const agent = await createSealKeys()
    const forServer = sealCredential('server', secrets, server.publicKey)
    const forAgent = sealCredential('agent', secrets, agent.publicKey)
    expect(openCredential(server, JSON.parse(JSON.stringify(forServer)))).toEqual({ role: 'server', token: secrets.serverToken, agentToken: secrets.agentToken })
    expect(openCredential(agent, forAgent)).toEqual({ role: 'agent', token: secrets.agentToken })
    expect(JSON.stringify(forAgent)).not.toContain(secrets.serverToken)
    expect(JSON.stringify(forServer)).not.toContain(secrets.serverToken)
    expect(() => openCredential(agent, forServer)).toThrow(expect.objectContaining({ name: 'SealError', reason: 'authentication-failed' }))
  })

  it('detects a relabelled role and malformed input', async () => {
    const agent = await createSealKeys()
    const forAgent = sealCredential('agent', secrets, agent.publicKey)
    expect(() => openCredential(agent, { ...forAgent, role: 'server' })).toThrow(expect.objectContaining({ name: 'SealError', reason: 'malformed' }))
    expect(() => openCredential(agent, { ...forAgent, v: 2 })).toThrow(expect.objectContaining({ reason: 'unsupported-version' }))
    expect(() => openCredential(agent, null)).toThrow(expect.objectContaining({ reason: 'malformed' }))
    expect(() => openCredential(agent, { v: 1, role: 'agent', box: sealTo(agent.publicKey, 'not json') })).toThrow(expect.objectContaining({ reason: 'malformed' }))
    const overScoped = { v: 1, role: 'agent', box: sealTo(agent.publicKey, JSON.stringify({ role: 'agent', token: 'x', agentToken: 'y' })) }
    expect(() => openCredential(agent, overScoped)).toThrow(expect.objectContaining({ reason: 'malformed' }))
  })
})

describe('sealKeyProblem', () => {
  it('accepts a generated key and says why it refuses a short, non-base64 or low-order one', () => {
    expect(sealKeyProblem(sealKeyOf('a'))).toBeUndefined()
    expect(sealKeyProblem('seal-a')).toMatch(/6 characters; base64 of a 32-byte X25519 key is 44/)
    expect(sealKeyProblem('!'.repeat(44))).toMatch(/not canonical base64/)
    expect(sealKeyProblem(Buffer.alloc(33, 1).toString('base64').slice(0, 44))).toMatch(/not canonical base64|33 bytes/)
    for (const key of LOW_ORDER_KEYS) expect(sealKeyProblem(key)).toMatch(/low-order point/)
  })

  it('refuses exactly the keys no box can be sealed to', () => {
    for (const key of LOW_ORDER_KEYS) expect(() => sealTo(key, 'x')).toThrow(/low-order|cannot seal/)
    expect(() => sealTo(sealKeyOf('a'), 'x')).not.toThrow()
  })
})

describe('caHashOf: the hash k3s pins its cluster CA by', () => {
  const fixture = async (name: string): Promise<Buffer> => await readFile(join(import.meta.dirname, '..', 'fixtures', 'ca', name))

  it('is sha256 of the file for k3s\'s single self-signed CA, as `K10<hash>` tokens carry it', async () => {
    const pem = await fixture('server-ca.crt')
    expect(caHashOf(pem)).toBe(createHash('sha256').update(pem).digest('hex'))
    expect(caHashOf(pem.toString('utf8'))).toBe(caHashOf(pem))
  })

  it('is sha256 of the root\'s DER for a bundle, so a renewed intermediate keeps the pin', async () => {
    const [one, two] = [await fixture('bundle-1.crt'), await fixture('bundle-2.crt')]
    const root = pemCertificates(one)[1] as X509Certificate
    expect(caHashOf(one)).toBe(createHash('sha256').update(root.raw).digest('hex'))
    expect(caHashOf(two)).toBe(caHashOf(one))
    expect(caHashOf(one)).not.toBe(createHash('sha256').update(one).digest('hex'))
  })

  it('hashes the bytes when the first certificate does not chain to the others, as k3s does', async () => {
    const single = await fixture('server-ca.crt')
    const unrelated = Buffer.concat([single, (await fixture('bundle-1.crt'))])
    expect(caHashOf(unrelated)).toBe(createHash('sha256').update(unrelated).digest('hex'))
  })

  it('refuses a file with no certificate, or a damaged one, with CaBundleError', () => {
    for (const bad of ['', 'not a certificate', '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n']) {
      let caught: unknown
      try { caHashOf(bad) } catch (err) { caught = err }
      expect((caught as Error).name).toBe('CaBundleError')
    }
  })
})
