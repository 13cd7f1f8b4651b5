import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { execa } from 'execa'
import { join } from 'node:path'
import { migrateStateDir, StateDirConflictError } from '../../box/state-dir.ts'
import { DEFAULT_STATE_DIR, LEGACY_STATE_DIR } from '../../config/index.ts'

let dir: string
let legacy: string
let target: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'state-dir-'))
  legacy = join(dir, 'var/lib/kairos-p2p')
  target = join(dir, 'var/lib/kairos/p2p')
})
afterEach(async () => { await rm(dir, { recursive: true, force: true }) })

async function seed (at: string): Promise<void> {
  await mkdir(join(at, 'vpn'), { recursive: true, mode: 0o700 })
  await writeFile(join(at, 'identity.key'), 'key', { mode: 0o600 })
  await writeFile(join(at, 'vpn', 'wg.key'), 'wg', { mode: 0o600 })
}

describe('the state dir default', () => {
  it('is under /var/lib/kairos, which Kairos keeps across reboots', () => {
    expect(DEFAULT_STATE_DIR).toBe('/var/lib/kairos/p2p')
    expect(LEGACY_STATE_DIR).toBe('/var/lib/kairos-p2p')
  })
})

describe('migrateStateDir', () => {
  it('does nothing without an old state dir, or with an empty one', async () => {
    expect(await migrateStateDir(legacy, target)).toBe('none')
    await mkdir(legacy, { recursive: true })
    expect(await migrateStateDir(legacy, target)).toBe('none')
    await expect(stat(target)).rejects.toThrow(/ENOENT/)
  })

  it('moves the old state dir to the new place, files and modes intact', async () => {
    await seed(legacy)
    expect(await migrateStateDir(legacy, target)).toBe('renamed')
    expect(await readFile(join(target, 'identity.key'), 'utf8')).toBe('key')
    expect((await stat(join(target, 'vpn', 'wg.key'))).mode & 0o777).toBe(0o600)
    await expect(stat(legacy)).rejects.toThrow(/ENOENT/)
    // The second start finds nothing left to move.
    expect(await migrateStateDir(legacy, target)).toBe('none')
  })

  it('moves into an empty new dir (one the agent created before)', async () => {
    await seed(legacy)
    await mkdir(target, { recursive: true })
    expect(await migrateStateDir(legacy, target)).toBe('renamed')
    expect((await readdir(target)).sort()).toEqual(['identity.key', 'vpn'])
  })

  // Kairos bind-mounts /var/lib/kairos from its persistent partition: a rename fails with EXDEV.
  it.skipIf(process.getuid?.() !== 0)('copies across filesystems, then removes the old dir (root: mounts a tmpfs)', async () => {
    await seed(legacy)
    const mnt = join(dir, 'var/lib/kairos')
    await mkdir(mnt, { recursive: true })
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'kairos-p2p-test', mnt])
    try {
      expect(await migrateStateDir(legacy, target)).toBe('copied')
      expect(await readFile(join(target, 'vpn', 'wg.key'), 'utf8')).toBe('wg')
      expect((await stat(join(target, 'vpn'))).mode & 0o777).toBe(0o700)
      expect((await stat(join(target, 'identity.key'))).mode & 0o777).toBe(0o600)
      await expect(stat(legacy)).rejects.toThrow(/ENOENT/)
      expect(await readdir(mnt)).toEqual(['p2p'])
    } finally {
      await execa('umount', [mnt])
    }
  })

  it('refuses to choose when both dirs hold state, naming both', async () => {
    await seed(legacy)
    await seed(target)
    const err = await migrateStateDir(legacy, target).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(StateDirConflictError)
    expect((err as Error).name).toBe('StateDirConflictError')
    expect((err as Error).message).toContain(legacy)
    expect((err as Error).message).toContain(target)
    expect(await readFile(join(legacy, 'identity.key'), 'utf8')).toBe('key')
  })
})
