/**
 * The state file: a snapshot of every held wire entry and of what garbage collection
 * must remember, written atomically.
 *
 * ```
 * 8 B     magic "KP2PST02" ("KP2PST01" files, without the two lists, are still read)
 * varint  entry count
 * count × bytes  wire entry (as received: still signed and encrypted)
 * varint  owner note count
 * count × (string owner, varint presentAt + 1; 0 = never present)
 * varint  tombstone count
 * count × (string owner, varint forgottenAt)
 * 32 B    SHA-256 of everything before it
 * ```
 *
 * Entries stay encrypted at rest and are verified again on load, so the file holds
 * nothing a peer could not already see, and a bit flip is caught by the checksum.
 */
import { createHash } from 'node:crypto'
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { ByteReader, ByteWriter, equalBytes } from './codec.ts'

/** Name of the state file inside the state directory. */
export const STATE_FILE = 'cluster-state.bin'
const MAGIC = new TextEncoder().encode('KP2PST02')
const MAGIC_V1 = new TextEncoder().encode('KP2PST01')
/** Longest owner string in the lists (as in the wire format). */
const MAX_OWNER = 128
/** Latest time a list may carry, ms (year 10 000). */
const MAX_TIME = 253_402_300_800_000
const CHECKSUM_BYTES = 32
/** Most bytes one snapshot entry may claim (far above any entry bound). */
const MAX_SNAPSHOT_ENTRY = 16 * 1024 * 1024

/** What a snapshot holds besides the entries. */
export interface SnapshotExtras {
  /** Owners with entries and when they were last present (undefined = never). */
  notes: Array<{ owner: string, presentAt: number | undefined }>
  /** Forgotten owners and when. */
  tombstones: Array<{ owner: string, forgottenAt: number }>
}

/** A decoded snapshot. */
export interface Snapshot extends SnapshotExtras {
  wires: Uint8Array[]
}

function clampTime (t: number): number {
  return Math.min(MAX_TIME, Math.max(0, Math.floor(t)))
}

/** Encodes a snapshot of wire entries and the collection notes. */
export function encodeSnapshot (wires: Uint8Array[], extras: SnapshotExtras = { notes: [], tombstones: [] }): Uint8Array {
  const w = new ByteWriter().raw(MAGIC).varint(wires.length)
  for (const wire of wires) w.bytes(wire)
  w.varint(extras.notes.length)
  for (const n of extras.notes) w.string(n.owner).varint(n.presentAt === undefined ? 0 : clampTime(n.presentAt) + 1)
  w.varint(extras.tombstones.length)
  for (const t of extras.tombstones) w.string(t.owner).varint(clampTime(t.forgottenAt))
  const body = w.finish()
  const sum = createHash('sha256').update(body).digest()
  const out = new Uint8Array(body.length + CHECKSUM_BYTES)
  out.set(body)
  out.set(sum, body.length)
  return out
}

/** Decodes a snapshot; undefined when the magic, checksum or structure is wrong. Never throws. */
export function decodeSnapshot (bytes: Uint8Array): Snapshot | undefined {
  if (bytes.length < MAGIC.length + 1 + CHECKSUM_BYTES) return undefined
  const body = bytes.subarray(0, bytes.length - CHECKSUM_BYTES)
  const sum = bytes.subarray(bytes.length - CHECKSUM_BYTES)
  const magic = body.subarray(0, MAGIC.length)
  const v1 = equalBytes(magic, MAGIC_V1)
  if (!v1 && !equalBytes(magic, MAGIC)) return undefined
  if (!equalBytes(new Uint8Array(createHash('sha256').update(body).digest()), sum)) return undefined
  try {
    const r = new ByteReader(body)
    r.raw(MAGIC.length)
    // Every count is bounded by the bytes left: each item takes at least one byte.
    const count = r.varint()
    if (count > r.remaining) return undefined
    const wires: Uint8Array[] = []
    for (let i = 0; i < count; i++) wires.push(r.bytes(MAX_SNAPSHOT_ENTRY).slice())
    const snap: Snapshot = { wires, notes: [], tombstones: [] }
    if (!v1) {
      const notes = r.varint()
      if (notes > r.remaining) return undefined
      for (let i = 0; i < notes; i++) {
        const owner = r.string(MAX_OWNER)
        const at = r.varint()
        if (at > MAX_TIME + 1) return undefined
        snap.notes.push({ owner, presentAt: at === 0 ? undefined : at - 1 })
      }
      const tombs = r.varint()
      if (tombs > r.remaining) return undefined
      for (let i = 0; i < tombs; i++) {
        const owner = r.string(MAX_OWNER)
        const forgottenAt = r.varint()
        if (forgottenAt > MAX_TIME) return undefined
        snap.tombstones.push({ owner, forgottenAt })
      }
    }
    r.end()
    return snap
  } catch {
    return undefined
  }
}

let tmpSeq = 0

/**
 * Writes `bytes` to `path` so that a crash leaves either the old or the new file:
 * temporary file in the same directory (mode 0600), fsync, rename over, fsync the
 * directory.
 */
export async function writeFileAtomic (path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${tmpSeq++}`
  const fh = await open(tmp, 'w', 0o600)
  try {
    await fh.writeFile(bytes)
    await fh.sync()
  } catch (err) {
    await fh.close().catch(() => {})
    await unlink(tmp).catch(() => {})
    throw err
  }
  await fh.close()
  try {
    await rename(tmp, path)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
  const dir = await open(dirname(path), 'r')
  try {
    await dir.sync()
  } finally {
    await dir.close()
  }
}

/** What loading the state file found. */
export interface SnapshotLoad extends SnapshotExtras {
  /** Wire entries read (not yet verified). */
  wires: Uint8Array[]
  /** True when a file existed but could not be read as a snapshot. */
  corrupt: boolean
  /** Where a corrupt file was moved for the operator, if it was. */
  movedTo?: string
  /** Why the file was judged corrupt. */
  problem?: string
}

/**
 * Reads the snapshot at `path`. A missing file is an empty state; a corrupt or
 * truncated one is renamed to `<name>.corrupt-<now>` and reported, never thrown.
 * Leftover temporary files of an interrupted write are removed.
 */
export async function loadSnapshot (path: string, now: number): Promise<SnapshotLoad> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  const name = basename(path)
  for (const f of await readdir(dirname(path))) {
    if (f.startsWith(`${name}.tmp-`)) await unlink(join(dirname(path), f)).catch(() => {})
  }
  let bytes: Uint8Array
  try {
    bytes = new Uint8Array(await readFile(path))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { wires: [], notes: [], tombstones: [], corrupt: false }
    return await setAside(path, now, `unreadable: ${(err as Error).message}`)
  }
  const snap = decodeSnapshot(bytes)
  if (snap === undefined) return await setAside(path, now, `not a valid state snapshot (${bytes.length} bytes: bad magic, checksum or structure)`)
  return { ...snap, corrupt: false }
}

async function setAside (path: string, now: number, problem: string): Promise<SnapshotLoad> {
  const movedTo = `${path}.corrupt-${now}`
  try {
    await rename(path, movedTo)
    return { wires: [], notes: [], tombstones: [], corrupt: true, movedTo, problem }
  } catch {
    return { wires: [], notes: [], tombstones: [], corrupt: true, problem }
  }
}
