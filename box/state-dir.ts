// The move of a state dir left at the old default (/var/lib/kairos-p2p, which Kairos
// does not keep across reboots) to the new one (/var/lib/kairos/p2p, which it does).
import { cp, mkdir, readdir, rename, rm, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { errorMessage, KairosError } from '../util/errors.ts'

/** Both the old and the new default state dir hold state: which one is this node? */
export class StateDirConflictError extends KairosError {
  constructor (legacy: string, target: string) {
    super(`both ${legacy} (the old default state dir) and ${target} hold a node's state; keep the one this node should be: move it to ${target} and remove the other (or point p2p.state_dir at it)`)
    this.name = 'StateDirConflictError'
  }
}

/** The old state dir could not be moved; nothing was lost (the old dir is still whole). */
export class StateDirMigrationError extends KairosError {
  constructor (legacy: string, target: string, cause: unknown) {
    super(`cannot move the old state dir ${legacy} to ${target}: ${errorMessage(cause)}; move it by hand (mv ${legacy} ${target}) or set p2p.state_dir: ${legacy}`, { cause })
    this.name = 'StateDirMigrationError'
  }
}

/** What `migrateStateDir` did. */
export type StateDirMigration = 'none' | 'renamed' | 'copied'

async function entries (dir: string): Promise<string[] | undefined> {
  try {
    if (!(await stat(dir)).isDirectory()) return undefined
    return await readdir(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

/**
 * Moves `legacy` to `target` when `legacy` holds files and `target` is missing or
 * empty: a rename, or across filesystems (Kairos bind-mounts /var/lib/kairos) a copy
 * into a temporary dir beside `target`, a rename into place, then removal of `legacy`.
 * StateDirConflictError when both hold files.
 */
export async function migrateStateDir (legacy: string, target: string): Promise<StateDirMigration> {
  const old = await entries(legacy)
  if (old === undefined || old.length === 0) return 'none'
  const now = await entries(target)
  if (now !== undefined && now.length > 0) throw new StateDirConflictError(legacy, target)
  try {
    await mkdir(dirname(target), { recursive: true, mode: 0o755 })
    if (now !== undefined) await rm(target, { recursive: true })
    try {
      await rename(legacy, target)
      return 'renamed'
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err
    }
    const tmp = `${target}.migrating-${process.pid}`
    await rm(tmp, { recursive: true, force: true })
    await cp(legacy, tmp, { recursive: true, preserveTimestamps: true, errorOnExist: true, force: false, verbatimSymlinks: true })
    await rename(tmp, target)
    await rm(legacy, { recursive: true, force: true })
    return 'copied'
  } catch (err) {
    throw new StateDirMigrationError(legacy, target, err)
  }
}
