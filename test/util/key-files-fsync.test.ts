// Every key file a node creates once in its life (its peer identity, its seal key) is
// fsynced, and so is its directory after the file is linked in: a power cut at first
// boot leaves no file or the whole key, never an empty one that stops the agent.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'

/** What was fsynced, by the path its descriptor was opened with. */
const synced: string[] = []
const openPaths = new Map<number, string>()

vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>()
  const openSync = (path: import('node:fs').PathLike, ...rest: unknown[]): number => {
    const fd = (fs.openSync as (...a: unknown[]) => number)(path, ...rest)
    openPaths.set(fd, String(path))
    return fd
  }
  const fsyncSync = (fd: number): void => {
    fs.fsyncSync(fd)
    synced.push(openPaths.get(fd) ?? `fd ${fd}`)
  }
  return { ...fs, default: { ...fs, openSync, fsyncSync }, openSync, fsyncSync }
})

const { loadOrCreateIdentity, IDENTITY_FILE } = await import('../../p2p/identity.ts')
const { createSealKeys, SEAL_KEY_FILE } = await import('../../roles/credentials.ts')
const { writeFileAtomicSync, createFileDurableSync } = await import('../../util/atomic-file.ts')

describe('key files are durable', () => {
  let dir: string
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kp2p-fsync-'))
    synced.length = 0
  })
  afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

  /** The file was fsynced under a temporary name next to it, then its directory. */
  function expectDurable (file: string): void {
    const name = basename(file)
    const fileSync = synced.findIndex((p) => basename(p).startsWith(`${name}.tmp`) || p === file)
    expect(fileSync, `fsync of ${name} in ${JSON.stringify(synced)}`).toBeGreaterThanOrEqual(0)
    expect(synced.indexOf(dir, fileSync), `fsync of the directory after ${name} in ${JSON.stringify(synced)}`).toBeGreaterThan(fileSync)
  }

  it('identity.key', async () => {
    await loadOrCreateIdentity(dir)
    expectDurable(join(dir, IDENTITY_FILE))
    // Loading it again writes nothing.
    synced.length = 0
    await loadOrCreateIdentity(dir)
    expect(synced).toEqual([])
  })

  it('seal-key.json', async () => {
    await createSealKeys(dir)
    expectDurable(join(dir, SEAL_KEY_FILE))
  })

  it('createFileDurableSync never replaces a file and leaves no temporary behind', async () => {
    const file = join(dir, 'k')
    createFileDurableSync(file, 'first')
    expect(() => { createFileDurableSync(file, 'second') }).toThrow(expect.objectContaining({ code: 'EEXIST' }) as Error)
    expect(await readFile(file, 'utf8')).toBe('first')
    writeFileAtomicSync(file, 'third')
    expect(await readFile(file, 'utf8')).toBe('third')
    const { readdirSync } = await import('node:fs')
    expect(readdirSync(dir)).toEqual(['k'])
  })
})
