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
  StatePersistError, StateStoreInitError, StateValueError
} from './errors.ts'
import { mergeEntry, slotOf, type WireEntryMeta } from './merge.ts'
import { encodeSnapshot, loadSnapshot, STATE_FILE, writeFileAtomic } from './persist.ts'
import {
  decodeWire, hashWire, jsonValueProblem, keyProblem, NONCE_BYTES, openValue, ownerPublicKey,
  STATE_KEY_BYTES, verifyWire, writeEntry
} from './wire.ts'

/** Largest wire entry accepted or written, in bytes. @default 65536 */
export const DEFAULT_MAX_ENTRY_BYTES = 64 * 1024
/** Most entries one owner may hold. @default 256 */
export const DEFAULT_MAX_ENTRIES_PER_OWNER = 256
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

/** The store as this module builds it: the `StateStore` contract plus load and duplicate figures. */
export interface LocalStateStore extends StateStore {
  /** What was found in the state file at start. */
  loadReport(): StateLoadReport
  /** Entries received again that were identical to what was held, since start. */
  duplicates(): number
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
  private readonly maxTotalBytes: number
  private readonly isAdmitted: ((owner: string) => boolean) | undefined
  private readonly flushDelayMs: number
  private readonly writeFile: (path: string, bytes: Uint8Array) => Promise<void>
  private readonly digestBudget: number
  private readonly clock: Clock
  private readonly log: Logger
  private readonly events = new EventTarget()

  private readonly slots = new Map<string, Held>()
  private readonly ownerCounts = new Map<string, number>()
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
    for (const wire of snap.wires) {
      const v = await this.ingest(wire, 'disk')
      if (v.kind === 'accepted') this.report.loaded++
      else if (v.kind === 'rejected') this.report.skipped[v.reason] = (this.report.skipped[v.reason] ?? 0) + 1
    }
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
      if (held === undefined && (this.ownerCounts.get(this.self) ?? 0) >= this.maxEntriesPerOwner) {
        throw new StateOwnerQuotaError(`cannot put state key "${key}": this node already owns ${this.maxEntriesPerOwner} entries (limits.maxEntriesPerOwner)`)
      }
      const version = Math.max(held?.meta.version ?? 0, this.ownFloor.get(key) ?? 0) + 1
      const writtenAt = Math.max(0, Math.floor(this.clock.now()))
      const wire = await writeEntry({
        privateKey: this.privateKey, owner: this.self, key, version, writtenAt, value, stateKey: this.stateKey, nonce: cryptoRandom.bytes(NONCE_BYTES)
      })
      // An apply may have adopted a newer incarnation of this key while we signed.
      if (this.slots.get(slot) !== held) continue
      if (wire.length > this.maxEntryBytes) {
        throw new StateEntryTooLargeError(`state key "${key}": entry is ${wire.length} bytes, expected at most ${this.maxEntryBytes} (limits.maxEntryBytes)`)
      }
      const total = this.totalBytes - (held?.wire.length ?? 0) + wire.length
      if (total > this.maxTotalBytes) {
        throw new StateFullError(`cannot put state key "${key}": the replica would hold ${total} bytes, expected at most ${this.maxTotalBytes} (limits.maxTotalBytes)`)
      }
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
    if (held === undefined && (this.ownerCounts.get(d.owner) ?? 0) >= this.maxEntriesPerOwner) {
      return { kind: 'rejected', reason: 'owner-quota', ...who }
    }
    if (this.totalBytes - (held?.wire.length ?? 0) + wire.length > this.maxTotalBytes) {
      return { kind: 'rejected', reason: 'store-full', ...who }
    }
    const entry = freezeEntry({ owner: d.owner, key: d.key, version: d.version, writtenAt: d.writtenAt, value: opened.value })
    return { kind: 'accepted', change: this.commit(held, meta, wire.slice(), entry, 'remote') }
  }

  private commit (held: Held | undefined, meta: WireEntryMeta, wire: Uint8Array, entry: StateEntry, origin: 'local' | 'remote'): StateChange {
    this.slots.set(slotOf(meta.owner, meta.key), { meta, wire, entry })
    if (held === undefined) this.ownerCounts.set(meta.owner, (this.ownerCounts.get(meta.owner) ?? 0) + 1)
    this.totalBytes += wire.length - (held?.wire.length ?? 0)
    this.digestCache = undefined
    this.generation++
    return held === undefined ? { entry, origin } : { entry, previous: held.entry, origin }
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
      const bytes = encodeSnapshot([...this.slots.values()].map(h => h.wire))
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
