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
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { KeyObject } from 'node:crypto'
import { join } from 'node:path'
import { systemClock, type Clock } from '../../util/clock.ts'
import { errorMessage } from '../../util/errors.ts'
import { silentLogger, type Logger } from '../../util/log.ts'
import { cryptoRandom } from '../../util/random.ts'
import type { JsonValue, StateChange, StateEntry } from '../types.ts'
import { REJECT_REASONS, type ApplyResult, type RejectReason, type StateStore } from './contract.ts'
import { buildDigest, DEFAULT_DIGEST_BUDGET, parseDigest, selectMissing, type DigestItem } from './digest.ts'
import {
  StateClosedError, StateEntryTooLargeError, StateFullError, StateKeyError, StateOwnerQuotaError,
  StatePersistError, StateStoreInitError, StateValueError, StateVersionError
} from './errors.ts'
import {
  DEFAULT_ADMIT_GRACE_MS, DEFAULT_FORGET_AFTER_MS, DEFAULT_MAX_TOMBSTONES, judgeOwner, restoredNote, tombstoneHolds,
  type CollectPolicy, type ForgetReason, type OwnerNote, type OwnerPresence, type OwnerPresenceView
} from './gc.ts'
import { mergeEntry, slotOf, type WireEntryMeta } from './merge.ts'
import { encodeSnapshot, loadSnapshot, STATE_FILE, writeFileAtomic } from './persist.ts'
import { planEviction, type Eviction, type OwnerUsage } from './quota.ts'
import {
  decodeWire, hashWire, jsonValueProblem, keyProblem, MAX_VERSION, NONCE_BYTES, openValue, ownerPublicKey,
  STATE_KEY_BYTES, verifyWire, writeEntry
} from './wire.ts'

/** Largest wire entry accepted or written, in bytes. @default 65536 */
export const DEFAULT_MAX_ENTRY_BYTES = 64 * 1024
/** Most entries one owner may hold. @default 256 */
export const DEFAULT_MAX_ENTRIES_PER_OWNER = 256
/**
 * Most wire bytes one owner may hold. Honest owners hold a few KiB (an advert, votes,
 * a role); the init server also one sealed credential per node, about 100 KiB at 250
 * nodes. 64 such quotas fill the replica, so five identities cannot.
 * @default 1048576 (1 MiB)
 */
export const DEFAULT_MAX_OWNER_BYTES = 1024 * 1024
/** Most wire bytes the whole replica may hold. @default 67108864 (64 MiB) */
export const DEFAULT_MAX_TOTAL_BYTES = 64 * 1024 * 1024
/** Delay before remote changes are written to disk (own puts are written at once). @default 200 */
export const DEFAULT_FLUSH_DELAY_MS = 200

/** Size bounds of the replica. */
export interface StateLimits {
  /** Largest wire entry, bytes. @default DEFAULT_MAX_ENTRY_BYTES (64 KiB) */
  maxEntryBytes?: number
  /** Most entries per owner. @default DEFAULT_MAX_ENTRIES_PER_OWNER (256) */
  maxEntriesPerOwner?: number
  /** Most wire bytes per owner. @default DEFAULT_MAX_OWNER_BYTES (1 MiB) */
  maxOwnerBytes?: number
  /** Most wire bytes held in total. @default DEFAULT_MAX_TOTAL_BYTES (64 MiB) */
  maxTotalBytes?: number
}

/** Options of `createStateStore`. */
export interface StateStoreInit {
  /** This node's libp2p Ed25519 private key: signs own entries. */
  privateKey: PrivateKey
  /** This node's peer id (must match `privateKey`). */
  self: string
  /** The 32-byte network state key derived from the token. */
  stateKey: Uint8Array
  /** Directory of the state file; omitted = memory only. @default undefined */
  dir?: string
  /** Size bounds. @default see StateLimits */
  limits?: StateLimits
  /**
   * Whether a remote owner is an admitted peer; entries of other owners are refused as
   * `not-admitted`. Own entries and the state file are never checked.
   * @default every owner is admitted
   */
  isAdmitted?: (owner: string) => boolean
  /** How long an owner never present may keep entries, ms (see `collect`). @default DEFAULT_ADMIT_GRACE_MS (10 minutes) */
  admitGraceMs?: number
  /** How long after it was last present an owner's entries are kept, ms (`p2p.forget_after`). @default DEFAULT_FORGET_AFTER_MS (7 days) */
  forgetAfterMs?: number
  /** Most tombstones of forgotten owners held. @default DEFAULT_MAX_TOMBSTONES (16384) */
  maxTombstones?: number
  /** Delay before changes (own and remote) reach the state file, ms. @default DEFAULT_FLUSH_DELAY_MS (200) */
  flushDelayMs?: number
  /** Writes the state file crash-safely. @default writeFileAtomic (temporary file, fsync, rename, fsync of the directory) */
  writeFile?: (path: string, bytes: Uint8Array) => Promise<void>
  /** Soft byte budget of `digest()`. @default DEFAULT_DIGEST_BUDGET (64 KiB) */
  digestBudget?: number
  /** @default systemClock */
  clock?: Clock
  /** @default silentLogger */
  logger?: Logger
}

/** What the store found in its state file at start. */
export interface StateLoadReport {
  /** Path of the state file; undefined for a memory-only store. */
  file?: string
  /** Entries restored. */
  loaded: number
  /** Entries in the file that did not verify now (e.g. the token changed), by reason. */
  skipped: Partial<Record<RejectReason, number>>
  /** True when the file existed but was unreadable, truncated or failed its checksum; the store started empty. */
  corrupt: boolean
  /** Where the corrupt file was kept for the operator. */
  movedTo?: string
  /** Why the file was judged corrupt. */
  problem?: string
}

/** One owner dropped by `collect`. */
export interface ForgottenOwner {
  owner: string
  reason: ForgetReason
  /** Entries and wire bytes dropped. */
  entries: number
  bytes: number
}

/** What one `collect` did. */
export interface CollectResult {
  /** Owners whose entries were dropped (and are refused until they are present again). */
  forgotten: ForgottenOwner[]
  /** Tombstoned owners present again: their entries are accepted again. */
  revived: string[]
}

/** Garbage-collection and quota figures since start. */
export interface StateGcStats {
  /** Owners forgotten, by reason. */
  forgotten: Record<ForgetReason, number>
  /** Entries evicted to make room in a full replica. */
  evicted: number
  /** Tombstones held now. */
  tombstones: number
  /** Owners with entries now. */
  owners: number
}

/** The store as this module builds it: the `StateStore` contract plus load, duplicate and collection figures. */
export interface LocalStateStore extends StateStore {
  /** What was found in the state file at start. */
  loadReport(): StateLoadReport
  /** Entries received again that were identical to what was held, since start. */
  duplicates(): number
  /**
   * Garbage collection (`gc.ts`): drops the entries of owners never present within
   * the admit grace and of owners last present more than `forgetAfterMs` ago, leaving
   * a tombstone so that peers cannot hand them back; clears the tombstones of owners
   * present again. `presence` answers from the node's admission set and member view.
   * Own entries are never dropped. The node calls it on a ticker (about once a minute)
   * and on membership changes; the state file follows within the flush delay.
   */
  collect(presence: OwnerPresenceView, now?: number): CollectResult
  /** True while `owner` is forgotten (its entries are refused as `forgotten`). */
  isForgotten(owner: string): boolean
  /** Collection and quota figures. */
  gcStats(): StateGcStats
}

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
/** A note's `presentAt` is written to the state file again once it moved this far, ms (it only needs to be roughly right). */
const PRESENT_PERSIST_MS = 60 * 60_000
type TargetListener = Parameters<EventTarget['addEventListener']>[1]

function positiveInt (name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback
  if (!Number.isSafeInteger(v) || v <= 0) throw new StateStoreInitError(`state store option ${name}: expected a positive integer, got ${String(value)}`)
  return v
}

class LocalStore implements LocalStateStore {
  readonly self: string
  private readonly privateKey: PrivateKey
  private readonly stateKey: Uint8Array
  private readonly file: string | undefined
  private readonly maxEntryBytes: number
  private readonly maxEntriesPerOwner: number
  private readonly maxOwnerBytes: number
  private readonly maxTotalBytes: number
  private readonly policy: CollectPolicy
  private readonly maxTombstones: number
  private readonly isAdmitted: ((owner: string) => boolean) | undefined
  private readonly flushDelayMs: number
  private readonly writeFile: (path: string, bytes: Uint8Array) => Promise<void>
  private readonly digestBudget: number
  private readonly clock: Clock
  private readonly log: Logger
  private readonly events = new EventTarget()

  private readonly slots = new Map<string, Held>()
  private readonly usage = new Map<string, OwnerUsage>()
  private readonly notes = new Map<string, OwnerNote>()
  /** Forgotten owner → when, oldest first. */
  private readonly tombstones = new Map<string, number>()
  private readonly forgottenCount: Record<ForgetReason, number> = { 'never-admitted': 0, gone: 0 }
  private evictedCount = 0
  private readonly ownFloor = new Map<string, number>()
  private readonly publicKeys = new Map<string, KeyObject | null>()
  private readonly rejected: Record<RejectReason, number>
  private duplicateCount = 0
  private totalBytes = 0
  private digestCache: Uint8Array | undefined
  private report: StateLoadReport

  private putChain: Promise<unknown> = Promise.resolve()
  private generation = 0
  private durable = 0
  private writing: Promise<void> | undefined
  private flushTimer: AbortController | undefined
  private closing: Promise<void> | undefined

  constructor (init: StateStoreInit) {
    if (!(init.stateKey instanceof Uint8Array) || init.stateKey.length !== STATE_KEY_BYTES) {
      throw new StateStoreInitError(`state store option stateKey: expected ${STATE_KEY_BYTES} bytes, got ${init.stateKey instanceof Uint8Array ? init.stateKey.length : typeof init.stateKey}`)
    }
    if (init.privateKey?.type !== 'Ed25519') {
      throw new StateStoreInitError(`state store option privateKey: expected an Ed25519 key, got ${String(init.privateKey?.type)}`)
    }
    const own = peerIdFromPrivateKey(init.privateKey).toString()
    if (own !== init.self) throw new StateStoreInitError(`state store option self: expected the peer id of privateKey (${own}), got ${init.self}`)
    this.self = init.self
    this.privateKey = init.privateKey
    this.stateKey = Uint8Array.from(init.stateKey)
    this.file = init.dir === undefined ? undefined : join(init.dir, STATE_FILE)
    this.maxEntryBytes = positiveInt('limits.maxEntryBytes', init.limits?.maxEntryBytes, DEFAULT_MAX_ENTRY_BYTES)
    this.maxEntriesPerOwner = positiveInt('limits.maxEntriesPerOwner', init.limits?.maxEntriesPerOwner, DEFAULT_MAX_ENTRIES_PER_OWNER)
    this.maxTotalBytes = positiveInt('limits.maxTotalBytes', init.limits?.maxTotalBytes, DEFAULT_MAX_TOTAL_BYTES)
    this.maxOwnerBytes = positiveInt('limits.maxOwnerBytes', init.limits?.maxOwnerBytes, Math.min(DEFAULT_MAX_OWNER_BYTES, this.maxTotalBytes))
    if (this.maxOwnerBytes > this.maxTotalBytes) throw new StateStoreInitError(`state store option limits.maxOwnerBytes: expected at most limits.maxTotalBytes (${this.maxTotalBytes}), got ${this.maxOwnerBytes}`)
    this.policy = {
      admitGraceMs: positiveInt('admitGraceMs', init.admitGraceMs, DEFAULT_ADMIT_GRACE_MS),
      forgetAfterMs: positiveInt('forgetAfterMs', init.forgetAfterMs, DEFAULT_FORGET_AFTER_MS)
    }
    this.maxTombstones = positiveInt('maxTombstones', init.maxTombstones, DEFAULT_MAX_TOMBSTONES)
    this.isAdmitted = init.isAdmitted
    this.flushDelayMs = init.flushDelayMs ?? DEFAULT_FLUSH_DELAY_MS
    this.writeFile = init.writeFile ?? writeFileAtomic
    if (!Number.isFinite(this.flushDelayMs) || this.flushDelayMs < 0) throw new StateStoreInitError(`state store option flushDelayMs: expected a non-negative number, got ${init.flushDelayMs}`)
    this.digestBudget = positiveInt('digestBudget', init.digestBudget, DEFAULT_DIGEST_BUDGET)
    this.clock = init.clock ?? systemClock
    this.log = init.logger ?? silentLogger
    this.rejected = Object.fromEntries(REJECT_REASONS.map(r => [r, 0])) as Record<RejectReason, number>
    this.report = { loaded: 0, skipped: {}, corrupt: false, ...(this.file === undefined ? {} : { file: this.file }) }
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
      this.generation++ // rewrite the file without them at the next flush
    }
    this.durable = this.generation
    this.log.debug('state loaded', { file: this.file, entries: this.report.loaded })
  }

  loadReport (): StateLoadReport {
    return { ...this.report, skipped: { ...this.report.skipped } }
  }

  async put (key: string, value: JsonValue): Promise<{ entry: StateEntry, wire: Uint8Array }> {
    if (this.closing !== undefined) throw new StateClosedError(`cannot put state key "${key}": the state store is closed`)
    const run = this.putChain.then(async () => await this.writeOwn(key, value))
    this.putChain = run.catch(() => {})
    const result = await run
    this.scheduleFlush()
    return result
  }

  /** Resolves once the state file holds every change made so far; rejects with StatePersistError when the write fails. */
  async flush (): Promise<void> {
    await this.putChain
    await this.flushNow()
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
    if (result.accepted.length > 0) this.scheduleFlush()
    return result
  }

  /** Verifies, decrypts and merges one wire entry. Never throws on bad input. */
  private async ingest (wire: unknown, source: 'remote' | 'disk'): Promise<Verdict> {
    if (!(wire instanceof Uint8Array)) return { kind: 'rejected', reason: 'malformed' }
    if (wire.length > this.maxEntryBytes) return { kind: 'rejected', reason: 'oversized' }
    const d = decodeWire(wire)
    if (d === undefined) return { kind: 'rejected', reason: 'malformed' }
    const who = { owner: d.owner, key: d.key, version: d.version }
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
    const opened = openValue(this.stateKey, d)
    if ('problem' in opened) return { kind: 'rejected', reason: opened.problem, ...who }
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
    this.slots.set(slotOf(meta.owner, meta.key), { meta, wire, entry })
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
    this.generation++
    return held === undefined ? { entry, origin } : { entry, previous: held.entry, origin }
  }

  /** Removes one held entry (eviction, collection); the caller emits its change. */
  private drop (owner: string, key: string): Held | undefined {
    const slot = slotOf(owner, key)
    const held = this.slots.get(slot)
    if (held === undefined) return undefined
    this.slots.delete(slot)
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
    this.generation++
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
    this.scheduleFlush()
  }

  collect (presence: OwnerPresenceView, now = this.clock.now()): CollectResult {
    const result: CollectResult = { forgotten: [], revived: [] }
    if (this.closing !== undefined) return result
    const ask = (owner: string): OwnerPresence => {
      try {
        return presence(owner)
      } catch (err) {
        // Never forget on a broken view.
        this.log.error('owner presence check failed', { owner, error: errorMessage(err) })
        return 'present'
      }
    }
    let dirty = false
    for (const owner of [...this.usage.keys()]) {
      if (owner === this.self) continue
      const note = this.notes.get(owner) ?? { firstSeenAt: now }
      const verdict = judgeOwner(note, ask(owner), now, this.policy)
      if (verdict.kind === 'keep') {
        if (verdict.note.presentAt !== undefined && (note.presentAt === undefined || verdict.note.presentAt - note.presentAt >= PRESENT_PERSIST_MS)) dirty = true
        this.notes.set(owner, verdict.note)
        continue
      }
      const usage = this.usage.get(owner) as OwnerUsage
      const keys = [...usage.keys.keys()]
      let bytes = 0
      for (const key of keys) {
        const held = this.drop(owner, key)
        if (held === undefined) continue
        bytes += held.wire.length
        this.emit({ entry: held.entry, previous: held.entry, origin: 'remote', dropped: verdict.reason })
      }
      this.tombstones.delete(owner)
      this.tombstones.set(owner, now)
      this.forgottenCount[verdict.reason]++
      result.forgotten.push({ owner, reason: verdict.reason, entries: keys.length, bytes })
      dirty = true
    }
    const justForgotten = new Set(result.forgotten.map(f => f.owner))
    for (const [owner, at] of [...this.tombstones]) {
      if (justForgotten.has(owner)) continue
      if (!tombstoneHolds(at, now, this.policy)) { this.tombstones.delete(owner); dirty = true; continue }
      if (ask(owner) === 'present') { this.tombstones.delete(owner); result.revived.push(owner); dirty = true }
    }
    for (const owner of this.tombstones.keys()) {
      if (this.tombstones.size <= this.maxTombstones) break
      this.tombstones.delete(owner)
    }
    if (result.forgotten.length > 0) {
      this.log.info('state owners forgotten', { owners: result.forgotten.map(f => ({ owner: f.owner, reason: f.reason, entries: f.entries })) })
    }
    if (dirty) {
      this.generation++
      this.scheduleFlush()
    }
    return result
  }

  isForgotten (owner: string): boolean {
    return this.tombstones.has(owner)
  }

  gcStats (): StateGcStats {
    return { forgotten: { ...this.forgottenCount }, evicted: this.evictedCount, tombstones: this.tombstones.size, owners: this.usage.size }
  }

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

  rejections (): Record<RejectReason, number> {
    return { ...this.rejected }
  }

  duplicates (): number {
    return this.duplicateCount
  }

  size (): { entries: number, bytes: number } {
    return { entries: this.slots.size, bytes: this.totalBytes }
  }

  addEventListener (type: 'change', listener: (evt: CustomEvent<StateChange>) => void): void {
    this.events.addEventListener(type, listener as unknown as TargetListener)
  }

  removeEventListener (type: 'change', listener: (evt: CustomEvent<StateChange>) => void): void {
    this.events.removeEventListener(type, listener as unknown as TargetListener)
  }

  private scheduleFlush (): void {
    if (this.file === undefined || this.flushTimer !== undefined || this.closing !== undefined) return
    const timer = new AbortController()
    this.flushTimer = timer
    this.clock.sleep(this.flushDelayMs, timer.signal).then(async () => {
      this.flushTimer = undefined
      await this.flushNow()
    }, () => {}).catch((err: unknown) => {
      this.log.warn('state file write failed; retrying with the next change', { file: this.file, error: errorMessage(err) })
    })
  }

  /**
   * Writes the state file until it holds every change made before the call. Changes
   * that arrive meanwhile are left to the next flush: while a site forms they keep
   * coming, and chasing them kept a caller waiting for one fsync'd write after another.
   */
  private async flushNow (): Promise<void> {
    const file = this.file
    if (file === undefined) return
    const upTo = this.generation
    while (this.durable < upTo) {
      if (this.writing !== undefined) {
        await this.writing.catch(() => {})
        continue
      }
      const gen = this.generation
      const bytes = encodeSnapshot([...this.slots.values()].map(h => h.wire), {
        notes: [...this.notes].map(([owner, n]) => ({ owner, presentAt: n.presentAt })),
        tombstones: [...this.tombstones].map(([owner, forgottenAt]) => ({ owner, forgottenAt }))
      })
      const writing = this.writeFile(file, bytes).then(() => { this.durable = Math.max(this.durable, gen) })
      this.writing = writing
      try {
        await writing
      } catch (err) {
        throw new StatePersistError(`writing state file ${file} failed: ${errorMessage(err)}`, { cause: err })
      } finally {
        if (this.writing === writing) this.writing = undefined
      }
    }
  }

  async close (): Promise<void> {
    this.closing ??= (async () => {
      this.flushTimer?.abort()
      this.flushTimer = undefined
      await this.putChain
      await this.flushNow()
    })()
    await this.closing
  }
}

function freezeEntry (e: StateEntry): StateEntry {
  deepFreeze(e.value)
  return Object.freeze(e)
}

function deepFreeze (v: unknown): void {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    for (const child of Object.values(v)) deepFreeze(child)
    Object.freeze(v)
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
