/**
 * The local replica of the cluster state (`StateStore`): signs and encrypts own
 * entries, verifies, decrypts and merges remote ones, persists them and answers
 * anti-entropy. No network inside; the sync layer moves the wire bytes.
 *
 * Own versions. A put takes version max(own held version, highest verified version of
 * that own key seen from any peer) + 1. A node whose disk was wiped starts at 1 again,
 * but as soon as a peer hands back its earlier entry (gossip or anti-entropy) that
 * entry is adopted like any newer remote entry (it is signed by our own key) and the
 * next put goes past it, so a version is never reused once the old one is heard.
 * The adopted value is the one of the previous incarnation: a component that must
 * override it listens for a `change` with `origin: 'remote'` and `owner === self`.
 *
 * Bounds. Every owner is held to an entry count and a byte quota; when the replica is
 * full, room is made max-min fairly (`quota.ts`), so a few identities cannot fill it
 * and a newcomer's first entries fit. Owners that no member stands for are forgotten
 * by `collect` (`gc.ts`), which the node calls with its view of who is present.
 */
import type { PrivateKey } from '@libp2p/interface'
import type { KeyObject } from 'node:crypto'
import type { Clock } from '../../util/clock.ts'
import { errorMessage } from '../../util/errors.ts'
import type { Logger } from '../../util/log.ts'
import { cryptoRandom } from '../../util/random.ts'
import type { JsonValue, StateChange, StateEntry } from '../types.ts'
import { REJECT_REASONS, type ApplyResult, type RejectReason } from './contract.ts'
import { buildDigest, parseDigest, selectMissing, type DigestItem } from './digest.ts'
import {
  StateClosedError, StateEntryTooLargeError, StateFullError, StateKeyError, StateOwnerQuotaError,
  StateValueError, StateVersionError
} from './errors.ts'
import { deletionExpired, restoredNote, tombstoneHolds, type CollectPolicy, type ForgetReason, type OwnerNote, type OwnerPresenceView } from './gc.ts'
import { mergeEntry, slotOf, type WireEntryMeta } from './merge.ts'
import { encodeSnapshot, loadSnapshot } from './persist.ts'
import { StateFileWriter } from './file-writer.ts'
import { planEviction, type Eviction, type OwnerUsage } from './quota.ts'
import { freezeEntry } from './frozen-entry.ts'
import { collectOwners, dropOwners, sweepDeletions, type CollectionTables } from './owner-collection.ts'
import {
  resolveStoreSettings,
  type CollectResult, type LocalStateStore, type StateGcStats, type StateLoadReport, type StateStoreInit
} from './store-options.ts'
import {
  decodeWire, hashWire, jsonValueProblem, keyProblem, MAX_VERSION, NONCE_BYTES, openValueWith, ownerPublicKey,
  verifyWire, writeEntry
} from './wire.ts'

export {
  DEFAULT_FLUSH_DELAY_MS, DEFAULT_MAX_ENTRIES_PER_OWNER, DEFAULT_MAX_ENTRY_BYTES, DEFAULT_MAX_OWNER_BYTES, DEFAULT_MAX_TOTAL_BYTES,
  type CollectResult, type ForgottenOwner, type LocalStateStore, type StateGcStats, type StateLimits, type StateLoadReport, type StateStoreInit
} from './store-options.ts'

interface Held {
  meta: WireEntryMeta
  wire: Uint8Array
  entry: StateEntry
}

type Verdict =
  | { kind: 'accepted', change: StateChange }
  | { kind: 'duplicate' }
  | { kind: 'rejected', reason: RejectReason, owner?: string, key?: string, version?: number }

const PUBLIC_KEY_CACHE = 4096
type TargetListener = Parameters<EventTarget['addEventListener']>[1]

class LocalStore implements LocalStateStore {
  readonly self: string
  private readonly privateKey: PrivateKey
  private readonly stateKey: Uint8Array
  private readonly openKeys: () => readonly Uint8Array[]
  private readonly file: string | undefined
  private readonly maxEntryBytes: number
  private readonly maxEntriesPerOwner: number
  private readonly maxOwnerBytes: number
  private readonly maxTotalBytes: number
  private readonly policy: CollectPolicy
  private readonly maxTombstones: number
  private readonly isAdmitted: ((owner: string) => boolean) | undefined
  private readonly digestBudget: number
  private readonly clock: Clock
  private readonly log: Logger
  private readonly events = new EventTarget()

  private readonly slots = new Map<string, Held>()
  private readonly usage = new Map<string, OwnerUsage>()
  private readonly notes = new Map<string, OwnerNote>()
  /** Forgotten owner → when, oldest first. */
  private readonly tombstones = new Map<string, number>()
  /** Owners removed from the site (`revoke`). */
  private revoked: ReadonlySet<string> = new Set()
  private readonly forgottenCount: Record<ForgetReason, number> = { 'never-admitted': 0, gone: 0 }
  private evictedCount = 0
  private readonly ownFloor = new Map<string, number>()
  /** Held deletion markers (value `null`) by slot, dropped once expired (gc.ts). */
  private readonly deletions = new Map<string, StateEntry>()
  private readonly publicKeys = new Map<string, KeyObject | null>()
  private readonly rejected: Record<RejectReason, number>
  private duplicateCount = 0
  private totalBytes = 0
  private digestCache: Uint8Array | undefined
  private report: StateLoadReport

  private putChain: Promise<unknown> = Promise.resolve()
  private closing: Promise<void> | undefined
  private readonly fileWriter: StateFileWriter

  constructor (init: StateStoreInit) {
    const s = resolveStoreSettings(init)
    this.self = s.self
    this.privateKey = s.privateKey
    this.stateKey = s.stateKey
    this.openKeys = s.openKeys
    this.file = s.file
    this.maxEntryBytes = s.maxEntryBytes
    this.maxEntriesPerOwner = s.maxEntriesPerOwner
    this.maxOwnerBytes = s.maxOwnerBytes
    this.maxTotalBytes = s.maxTotalBytes
    this.policy = s.policy
    this.maxTombstones = s.maxTombstones
    this.isAdmitted = s.isAdmitted
    this.digestBudget = s.digestBudget
    this.clock = s.clock
    this.log = s.log
    this.rejected = Object.fromEntries(REJECT_REASONS.map(r => [r, 0])) as Record<RejectReason, number>
    this.report = { loaded: 0, skipped: {}, corrupt: false, ...(this.file === undefined ? {} : { file: this.file }) }
    this.fileWriter = new StateFileWriter({
      file: s.file,
      delayMs: s.flushDelayMs,
      writeFile: s.writeFile,
      snapshot: () => encodeSnapshot([...this.slots.values()].map(h => h.wire), {
        notes: [...this.notes].map(([owner, n]) => ({ owner, presentAt: n.presentAt })),
        tombstones: [...this.tombstones].map(([owner, forgottenAt]) => ({ owner, forgottenAt }))
      }),
      clock: s.clock,
      log: s.log
    })
  }

  /** Restores the state file, if any. Called once by `createStateStore`. */
  async load (): Promise<void> {
    if (this.file === undefined) return
    const snap = await loadSnapshot(this.file, this.clock.now())
    if (snap.corrupt) {
      this.log.warn('state file is corrupt; starting empty, peers will refill it', { file: this.file, movedTo: snap.movedTo, problem: snap.problem })
      this.report = { ...this.report, corrupt: true, ...(snap.movedTo === undefined ? {} : { movedTo: snap.movedTo }), ...(snap.problem === undefined ? {} : { problem: snap.problem }) }
    }
    const now = this.clock.now()
    for (const t of snap.tombstones) {
      if (t.owner !== this.self && tombstoneHolds(t.forgottenAt, now, this.policy)) this.tombstones.set(t.owner, t.forgottenAt)
    }
    const persisted = new Map(snap.notes.map(n => [n.owner, n.presentAt]))
    for (const wire of snap.wires) {
      const v = await this.ingest(wire, 'disk')
      if (v.kind === 'accepted') this.report.loaded++
      else if (v.kind === 'rejected') this.report.skipped[v.reason] = (this.report.skipped[v.reason] ?? 0) + 1
    }
    for (const owner of this.usage.keys()) this.notes.set(owner, restoredNote(persisted.get(owner), now, this.policy))
    const skipped = Object.values(this.report.skipped).reduce((a, b) => a + b, 0)
    if (skipped > 0) {
      this.log.warn('state file entries skipped', { file: this.file, skipped: this.report.skipped })
      this.fileWriter.changed() // rewrite the file without them at the next flush
    }
    this.fileWriter.settled()
    this.log.debug('state loaded', { file: this.file, entries: this.report.loaded })
  }

  loadReport (): StateLoadReport { return { ...this.report, skipped: { ...this.report.skipped } } }

  async put (key: string, value: JsonValue): Promise<{ entry: StateEntry, wire: Uint8Array }> {
    if (this.closing !== undefined) throw new StateClosedError(`cannot put state key "${key}": the state store is closed`)
    const run = this.putChain.then(async () => await this.writeOwn(key, value))
    this.putChain = run.catch(() => {})
    const result = await run
    this.fileWriter.schedule()
    return result
  }

  /** Resolves once the state file holds every change made so far; rejects with StatePersistError when the write fails. */
  async flush (): Promise<void> {
    await this.putChain
    await this.fileWriter.flush()
  }

  private async writeOwn (key: string, value: JsonValue): Promise<{ entry: StateEntry, wire: Uint8Array }> {
    const kp = keyProblem(key)
    if (kp !== undefined) throw new StateKeyError(`state key ${JSON.stringify(key)}: ${kp}`)
    const vp = jsonValueProblem(value)
    if (vp !== undefined) throw new StateValueError(`state key "${key}": ${vp}`)
    const slot = slotOf(this.self, key)
    for (;;) {
      const held = this.slots.get(slot)
      const mine = this.usage.get(this.self)
      if (held === undefined && (mine?.keys.size ?? 0) >= this.maxEntriesPerOwner) {
        throw new StateOwnerQuotaError(`cannot put state key "${key}": this node already owns ${this.maxEntriesPerOwner} entries (limits.maxEntriesPerOwner)`)
      }
      const version = Math.max(held?.meta.version ?? 0, this.ownFloor.get(key) ?? 0) + 1
      if (version > MAX_VERSION) throw new StateVersionError(`cannot put state key "${key}": version ${version} would pass the largest entry version ${MAX_VERSION}`)
      const writtenAt = Math.max(0, Math.floor(this.clock.now()))
      const wire = await writeEntry({
        privateKey: this.privateKey, owner: this.self, key, version, writtenAt, value, stateKey: this.stateKey, nonce: cryptoRandom.bytes(NONCE_BYTES)
      })
      // An apply may have adopted a newer incarnation of this key while we signed.
      if (this.slots.get(slot) !== held) continue
      if (wire.length > this.maxEntryBytes) {
        throw new StateEntryTooLargeError(`state key "${key}": entry is ${wire.length} bytes, expected at most ${this.maxEntryBytes} (limits.maxEntryBytes)`)
      }
      const ownAfter = (mine?.bytes ?? 0) - (held?.wire.length ?? 0) + wire.length
      if (ownAfter > this.maxOwnerBytes) {
        throw new StateOwnerQuotaError(`cannot put state key "${key}": this node would own ${ownAfter} bytes, expected at most ${this.maxOwnerBytes} (limits.maxOwnerBytes)`)
      }
      const total = this.totalBytes - (held?.wire.length ?? 0) + wire.length
      const evictions = planEviction(this.usage, total - this.maxTotalBytes, this.self, ownAfter, new Set([this.self]))
      if (evictions === undefined) {
        throw new StateFullError(`cannot put state key "${key}": the replica would hold ${total} bytes, expected at most ${this.maxTotalBytes} (limits.maxTotalBytes), and no owner holds more than this node would`)
      }
      this.evict(evictions)
      const entry = freezeEntry({ owner: this.self, key, version, writtenAt, value: structuredClone(value) })
      const change = this.commit(held, { owner: this.self, key, version, hash: hashWire(wire) }, wire, entry, 'local')
      this.emit(change)
      return { entry, wire }
    }
  }

  async apply (wires: Uint8Array[], from: string): Promise<ApplyResult> {
    const result: ApplyResult = { accepted: [], rejected: {}, duplicates: 0 }
    if (this.closing !== undefined || !Array.isArray(wires)) return result
    for (const wire of wires) {
      let v: Verdict
      try {
        v = await this.ingest(wire, 'remote')
      } catch (err) {
        // ingest is written not to throw; this keeps the promise of the contract if it ever does.
        this.log.error('state entry processing failed', { from, error: errorMessage(err) })
        v = { kind: 'rejected', reason: 'malformed' }
      }
      if (v.kind === 'accepted') {
        result.accepted.push(v.change)
        this.emit(v.change)
      } else if (v.kind === 'duplicate') {
        result.duplicates++
        this.duplicateCount++
      } else {
        result.rejected[v.reason] = (result.rejected[v.reason] ?? 0) + 1
        this.rejected[v.reason]++
        const fields = { owner: v.owner, key: v.key, version: v.version, reason: v.reason, from }
        if (v.reason === 'stale') this.log.debug('state entry rejected', fields)
        else this.log.warn('state entry rejected', fields)
      }
    }
    if (result.accepted.length > 0) this.fileWriter.schedule()
    return result
  }

  /** Verifies, decrypts and merges one wire entry. Never throws on bad input. */
  private async ingest (wire: unknown, source: 'remote' | 'disk'): Promise<Verdict> {
    if (!(wire instanceof Uint8Array)) return { kind: 'rejected', reason: 'malformed' }
    if (wire.length > this.maxEntryBytes) return { kind: 'rejected', reason: 'oversized' }
    const d = decodeWire(wire)
    if (d === undefined) return { kind: 'rejected', reason: 'malformed' }
    const who = { owner: d.owner, key: d.key, version: d.version }
    if (d.owner !== this.self && this.revoked.has(d.owner)) return { kind: 'rejected', reason: 'revoked', ...who }
    if (d.owner !== this.self && this.tombstones.has(d.owner)) return { kind: 'rejected', reason: 'forgotten', ...who }
    const publicKey = this.publicKeyOf(d.owner)
    if (publicKey === undefined) return { kind: 'rejected', reason: 'malformed', ...who }
    if (source === 'remote' && d.owner !== this.self && this.isAdmitted !== undefined && !this.isAdmitted(d.owner)) {
      return { kind: 'rejected', reason: 'not-admitted', ...who }
    }
    const meta: WireEntryMeta = { owner: d.owner, key: d.key, version: d.version, hash: hashWire(wire) }
    const slot = slotOf(d.owner, d.key)
    const held = this.slots.get(slot)
    const decision = mergeEntry(held?.meta, meta)
    // Identical bytes to a held (already verified) entry: nothing to check. One that
    // loses to the held entry changes nothing whoever wrote it, so its signature is not
    // checked either (it is refused as stale).
    if (decision === 'same') return { kind: 'duplicate' }
    if (decision === 'keep') return { kind: 'rejected', reason: 'stale', ...who }
    if (d.signature.length === 0) return { kind: 'rejected', reason: 'unsigned', ...who }
    if (!verifyWire(d, publicKey)) return { kind: 'rejected', reason: 'forged', ...who }
    if (d.owner === this.self && d.version > (this.ownFloor.get(d.key) ?? 0)) this.ownFloor.set(d.key, d.version)
    const opened = openValueWith([this.stateKey, ...this.openKeys()], d)
    if ('problem' in opened) return { kind: 'rejected', reason: opened.problem, ...who }
    // An expired deletion of a key not held here has nothing left to delete.
    if (source === 'remote' && held === undefined && opened.value === null && deletionExpired(d.writtenAt, this.clock.now(), this.policy)) return { kind: 'rejected', reason: 'stale', ...who }
    const usage = this.usage.get(d.owner)
    if (held === undefined && (usage?.keys.size ?? 0) >= this.maxEntriesPerOwner) {
      return { kind: 'rejected', reason: 'owner-quota', ...who }
    }
    const ownerAfter = (usage?.bytes ?? 0) - (held?.wire.length ?? 0) + wire.length
    if (ownerAfter > this.maxOwnerBytes) return { kind: 'rejected', reason: 'owner-quota', ...who }
    const over = this.totalBytes - (held?.wire.length ?? 0) + wire.length - this.maxTotalBytes
    const evictions = planEviction(this.usage, over, d.owner, ownerAfter, new Set([this.self]))
    if (evictions === undefined) return { kind: 'rejected', reason: 'store-full', ...who }
    this.evict(evictions)
    const entry = freezeEntry({ owner: d.owner, key: d.key, version: d.version, writtenAt: d.writtenAt, value: opened.value })
    return { kind: 'accepted', change: this.commit(held, meta, wire.slice(), entry, 'remote') }
  }

  private commit (held: Held | undefined, meta: WireEntryMeta, wire: Uint8Array, entry: StateEntry, origin: 'local' | 'remote'): StateChange {
    const slot = slotOf(meta.owner, meta.key)
    this.slots.set(slot, { meta, wire, entry })
    if (entry.value === null) this.deletions.set(slot, entry)
    else this.deletions.delete(slot)
    let usage = this.usage.get(meta.owner)
    if (usage === undefined) {
      usage = { bytes: 0, keys: new Map() }
      this.usage.set(meta.owner, usage)
      if (!this.notes.has(meta.owner)) this.notes.set(meta.owner, { firstSeenAt: this.clock.now() })
    }
    usage.bytes += wire.length - (held?.wire.length ?? 0)
    usage.keys.set(meta.key, wire.length)
    this.totalBytes += wire.length - (held?.wire.length ?? 0)
    this.digestCache = undefined
    this.fileWriter.changed()
    return held === undefined ? { entry, origin } : { entry, previous: held.entry, origin }
  }

  /** Removes one held entry (eviction, collection); the caller emits its change. */
  private drop (owner: string, key: string): Held | undefined {
    const slot = slotOf(owner, key)
    const held = this.slots.get(slot)
    if (held === undefined) return undefined
    this.slots.delete(slot)
    this.deletions.delete(slot)
    const usage = this.usage.get(owner)
    if (usage !== undefined) {
      usage.bytes -= held.wire.length
      usage.keys.delete(key)
      if (usage.keys.size === 0) {
        this.usage.delete(owner)
        this.notes.delete(owner)
      }
    }
    this.totalBytes -= held.wire.length
    this.digestCache = undefined
    this.fileWriter.changed()
    return held
  }

  private evict (evictions: Eviction[]): void {
    if (evictions.length === 0) return
    for (const e of evictions) {
      const held = this.drop(e.owner, e.key)
      if (held !== undefined) this.emit({ entry: held.entry, previous: held.entry, origin: 'remote', dropped: 'evicted' })
    }
    this.evictedCount += evictions.length
    const owners = [...new Set(evictions.map(e => e.owner))]
    this.log.warn('state replica full: evicted entries of the largest owners', { owners, entries: evictions.length, bytes: evictions.reduce((a, e) => a + e.bytes, 0) })
    this.fileWriter.schedule()
  }

  collect (presence: OwnerPresenceView, now = this.clock.now()): CollectResult {
    if (this.closing !== undefined) return { forgotten: [], revived: [] }
    const { result, dirty } = collectOwners(this.tables(), presence, now)
    const swept = sweepDeletions(this.tables(), this.deletions.values(), now, (key, version) => { this.ownFloor.set(key, Math.max(version, this.ownFloor.get(key) ?? 0)) })
    if (dirty || swept > 0) {
      this.fileWriter.changed()
      this.fileWriter.schedule()
    }
    return result
  }

  /** The tables and hooks a collection or revocation works on (owner-collection.ts). */
  private tables (): CollectionTables {
    const { self, policy, maxTombstones, log, usage, notes, tombstones, forgottenCount } = this
    return { self, policy, maxTombstones, log, usage, notes, tombstones, forgottenCount, drop: (owner, key) => this.drop(owner, key), emit: change => { this.emit(change) } }
  }

  revoke (owners: ReadonlySet<string>): string[] {
    this.revoked = new Set([...owners].filter((o) => o !== this.self))
    const dropped = dropOwners(this.tables(), this.revoked, 'revoked')
    if (dropped.length > 0) {
      this.log.info('state entries of removed nodes dropped', { owners: dropped })
      this.fileWriter.schedule()
    }
    return dropped
  }

  isForgotten (owner: string): boolean {
    return this.tombstones.has(owner)
  }

  gcStats (): StateGcStats { return { forgotten: { ...this.forgottenCount }, evicted: this.evictedCount, tombstones: this.tombstones.size, owners: this.usage.size } }

  private emit (change: StateChange): void {
    this.events.dispatchEvent(new CustomEvent('change', { detail: change }))
  }

  private publicKeyOf (owner: string): KeyObject | undefined {
    let k = this.publicKeys.get(owner)
    if (k === undefined) {
      if (this.publicKeys.size >= PUBLIC_KEY_CACHE) this.publicKeys.clear()
      k = ownerPublicKey(owner) ?? null
      this.publicKeys.set(owner, k)
    }
    return k ?? undefined
  }

  private items (): DigestItem[] {
    return [...this.slots.values()].map(h => h.meta)
  }

  digest (): Uint8Array {
    this.digestCache ??= buildDigest(this.items(), this.digestBudget)
    return this.digestCache.slice()
  }

  missingFor (remoteDigest: Uint8Array): Uint8Array[] {
    try {
      if (!(remoteDigest instanceof Uint8Array)) return []
      const remote = parseDigest(remoteDigest)
      if (remote === undefined) return []
      return selectMissing(this.items(), remote).map(m => (this.slots.get(slotOf(m.owner, m.key)) as Held).wire.slice())
    } catch (err) {
      this.log.error('digest comparison failed', { error: errorMessage(err) })
      return []
    }
  }

  wireOf (owner: string, key: string): Uint8Array | undefined {
    return this.slots.get(slotOf(owner, key))?.wire.slice()
  }

  get (owner: string, key: string): StateEntry | undefined {
    return this.slots.get(slotOf(owner, key))?.entry
  }

  list (prefix = ''): StateEntry[] {
    const out: StateEntry[] = []
    for (const h of this.slots.values()) if (h.entry.key.startsWith(prefix)) out.push(h.entry)
    return out.sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0)
  }

  rejections (): Record<RejectReason, number> { return { ...this.rejected } }

  duplicates (): number { return this.duplicateCount }

  size (): { entries: number, bytes: number } {
    return { entries: this.slots.size, bytes: this.totalBytes }
  }

  addEventListener (type: 'change', listener: (evt: CustomEvent<StateChange>) => void): void {
    this.events.addEventListener(type, listener as unknown as TargetListener)
  }

  removeEventListener (type: 'change', listener: (evt: CustomEvent<StateChange>) => void): void {
    this.events.removeEventListener(type, listener as unknown as TargetListener)
  }

  async close (): Promise<void> {
    this.closing ??= (async () => {
      this.fileWriter.stop()
      await this.putChain
      await this.fileWriter.flush()
    })()
    await this.closing
  }
}

/**
 * Creates the local replica and restores its state file when `dir` is given. A
 * corrupt state file never fails the start: it is set aside and reported by
 * `loadReport()`, and the store starts empty. Throws `StateStoreInitError` for
 * unusable options.
 */
export async function createStateStore (init: StateStoreInit): Promise<LocalStateStore> {
  const store = new LocalStore(init)
  await store.load()
  return store
}
