import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { FACTS_FILE, SECRETS_FILE, loadFacts, loadSecrets, parseFacts, saveFacts, saveSecrets } from '../../roles/local-store.ts'
import { EMPTY_FACTS, type LocalFacts } from '../../roles/types.ts'

let dir = ''
beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'roles-store-')) })
afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

const FACTS: LocalFacts = {
  promised: { n: 4, by: 'b' },
  promisedAt: 17,
  accepted: { ballot: { n: 4, by: 'b' }, candidate: 'a' },
  proposal: null,
  cluster: { clusterId: 'c1', init: 'a' },
  role: { role: 'agent', clusterId: 'c1', init: 'a' },
  joined: { clusterId: 'c1', planKey: 'p' }
}

describe('roles local store', () => {
  it('a fresh node has empty facts and no secrets', async () => {
    expect(await loadFacts(dir)).toEqual(EMPTY_FACTS)
    expect(await loadSecrets(dir)).toBeUndefined()
  })

  it('round-trips facts and secrets in private files, leaving no temp file', async () => {
    await saveFacts(dir, FACTS)
    await saveSecrets(dir, { serverToken: 's', agentToken: 'a', clusterId: 'c1' })
    expect(await loadFacts(dir)).toEqual(FACTS)
    expect(await loadSecrets(dir)).toEqual({ serverToken: 's', agentToken: 'a', clusterId: 'c1' })
    expect((await stat(join(dir, FACTS_FILE))).mode & 0o777).toBe(0o600)
    expect((await stat(join(dir, SECRETS_FILE))).mode & 0o777).toBe(0o600)
    expect((await readdir(dir)).sort()).toEqual([SECRETS_FILE, FACTS_FILE].sort())
  })

  it.each([
    ['not JSON', '{'],
    ['a bad ballot', JSON.stringify({ promised: { n: 'x', by: 'a' } })],
    ['an unknown role', JSON.stringify({ promised: null, role: { role: 'boss', clusterId: 'c', init: 'a' } })],
    ['a CA pin that is not a sha256', JSON.stringify({ promised: null, role: { role: 'agent', clusterId: 'c', init: 'a', caHash: 'zz' } })],
    ['accepted above promised', JSON.stringify({ promised: { n: 1, by: 'a' }, accepted: { ballot: { n: 2, by: 'a' }, candidate: 'a' } })]
  ])('a damaged facts file (%s) is an error, never forgotten promises', async (_name, text) => {
    await writeFile(join(dir, FACTS_FILE), text)
    await expect(loadFacts(dir)).rejects.toMatchObject({ name: 'RolesStoreError' })
  })

  it('keeps the CA a joiner pinned', async () => {
    const role = { role: 'agent' as const, clusterId: 'c', init: 'a', caHash: 'c'.repeat(64) }
    await saveFacts(dir, { ...(await loadFacts(dir)), role })
    expect((await loadFacts(dir)).role).toEqual(role)
  })

  it('names the file in the error', () => {
    expect(() => parseFacts([], '/x/roles.json')).toThrow(/\/x\/roles.json/)
  })
})
