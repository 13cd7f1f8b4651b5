import { mkdtemp, readFile, rm, stat, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { generateKeyPair, loadOrCreateKeyPair, PRIVATE_KEY_FILE, publicKeyOf } from '../../vpn/keys.ts'
import { CLAIM_FILE, loadClaim, saveClaim } from '../../vpn/claim-file.ts'

let dir: string
beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'kairos-vpn-keys-')) })
afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

describe('keys', () => {
  it('derives the same public key as `wg pubkey`', async () => {
    const pair = generateKeyPair()
    expect(publicKeyOf(pair.privateKey)).toBe(pair.publicKey)
    const wg = await execa('wg', ['pubkey'], { input: pair.privateKey + '\n', reject: false })
    if (wg.failed) return // wg not installed: the derivation check above still ran
    expect(wg.stdout.trim()).toBe(pair.publicKey)
  })

  it('keeps the last derivation without mixing up keys, and still refuses a bad one', () => {
    const a = generateKeyPair()
    const b = generateKeyPair()
    for (const pair of [a, a, b, a, b, b]) expect(publicKeyOf(pair.privateKey)).toBe(pair.publicKey)
    expect(() => publicKeyOf('not-a-key')).toThrow(/expected base64 of 32 bytes/)
    expect(publicKeyOf(b.privateKey)).toBe(b.publicKey)
  })

  it('creates the key once with mode 0600 and keeps it', async () => {
    const first = await loadOrCreateKeyPair(dir)
    const file = join(dir, PRIVATE_KEY_FILE)
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    expect((await readFile(file, 'utf8')).trim()).toBe(first.privateKey)
    expect(await loadOrCreateKeyPair(dir)).toEqual(first)
  })

  it('refuses to replace a corrupt key file', async () => {
    await mkdir(join(dir, 'vpn'))
    await writeFile(join(dir, PRIVATE_KEY_FILE), 'not a key\n')
    await expect(loadOrCreateKeyPair(dir)).rejects.toMatchObject({ name: 'VpnStateFileError' })
    expect(await readFile(join(dir, PRIVATE_KEY_FILE), 'utf8')).toBe('not a key\n')
  })
})

describe('claim file', () => {
  it('round-trips a claim with mode 0600', async () => {
    expect(await loadClaim(dir)).toBeUndefined()
    await saveClaim(dir, { cidr: '10.88.0.0/16', address: '10.88.1.2', attempt: 3 })
    expect(await loadClaim(dir)).toEqual({ cidr: '10.88.0.0/16', address: '10.88.1.2', attempt: 3 })
    expect((await stat(join(dir, CLAIM_FILE))).mode & 0o777).toBe(0o600)
  })

  it('keeps the established mark, and reads files written without it', async () => {
    await saveClaim(dir, { cidr: '10.88.0.0/16', address: '10.88.1.2', attempt: 3, established: true })
    expect(await loadClaim(dir)).toEqual({ cidr: '10.88.0.0/16', address: '10.88.1.2', attempt: 3, established: true })
    await writeFile(join(dir, CLAIM_FILE), '{"cidr":"10.88.0.0/16","address":"10.88.1.2","attempt":3,"established":"yes"}')
    await expect(loadClaim(dir)).rejects.toMatchObject({ name: 'VpnStateFileError' })
  })

  it.each(['{', '{"cidr":"10.88.0.0/16","address":"10.88.1.2","attempt":-1}', 'null'])('rejects %s', async (text) => {
    await mkdir(join(dir, 'vpn'))
    await writeFile(join(dir, CLAIM_FILE), text)
    await expect(loadClaim(dir)).rejects.toMatchObject({ name: 'VpnStateFileError' })
  })
})
