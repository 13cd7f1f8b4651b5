/**
 * Options, defaults and reported figures of the local replica (`store.ts`), and the
 * validation that turns `StateStoreInit` into the settings the store runs with.
 */
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { join } from 'node:path'
import { systemClock, type Clock } from '../../util/clock.ts'
import { silentLogger, type Logger } from '../../util/log.ts'
import type { RejectReason, StateStore } from './contract.ts'
import { DEFAULT_DIGEST_BUDGET } from './digest.ts'
import { StateStoreInitError } from './errors.ts'
import {
  DEFAULT_ADMIT_GRACE_MS, DEFAULT_FORGET_AFTER_MS, DEFAULT_MAX_TOMBSTONES,
  type CollectPolicy, type ForgetReason, type OwnerPresenceView
} from './gc.ts'
import { STATE_FILE, writeFileAtomic } from './persist.ts'
import { STATE_KEY_BYTES } from './wire.ts'

/** Largest wire entry accepted or written, in bytes. @default 65536 */
export const DEFAULT_MAX_ENTRY_BYTES = 64 * 1024
/**
 * Most entries one owner may hold. The byte quota is what bounds an owner; the count
 * bounds the bookkeeping per entry, and leaves room for the issuer of credentials to
 * hold one per member of the largest membership table (`DEFAULT_MAX_MEMBERS`).
 * @default 4096
 */
export const DEFAULT_MAX_ENTRIES_PER_OWNER = 4096
/**
 * Most wire bytes one owner may hold. Honest owners hold a few KiB (an advert, votes,
 * a role); the issuer of credentials also one sealed credential per node (see
 * bench/scale.ts). 64 such quotas fill the replica, so a few identities cannot.
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
  /** Most entries per owner. @default DEFAULT_MAX_ENTRIES_PER_OWNER (4096) */
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
  /** The 32-byte network state key derived from the token: it seals this node's entries and opens others'. */
  stateKey: Uint8Array
  /**
   * More 32-byte keys that open entries (never seal them), read at every entry: during a
   * token rotation's grace, the previous generation's state key (docs/decisions.md, LIFE-5).
   * @default none
   */
  openKeys?: () => readonly Uint8Array[]
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
   * Own entries are never dropped, except deletion markers: any entry whose value is
   * `null` is dropped once older than `forgetAfterMs` (`deletionExpired`), and an own
   * key is never written again below the version it was deleted at. The node calls it on a ticker (about once a minute)
   * and on membership changes; the state file follows within the flush delay.
   */
  collect(presence: OwnerPresenceView, now?: number): CollectResult
  /** True while `owner` is forgotten (its entries are refused as `forgotten`). */
  isForgotten(owner: string): boolean
  /**
   * Sets the owners removed from the site: their entries are dropped now (each change
   * emitted with `dropped: 'revoked'`) and refused as `revoked` from then on, from peers
   * and from the state file alike. Replaces the previous set; an owner left out is
   * judged by the collection again. This node's own id is ignored. Returns the owners
   * whose entries were dropped.
   */
  revoke(owners: ReadonlySet<string>): string[]
  /** Collection and quota figures. */
  gcStats(): StateGcStats
}

/** The settings a store runs with: `StateStoreInit` validated, defaults applied. */
export interface StoreSettings {
  self: string
  privateKey: PrivateKey
  stateKey: Uint8Array
  openKeys: () => readonly Uint8Array[]
  /** Path of the state file; undefined for a memory-only store. */
  file: string | undefined
  maxEntryBytes: number
  maxEntriesPerOwner: number
  maxOwnerBytes: number
  maxTotalBytes: number
  policy: CollectPolicy
  maxTombstones: number
  isAdmitted: ((owner: string) => boolean) | undefined
  flushDelayMs: number
  writeFile: (path: string, bytes: Uint8Array) => Promise<void>
  digestBudget: number
  clock: Clock
  log: Logger
}

function positiveInt (name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback
  if (!Number.isSafeInteger(v) || v <= 0) throw new StateStoreInitError(`state store option ${name}: expected a positive integer, got ${String(value)}`)
  return v
}

/** Validates `init` and applies the defaults. Throws `StateStoreInitError` naming the first unusable option. */
export function resolveStoreSettings (init: StateStoreInit): StoreSettings {
  if (!(init.stateKey instanceof Uint8Array) || init.stateKey.length !== STATE_KEY_BYTES) {
    throw new StateStoreInitError(`state store option stateKey: expected ${STATE_KEY_BYTES} bytes, got ${init.stateKey instanceof Uint8Array ? init.stateKey.length : typeof init.stateKey}`)
  }
  if (init.privateKey?.type !== 'Ed25519') {
    throw new StateStoreInitError(`state store option privateKey: expected an Ed25519 key, got ${String(init.privateKey?.type)}`)
  }
  const own = peerIdFromPrivateKey(init.privateKey).toString()
  if (own !== init.self) throw new StateStoreInitError(`state store option self: expected the peer id of privateKey (${own}), got ${init.self}`)
  const maxEntryBytes = positiveInt('limits.maxEntryBytes', init.limits?.maxEntryBytes, DEFAULT_MAX_ENTRY_BYTES)
  const maxEntriesPerOwner = positiveInt('limits.maxEntriesPerOwner', init.limits?.maxEntriesPerOwner, DEFAULT_MAX_ENTRIES_PER_OWNER)
  const maxTotalBytes = positiveInt('limits.maxTotalBytes', init.limits?.maxTotalBytes, DEFAULT_MAX_TOTAL_BYTES)
  const maxOwnerBytes = positiveInt('limits.maxOwnerBytes', init.limits?.maxOwnerBytes, Math.min(DEFAULT_MAX_OWNER_BYTES, maxTotalBytes))
  if (maxOwnerBytes > maxTotalBytes) throw new StateStoreInitError(`state store option limits.maxOwnerBytes: expected at most limits.maxTotalBytes (${maxTotalBytes}), got ${maxOwnerBytes}`)
  const policy: CollectPolicy = {
    admitGraceMs: positiveInt('admitGraceMs', init.admitGraceMs, DEFAULT_ADMIT_GRACE_MS),
    forgetAfterMs: positiveInt('forgetAfterMs', init.forgetAfterMs, DEFAULT_FORGET_AFTER_MS)
  }
  const maxTombstones = positiveInt('maxTombstones', init.maxTombstones, DEFAULT_MAX_TOMBSTONES)
  const flushDelayMs = init.flushDelayMs ?? DEFAULT_FLUSH_DELAY_MS
  const writeFile = init.writeFile ?? writeFileAtomic
  if (!Number.isFinite(flushDelayMs) || flushDelayMs < 0) throw new StateStoreInitError(`state store option flushDelayMs: expected a non-negative number, got ${init.flushDelayMs}`)
  const digestBudget = positiveInt('digestBudget', init.digestBudget, DEFAULT_DIGEST_BUDGET)
  return {
    self: init.self,
    privateKey: init.privateKey,
    stateKey: Uint8Array.from(init.stateKey),
    openKeys: init.openKeys ?? (() => []),
    file: init.dir === undefined ? undefined : join(init.dir, STATE_FILE),
    maxEntryBytes,
    maxEntriesPerOwner,
    maxOwnerBytes,
    maxTotalBytes,
    policy,
    maxTombstones,
    isAdmitted: init.isAdmitted,
    flushDelayMs,
    writeFile,
    digestBudget,
    clock: init.clock ?? systemClock,
    log: init.logger ?? silentLogger
  }
}
