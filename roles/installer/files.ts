import { chmod, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { errorMessage } from '../../util/errors.ts'
import { InstallerError } from './errors.ts'

let tmpCounter = 0

/**
 * Replaces `path` with `content` atomically (temp file in the same directory,
 * fsync, rename), creating parent directories (0755). A reader sees the old or
 * the new file, never a torn one, even across a power cut.
 */
export async function writeFileAtomic (path: string, content: string, mode: number): Promise<void> {
  const tmp = `${path}.${process.pid}.${tmpCounter++}.tmp`
  try {
    await mkdir(dirname(path), { recursive: true, mode: 0o755 })
    const handle = await open(tmp, 'w', mode)
    try {
      await handle.writeFile(content, 'utf8')
      await handle.chmod(mode)
      await handle.sync()
    } finally {
      await handle.close()
    }
    await rename(tmp, path)
  } catch (err) {
    await rm(tmp, { force: true })
    throw new InstallerError(`cannot write ${path}: ${errorMessage(err)}`, { command: ['write', path], cause: err })
  }
}

/** Writes `path` only when its content or mode differs; true when it wrote. */
export async function writeIfChanged (path: string, content: string, mode: number): Promise<boolean> {
  const current = await readIfExists(path)
  if (current === content) {
    const actual = (await stat(path)).mode & 0o777
    if (actual === mode) return false
    await chmod(path, mode)
    return true
  }
  await writeFileAtomic(path, content, mode)
  return true
}

/** The file's text, or undefined when it does not exist. */
export async function readIfExists (path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new InstallerError(`cannot read ${path}: ${errorMessage(err)}`, { command: ['read', path], cause: err })
  }
}
