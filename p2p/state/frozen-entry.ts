/** Freezing of held entries: what the store hands out cannot be changed by a reader. */
import type { StateEntry } from '../types.ts'

/** Freezes `e` and its value, deeply, and returns it. */
export function freezeEntry (e: StateEntry): StateEntry {
  deepFreeze(e.value)
  return Object.freeze(e)
}

function deepFreeze (v: unknown): void {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    for (const child of Object.values(v)) deepFreeze(child)
    Object.freeze(v)
  }
}
