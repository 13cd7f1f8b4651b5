/**
 * Token rotation records (pure): their shape, their bounds, who may publish one, and
 * which one a node follows (docs/decisions.md, LIFE-5).
 *
 * A server that rotates the token publishes the new token sealed to the seal key of
 * every member it knows (`sealTo`, as credentials are), in one or more entries
 * `token/rotation/<shard>` (a state entry holds at most 64 KiB, about 200 sealed
 * copies), each repeating the record's header: generation, the fingerprints of the
 * token it replaces and of the new one, when it was made and when its grace ends.
 *
 * The record is written under the state key of the token it replaces, the one key
 * every member holds, including one that was down during the rotation and comes back
 * within the grace; the publisher never re-seals it.
 *
 * Who may rotate: the init server of the accepted cluster record, or a server holding
 * a server credential it sealed (`removalAuthority`, as for a removal). Any token
 * holder can publish an entry, so a node follows a record only from one of them: one
 * hostile token holder cannot rotate the site away or lock members out. A hostile HA
 * server could; it already holds the k3s server token, with which it can do worse.
 */
import type { JsonValue, StateEntry } from '../p2p/types.ts'
import { parseSealedBox, sealTo, type SealedBox } from './credentials.ts'
import type { RemovalAuthority } from './removal.ts'
import type { RandomSource } from '../util/random.ts'
import { KairosError } from '../util/errors.ts'

/** Prefix of a rotation record's entries, `token/rotation/<shard>`. */
export const ROTATION_PREFIX = 'token/rotation/'

/** Sealed copies in one entry (about 300 bytes each, well within an entry's 64 KiB). */
export const MAX_SEALED_PER_ENTRY = 150

/** Entries of one record: with `MAX_SEALED_PER_ENTRY`, 6 000 members. */
export const MAX_ROTATION_SHARDS = 40

/** Shortest grace, ms: shorter would cut off a member that is merely restarting. @default 10 s */
export const MIN_GRACE_MS = 10_000

/** Longest grace, ms: the previous token stays usable that long. @default 365 days */
export const MAX_GRACE_MS = 365 * 24 * 3600_000

/** Largest generation number. */
export const MAX_GENERATION = 1_000_000

/** The header every entry of a record repeats. */
export interface RotationHeader {
  /** The new token's generation: the one it replaces plus one. */
  generation: number
  /** Fingerprint of the token it replaces. */
  from: string
  /** Fingerprint of the new token. */
  to: string
  /** Wall-clock ms when the record was made. */
  at: number
  /** Wall-clock ms when the grace ends: the replaced token admits nothing from then on. */
  until: number
}

/** One published rotation, as a node reads it (its shards merged). */
export interface Rotation extends RotationHeader {
  /** The publisher (a server). */
  by: string
  /** Peer id → the new token sealed to its seal key. */
  sealed: ReadonlyMap<string, SealedBox>
}

/** A rotation record that does not have the expected shape or bounds. */
export class RotationRecordError extends KairosError {
  constructor (message: string) {
    super(message)
    this.name = 'RotationRecordError'
  }
}

const FINGERPRINT = /^[a-z2-7]{4}(-[a-z2-7]{4}){3}$/

/** Why `h` is not a valid header, or undefined. Pure. */
export function headerProblem (h: Record<string, unknown>): string | undefined {
  const { generation, from, to, at, until } = h
  if (typeof generation !== 'number' || !Number.isSafeInteger(generation) || generation < 1 || generation > MAX_GENERATION) return `generation must be an integer from 1 to ${MAX_GENERATION}, got ${JSON.stringify(generation)}`
  if (typeof from !== 'string' || !FINGERPRINT.test(from)) return `from must be a token fingerprint (xxxx-xxxx-xxxx-xxxx), got ${JSON.stringify(from)}`
  if (typeof to !== 'string' || !FINGERPRINT.test(to)) return `to must be a token fingerprint (xxxx-xxxx-xxxx-xxxx), got ${JSON.stringify(to)}`
  if (from === to) return 'from and to are the same token'
  if (typeof at !== 'number' || !Number.isSafeInteger(at) || at < 0) return `at must be a non-negative integer of ms, got ${JSON.stringify(at)}`
  if (typeof until !== 'number' || !Number.isSafeInteger(until)) return `until must be an integer of ms, got ${JSON.stringify(until)}`
  if (until - at < MIN_GRACE_MS || until - at > MAX_GRACE_MS) return `the grace (until - at) must be from ${MIN_GRACE_MS} ms to ${MAX_GRACE_MS} ms, got ${until - at} ms`
  return undefined
}

/** The header and sealed copies of one `token/rotation/<shard>` entry; throws `RotationRecordError` naming what is wrong. Pure. */
export function parseRotationEntry (e: Pick<StateEntry, 'key' | 'value'>): { header: RotationHeader, sealed: Map<string, SealedBox> } {
  const shard = e.key.startsWith(ROTATION_PREFIX) ? Number(e.key.slice(ROTATION_PREFIX.length)) : NaN
  if (!Number.isSafeInteger(shard) || shard < 0 || shard >= MAX_ROTATION_SHARDS) throw new RotationRecordError(`rotation record: key ${e.key} is not ${ROTATION_PREFIX}<0…${MAX_ROTATION_SHARDS - 1}>`)
  const v = e.value
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new RotationRecordError('rotation record: expected an object')
  if (v.v !== 1) throw new RotationRecordError(`rotation record: version must be 1, got ${JSON.stringify(v.v)}`)
  const problem = headerProblem(v)
  if (problem !== undefined) throw new RotationRecordError(`rotation record: ${problem}`)
  const s = v.sealed
  if (s === null || typeof s !== 'object' || Array.isArray(s)) throw new RotationRecordError('rotation record: sealed must be an object of peer id → sealed box')
  const entries = Object.entries(s)
  if (entries.length > MAX_SEALED_PER_ENTRY) throw new RotationRecordError(`rotation record: ${entries.length} sealed copies in one entry, expected at most ${MAX_SEALED_PER_ENTRY}`)
  const sealed = new Map<string, SealedBox>()
  for (const [peer, box] of entries) {
    if (peer === '' || peer.length > 128) throw new RotationRecordError('rotation record: a sealed copy is keyed by something that is not a peer id')
    try {
      sealed.set(peer, parseSealedBox(box))
    } catch (err) {
      throw new RotationRecordError(`rotation record: the copy for ${peer}: ${err instanceof Error ? err.message : String(err)}`)
    }
  }
  const { generation, from, to, at, until } = v as unknown as RotationHeader
  return { header: { generation, from, to, at, until }, sealed }
}

/**
 * The entries a server publishes to rotate from the token with fingerprint `from` to
 * `token` (fingerprint `to`): the new token sealed to each of `recipients` (peer id →
 * seal public key). Pure but for `random` (the boxes' ephemeral keys).
 */
export function rotationEntries (header: RotationHeader, token: string, recipients: ReadonlyMap<string, string>, random?: RandomSource): Array<{ key: string, value: JsonValue }> {
  const problem = headerProblem(header as unknown as Record<string, unknown>)
  if (problem !== undefined) throw new RotationRecordError(`rotation record: ${problem}`)
  const ids = [...recipients.keys()].sort()
  const shards = Math.max(1, Math.ceil(ids.length / MAX_SEALED_PER_ENTRY))
  if (shards > MAX_ROTATION_SHARDS) throw new RotationRecordError(`rotation record: ${ids.length} members need ${shards} entries, more than ${MAX_ROTATION_SHARDS}`)
  const out: Array<{ key: string, value: JsonValue }> = []
  for (let i = 0; i < shards; i++) {
    const sealed: Record<string, JsonValue> = {}
    for (const id of ids.slice(i * MAX_SEALED_PER_ENTRY, (i + 1) * MAX_SEALED_PER_ENTRY)) sealed[id] = sealTo(recipients.get(id) as string, token, random)
    out.push({ key: `${ROTATION_PREFIX}${i}`, value: { v: 1, ...header, sealed } })
  }
  return out
}

/** Whether `peer` may rotate the token: the accepted init server or a server it sealed a server credential for. Pure. */
export function mayRotate (authority: RemovalAuthority, peer: string): boolean {
  return peer === authority.init || authority.servers.has(peer)
}

/** A rotation entry this node does not follow, and why (for the log and status). */
export interface IgnoredRotation { by: string, key: string, reason: string }

/**
 * The rotation a node on the token with fingerprint `current` follows: among the
 * records of `entries` from a publisher `authority` allows (the init server, or a
 * server), those that replace `current`, the highest generation; on a tie, the
 * lowest publisher id. Entries of one publisher are merged when their headers agree
 * (a shard of another header is ignored). Pure.
 */
export function judgeRotations (entries: readonly StateEntry[], authority: RemovalAuthority, current: string): { rotation?: Rotation, ignored: IgnoredRotation[] } {
  const ignored: IgnoredRotation[] = []
  const byOwner = new Map<string, Rotation>()
  for (const e of [...entries].sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : 0)) {
    if (!e.key.startsWith(ROTATION_PREFIX)) continue
    if (!mayRotate(authority, e.owner)) {
      ignored.push({ by: e.owner, key: e.key, reason: 'not published by a server' })
      continue
    }
    let parsed: ReturnType<typeof parseRotationEntry>
    try {
      parsed = parseRotationEntry(e)
    } catch (err) {
      ignored.push({ by: e.owner, key: e.key, reason: err instanceof Error ? err.message : String(err) })
      continue
    }
    const { header, sealed } = parsed
    if (header.from !== current) continue
    const held = byOwner.get(e.owner)
    if (held === undefined) { byOwner.set(e.owner, { ...header, by: e.owner, sealed }); continue }
    if (held.generation !== header.generation || held.to !== header.to || held.at !== header.at || held.until !== header.until) {
      ignored.push({ by: e.owner, key: e.key, reason: 'its header differs from the publisher\'s other rotation entries' })
      continue
    }
    byOwner.set(e.owner, { ...held, sealed: new Map([...held.sealed, ...sealed]) })
  }
  let best: Rotation | undefined
  for (const r of byOwner.values()) {
    if (best === undefined || r.generation > best.generation || (r.generation === best.generation && r.by < best.by)) best = r
  }
  return { ...(best === undefined ? {} : { rotation: best }), ignored }
}
