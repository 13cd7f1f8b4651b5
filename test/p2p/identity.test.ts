import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { IDENTITY_FILE, loadOrCreateIdentity } from '../../p2p/identity.ts'
import { loadPeerBook } from '../../p2p/peer-book.ts'
import { silentLogger } from '../../util/log.ts'

describe('identity and known peers', () => {
  let dir: string
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'kp2p-id-')) })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  it('creates an Ed25519 identity once, 0600, and loads the same one again', async () => {
    const a = await loadOrCreateIdentity(dir)
    expect(a.type).toBe('Ed25519')
    expect((await stat(join(dir, IDENTITY_FILE))).mode & 0o777).toBe(0o600)
    const b = await loadOrCreateIdentity(dir)
    expect(peerIdFromPrivateKey(b).toString()).toBe(peerIdFromPrivateKey(a).toString())
  })

  it('a corrupt identity file is an IdentityFileError, never silently replaced', async () => {
    await writeFile(join(dir, IDENTITY_FILE), 'not a key')
    await expect(loadOrCreateIdentity(dir)).rejects.toMatchObject({ name: 'IdentityFileError' })
  })

  it('known peers persist, update, and a corrupt list starts empty', async () => {
    const book = await loadPeerBook(dir, silentLogger)
    expect(book.upsert('p1', { addresses: ['/ip4/10.0.0.1/tcp/4001'], discoveredBy: 'mdns' })).toBe(true)
    expect(book.upsert('p1', { addresses: ['/ip4/10.0.0.2/tcp/4001'], admittedAt: 5 })).toBe(false)
    book.upsert('p2', { addresses: [] })
    book.remove('p2')
    await book.save()
    const again = await loadPeerBook(dir, silentLogger)
    expect(again.list()).toEqual([{ id: 'p1', addresses: ['/ip4/10.0.0.2/tcp/4001'], discoveredBy: 'mdns', admittedAt: 5 }])
    await writeFile(join(dir, 'known-peers.json'), '{')
    expect((await loadPeerBook(dir, silentLogger)).list()).toEqual([])
  })
})
