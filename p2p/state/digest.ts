/**
 * Anti-entropy digest (format 1): a summary of a replica that lets a peer pick the
 * entries the other side lacks or holds older, in one round.
 *
 * ```
 * u8      format = 1
 * varint  owner count
 * per owner, sorted by owner:
 *   string  owner
 *   varint  entry count
 *   8 B     owner hash  first 8 bytes of SHA-256 over (key, version, entry hash[0..8]) sorted by key
 *   u8      detail      1 = the entries follow, 0 = summary only
 *   detail × entry count, sorted by key:
 *     string key, varint version, 8 B entry hash prefix
 * ```
 *
 * An owner whose count and owner hash match on both sides costs nothing further. The
 * digest is bounded: per-entry detail is included only while the digest stays under
 * its byte budget; for an owner summarised without detail the responder sends all of
 * that owner's entries and the receiver counts the ones it has as duplicates.
 */
import { createHash } from 'node:crypto'
import { ByteReader, ByteWriter, compareBytes, equalBytes } from './codec.ts'
import { MAX_KEY_BYTES, MAX_OWNER_BYTES, MAX_VERSION } from './wire.ts'

/** Format byte of digests written by this code. */
export const DIGEST_FORMAT = 1
/** Bytes of an entry hash (and owner hash) carried in a digest. */
export const DIGEST_HASH_BYTES = 8
/**
 * Soft size bound of a digest: per-entry detail stops once it would pass this many
 * bytes (owner summaries are always included, about 70 bytes each).
 * @default 65536
 */
export const DEFAULT_DIGEST_BUDGET = 64 * 1024
/** Most owners / entries per owner a parsed digest may announce (beyond any sane cluster). */
const MAX_DIGEST_OWNERS = 100_000
const MAX_DIGEST_ENTRIES = 1_000_000

/** One held entry as the digest sees it. */
export interface DigestItem {
  owner: string
  key: string
  version: number
  /** Full SHA-256 of the wire bytes (only the first 8 bytes travel). */
  hash: Uint8Array
}

/** A parsed remote digest: per owner, its summary and possibly its entries. */
export interface ParsedDigest {
  owners: Map<string, {
    count: number
    ownerHash: Uint8Array
    /** Undefined when the sender sent a summary only. */
    entries?: Map<string, { version: number, hash: Uint8Array }>
  }>
}

interface OwnerGroup { owner: string, items: DigestItem[], ownerHash: Uint8Array }

function groupByOwner (items: DigestItem[]): OwnerGroup[] {
  const byOwner = new Map<string, DigestItem[]>()
  for (const item of items) {
    const list = byOwner.get(item.owner)
    if (list === undefined) byOwner.set(item.owner, [item])
    else list.push(item)
  }
  const owners = [...byOwner.keys()].sort()
  return owners.map(owner => {
    const list = (byOwner.get(owner) ?? []).sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : 0)
    const h = createHash('sha256')
    for (const item of list) h.update(new ByteWriter().string(item.key).varint(item.version).raw(item.hash.subarray(0, DIGEST_HASH_BYTES)).finish())
    return { owner, items: list, ownerHash: new Uint8Array(h.digest().subarray(0, DIGEST_HASH_BYTES)) }
  })
}

/** Builds the digest of a set of held entries. Pure. */
export function buildDigest (items: DigestItem[], budget = DEFAULT_DIGEST_BUDGET): Uint8Array {
  const groups = groupByOwner(items)
  const w = new ByteWriter().u8(DIGEST_FORMAT).varint(groups.length)
  // Reserve room for every owner summary first, then spend what is left on detail.
  let summaryBytes = 0
  for (const g of groups) summaryBytes += new ByteWriter().string(g.owner).length + 10 + DIGEST_HASH_BYTES + 1
  let detailLeft = budget - summaryBytes
  for (const g of groups) {
    const detail = new ByteWriter()
    for (const item of g.items) detail.string(item.key).varint(item.version).raw(item.hash.subarray(0, DIGEST_HASH_BYTES))
    const withDetail = detail.length <= detailLeft
    if (withDetail) detailLeft -= detail.length
    w.string(g.owner).varint(g.items.length).raw(g.ownerHash).u8(withDetail ? 1 : 0)
    if (withDetail) w.raw(detail.finish())
  }
  return w.finish()
}

/** Parses a remote digest; undefined when it is malformed in any way. Never throws. */
export function parseDigest (bytes: Uint8Array): ParsedDigest | undefined {
  try {
    const r = new ByteReader(bytes)
    if (r.u8() !== DIGEST_FORMAT) return undefined
    const ownerCount = r.varint()
    if (ownerCount > MAX_DIGEST_OWNERS || ownerCount > r.remaining) return undefined
    const owners: ParsedDigest['owners'] = new Map()
    for (let i = 0; i < ownerCount; i++) {
      const owner = r.string(MAX_OWNER_BYTES)
      const count = r.varint()
      if (count > MAX_DIGEST_ENTRIES) return undefined
      const ownerHash = r.raw(DIGEST_HASH_BYTES)
      const detail = r.u8()
      if (detail > 1 || owners.has(owner)) return undefined
      if (detail === 0) {
        owners.set(owner, { count, ownerHash })
        continue
      }
      // Each detailed entry takes at least 10 bytes: a count beyond the bytes left is a lie.
      if (count > r.remaining) return undefined
      const entries = new Map<string, { version: number, hash: Uint8Array }>()
      for (let j = 0; j < count; j++) {
        const key = r.string(MAX_KEY_BYTES)
        const version = r.varint()
        if (version < 1 || version > MAX_VERSION || entries.has(key)) return undefined
        const hash = r.raw(DIGEST_HASH_BYTES)
        entries.set(key, { version, hash })
      }
      owners.set(owner, { count, ownerHash, entries })
    }
    r.end()
    return { owners }
  } catch {
    // CodecError for bad structure; nothing else can be thrown, and a digest must never throw.
    return undefined
  }
}

/**
 * The local entries a peer with digest `remote` lacks or holds older (in merge order,
 * comparing hash prefixes). Entries the peer holds newer are not listed: its own
 * `missingFor` of our digest sends them the other way. Pure.
 */
export function selectMissing (local: DigestItem[], remote: ParsedDigest): DigestItem[] {
  const out: DigestItem[] = []
  for (const g of groupByOwner(local)) {
    const theirs = remote.owners.get(g.owner)
    if (theirs === undefined) { out.push(...g.items); continue }
    if (theirs.count === g.items.length && equalBytes(theirs.ownerHash, g.ownerHash)) continue
    if (theirs.entries === undefined) { out.push(...g.items); continue }
    for (const item of g.items) {
      const t = theirs.entries.get(item.key)
      if (t === undefined || item.version > t.version ||
        (item.version === t.version && compareBytes(item.hash.subarray(0, DIGEST_HASH_BYTES), t.hash) > 0)) {
        out.push(item)
      }
    }
  }
  return out
}
