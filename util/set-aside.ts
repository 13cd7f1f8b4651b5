import { existsSync, renameSync } from 'node:fs'
import { basename } from 'node:path'

/**
 * The name a damaged local file is moved to: `<file>.corrupt-<UTC timestamp>`, e.g.
 * `roles.json.corrupt-20261204T220712Z`, in the same directory.
 */
export function corruptName (file: string, now: number): string {
  const stamp = new Date(now).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')
  return `${file}.corrupt-${stamp}`
}

/**
 * Moves a damaged local file out of the way before it is rebuilt: renamed to
 * `corruptName(file, now)` (a second set-aside in the same second gets `-2`, `-3`…),
 * never deleted, so the operator can still read what was there. Returns the base
 * name it now has. Synchronous, like the writes of these files.
 */
export function setAsideCorrupt (file: string, now: number): string {
  const base = corruptName(file, now)
  let target = base
  for (let i = 2; existsSync(target); i++) target = `${base}-${i}`
  renameSync(file, target)
  return basename(target)
}
