import { existsSync, renameSync } from 'node:fs'
import { basename } from 'node:path'

/** Why a local file is moved out of the way: damaged, or left behind by `cluster reset`. */
export type SetAsideReason = 'corrupt' | 'reset'

/**
 * The name a local file is moved to: `<file>.<reason>-<UTC timestamp>`, e.g.
 * `roles.json.corrupt-20261204T220712Z`, in the same directory.
 */
export function setAsideName (file: string, now: number, reason: SetAsideReason): string {
  const stamp = new Date(now).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')
  return `${file}.${reason}-${stamp}`
}

/** `setAsideName(file, now, 'corrupt')`. */
export function corruptName (file: string, now: number): string {
  return setAsideName(file, now, 'corrupt')
}

/**
 * Moves a local file out of the way: renamed to `setAsideName(file, now, reason)` (a
 * second set-aside in the same second gets `-2`, `-3`…), never deleted, so the operator
 * can still read what was there. Returns the base name it now has. Synchronous, like
 * the writes of these files.
 */
export function setAside (file: string, now: number, reason: SetAsideReason): string {
  const base = setAsideName(file, now, reason)
  let target = base
  for (let i = 2; existsSync(target); i++) target = `${base}-${i}`
  renameSync(file, target)
  return basename(target)
}

/** Moves a damaged local file out of the way before it is rebuilt (`setAside` as `corrupt`). */
export function setAsideCorrupt (file: string, now: number): string {
  return setAside(file, now, 'corrupt')
}
