/**
 * Owner collection of the local replica (`LocalStateStore.collect`): forgets the
 * entries of owners no member stands for, keeps their tombstones and revives owners
 * present again. The judgement per owner is pure (`gc.ts`); this applies it to the
 * replica's tables.
 */
import type { StateChange, StateEntry } from '../types.ts'
import { errorMessage } from '../../util/errors.ts'
import type { Logger } from '../../util/log.ts'
import {
  deletionExpired, judgeOwner, tombstoneHolds,
  type CollectPolicy, type ForgetReason, type OwnerNote, type OwnerPresence, type OwnerPresenceView
} from './gc.ts'
import type { OwnerUsage } from './quota.ts'
import type { CollectResult } from './store-options.ts'

/** A note's `presentAt` is written to the state file again once it moved this far, ms (it only needs to be roughly right). */
const PRESENT_PERSIST_MS = 60 * 60_000

/** The parts of the replica a collection reads and changes; the maps are the store's own, changed in place. */
export interface CollectionTables {
  self: string
  policy: CollectPolicy
  maxTombstones: number
  log: Logger
  usage: Map<string, OwnerUsage>
  notes: Map<string, OwnerNote>
  /** Forgotten owner → when, oldest first. */
  tombstones: Map<string, number>
  forgottenCount: Record<ForgetReason, number>
  /** Removes one held entry; the collection emits its change. */
  drop: (owner: string, key: string) => { wire: Uint8Array, entry: StateEntry } | undefined
  emit: (change: StateChange) => void
}

/**
 * Runs one collection over `s` at `now`. Returns what was forgotten and revived, and
 * whether the state file needs writing again (`dirty`).
 */
export function collectOwners (s: CollectionTables, presence: OwnerPresenceView, now: number): { result: CollectResult, dirty: boolean } {
  const result: CollectResult = { forgotten: [], revived: [] }
  const ask = (owner: string): OwnerPresence => {
    try {
      return presence(owner)
    } catch (err) {
      // Never forget on a broken view.
      s.log.error('owner presence check failed', { owner, error: errorMessage(err) })
      return 'present'
    }
  }
  let dirty = false
  for (const owner of [...s.usage.keys()]) {
    if (owner === s.self) continue
    const note = s.notes.get(owner) ?? { firstSeenAt: now }
    const verdict = judgeOwner(note, ask(owner), now, s.policy)
    if (verdict.kind === 'keep') {
      if (verdict.note.presentAt !== undefined && (note.presentAt === undefined || verdict.note.presentAt - note.presentAt >= PRESENT_PERSIST_MS)) dirty = true
      s.notes.set(owner, verdict.note)
      continue
    }
    const usage = s.usage.get(owner) as OwnerUsage
    const keys = [...usage.keys.keys()]
    let bytes = 0
    for (const key of keys) {
      const held = s.drop(owner, key)
      if (held === undefined) continue
      bytes += held.wire.length
      s.emit({ entry: held.entry, previous: held.entry, origin: 'remote', dropped: verdict.reason })
    }
    s.tombstones.delete(owner)
    s.tombstones.set(owner, now)
    s.forgottenCount[verdict.reason]++
    result.forgotten.push({ owner, reason: verdict.reason, entries: keys.length, bytes })
    dirty = true
  }
  const justForgotten = new Set(result.forgotten.map(f => f.owner))
  for (const [owner, at] of [...s.tombstones]) {
    if (justForgotten.has(owner)) continue
    if (!tombstoneHolds(at, now, s.policy)) { s.tombstones.delete(owner); dirty = true; continue }
    if (ask(owner) === 'present') { s.tombstones.delete(owner); result.revived.push(owner); dirty = true }
  }
  for (const owner of s.tombstones.keys()) {
    if (s.tombstones.size <= s.maxTombstones) break
    s.tombstones.delete(owner)
  }
  if (result.forgotten.length > 0) {
    s.log.info('state owners forgotten', { owners: result.forgotten.map(f => ({ owner: f.owner, reason: f.reason, entries: f.entries })) })
  }
  return { result, dirty }
}

/** Drops every entry of `owners` (their change marked `dropped` with `reason`); returns the owners that held any. */
export function dropOwners (s: CollectionTables, owners: Iterable<string>, reason: NonNullable<StateChange['dropped']>): string[] {
  const dropped: string[] = []
  for (const owner of owners) {
    const usage = s.usage.get(owner)
    if (usage === undefined) continue
    for (const key of [...usage.keys.keys()]) {
      const held = s.drop(owner, key)
      if (held !== undefined) s.emit({ entry: held.entry, previous: held.entry, origin: 'remote', dropped: reason })
    }
    dropped.push(owner)
  }
  return dropped
}

/**
 * Drops the deletion markers among `slots` (held entries whose value is `null`) that
 * expired at `now` (gc.ts `deletionExpired`), each change emitted with `dropped:
 * 'deleted'`; `onOwn` is told of this node's own, so it never writes that key again
 * below the version it deleted at. Returns how many were dropped.
 */
export function sweepDeletions (s: CollectionTables, markers: Iterable<{ owner: string, key: string, writtenAt: number, version: number }>, now: number, onOwn: (key: string, version: number) => void): number {
  let n = 0
  for (const m of [...markers]) {
    if (!deletionExpired(m.writtenAt, now, s.policy)) continue
    const held = s.drop(m.owner, m.key)
    if (held === undefined) continue
    if (m.owner === s.self) onOwn(m.key, m.version)
    s.emit({ entry: held.entry, previous: held.entry, origin: 'remote', dropped: 'deleted' })
    n++
  }
  return n
}
