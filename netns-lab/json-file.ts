/** Small JSON files of the lab (status snapshots, stand-in records): whole writes and tolerant reads. */
import { readFile, rename, writeFile } from 'node:fs/promises'

/** Writes `value` as JSON through a temporary file and a rename, so readers never see half a file. */
export async function writeJson (path: string, value: unknown, mode = 0o644): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, JSON.stringify(value, null, 2) + '\n', { mode })
  await rename(tmp, path)
}

/** Reads a JSON file, or undefined when it is missing or unreadable. */
export async function readJson<T> (path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T
  } catch {
    return undefined
  }
}
