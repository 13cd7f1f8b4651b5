import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'

let tmpSeq = 0

/**
 * Replaces `path` with `data` so that a crash or a power cut leaves either the old
 * or the new content: a temporary file in the same directory (created with `mode`),
 * fsync, rename over `path`, fsync of the directory. Creates the directory (0700)
 * when it is missing.
 *
 * Synchronous on purpose, for the small files a node writes a few times in its life
 * (its promises and role, its cluster secrets, its overlay address claim and keys).
 * The asynchronous version is eight round trips through the thread pool, and each
 * one waits for the event loop: on a box starved by a booting site (30 agents on 2
 * cores) one such write took 4–6 s and the election waited for each of them. The
 * synchronous write blocks the loop for one small-file fsync, a few milliseconds.
 */
export function writeFileAtomicSync (path: string, data: string | Uint8Array, mode = 0o600): void {
  const dir = dirname(path)
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const tmp = writeTempSync(path, data, mode)
  try {
    renameSync(tmp, path)
  } catch (err) {
    rmSync(tmp, { force: true })
    throw err
  }
  fsyncDirSync(dir)
}

/**
 * Creates `path` with `data` only if it does not exist yet, durably: a temporary file
 * in the same directory (created with `mode`), fsync, hard link to `path` (which never
 * replaces a file), fsync of the directory. For a key made once in a node's life: a
 * power cut leaves no file or the whole key, never an empty or torn one, and two racing
 * starts agree on whichever key landed first. Throws the `EEXIST` error of the link
 * when `path` exists; the caller reads that file instead.
 */
export function createFileDurableSync (path: string, data: string | Uint8Array, mode = 0o600): void {
  const dir = dirname(path)
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const tmp = writeTempSync(path, data, mode)
  try {
    linkSync(tmp, path)
  } finally {
    rmSync(tmp, { force: true })
  }
  fsyncDirSync(dir)
}

/** Writes `data` to a new temporary file next to `path` and fsyncs it; returns its name. */
function writeTempSync (path: string, data: string | Uint8Array, mode: number): string {
  const tmp = `${path}.tmp-${process.pid}-${tmpSeq++}`
  try {
    const fd = openSync(tmp, 'w', mode)
    try {
      const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data
      for (let off = 0; off < bytes.length;) off += writeSync(fd, bytes, off, bytes.length - off)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
  } catch (err) {
    rmSync(tmp, { force: true })
    throw err
  }
  return tmp
}

/** Makes the directory's entries (a rename or a link just done) durable. */
function fsyncDirSync (dir: string): void {
  const dfd = openSync(dir, 'r')
  try {
    fsyncSync(dfd)
  } finally {
    closeSync(dfd)
  }
}
