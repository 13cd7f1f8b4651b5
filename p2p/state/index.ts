/**
 * The replicated cluster state, without its network transport: `createStateStore`
 * builds the local replica; the sync layer moves its wire bytes and digests.
 */
export { resealOwnEntries } from './reseal.ts'
export { REJECT_REASONS, alarmingRejections, type ApplyResult, type RejectReason, type StateStore } from './contract.ts'
export {
  createStateStore, DEFAULT_FLUSH_DELAY_MS, DEFAULT_MAX_ENTRIES_PER_OWNER, DEFAULT_MAX_ENTRY_BYTES, DEFAULT_MAX_OWNER_BYTES, DEFAULT_MAX_TOTAL_BYTES,
  type CollectResult, type ForgottenOwner, type LocalStateStore, type StateGcStats, type StateLimits, type StateLoadReport, type StateStoreInit
} from './store.ts'
export {
  DEFAULT_ADMIT_GRACE_MS, DEFAULT_FORGET_AFTER_MS, DEFAULT_MAX_TOMBSTONES, type ForgetReason, type OwnerPresence, type OwnerPresenceView
} from './gc.ts'
export { MAX_VERSION } from './wire.ts'
export { compareEntries, mergeEntry, type MergeDecision, type WireEntryMeta } from './merge.ts'
export { DEFAULT_DIGEST_BUDGET } from './digest.ts'
export { STATE_FILE } from './persist.ts'
export {
  StateClosedError, StateEntryTooLargeError, StateFullError, StateKeyError, StateOwnerQuotaError,
  StatePersistError, StateStoreInitError, StateValueError, StateVersionError
} from './errors.ts'
export {
  createStateCollector, DEFAULT_COLLECT_INTERVAL_MS, DEFAULT_COLLECT_MIN_GAP_MS, ownerPresence, type StateCollector, type StateCollectorInit
} from './collector.ts'
