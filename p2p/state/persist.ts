/**
 * The state file: a snapshot of every held wire entry, written atomically.
 *
 * ```
 * 8 B     magic "KP2PST01"
 * varint  entry count
 * count × bytes  wire entry (as received: still signed and encrypted)
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
const MAGIC = new TextEncoder().encode('KP2PST01')
const CHECKSUM_BYTES = 32
/** Most bytes one snapshot entry may claim (far above any entry bound). */
const MAX_SNAPSHOT_ENTRY = 16 * 1024 * 1024

/** Encodes a snapshot of wire entries. */
export function encodeSnapshot (wires: Uint8Array[]): Uint8Array {
  const w = new ByteWriter().raw(MAGIC).varint(wires.length)
  for (const wire of wires) w.bytes(wire)
  const body = w.finish()
  const sum = createHash('sha256').update(body).digest()
  const out = new Uint8Array(body.length + CHECKSUM_BYTES)
  out.set(body)
  out.set(sum, body.length)
  return out
}

/** Decodes a snapshot; undefined when the magic, checksum or structure is wrong. Never throws. */
export function decodeSnapshot (bytes: Uint8Array): Uint8Array[] | undefined {
  if (bytes.length < MAGIC.length + 1 + CHECKSUM_BYTES) return undefined
  const body = bytes.subarray(0, bytes.length - CHECKSUM_BYTES)
  const sum = bytes.subarray(bytes.length - CHECKSUM_BYTES)
  if (!equalBytes(body.subarray(0, MAGIC.length), MAGIC)) return undefined
  if (!equalBytes(new Uint8Array(createHash('sha256').update(body).digest()), sum)) return undefined
  try {
    const r = new ByteReader(body)
    r.raw(MAGIC.length)
    const count = r.varint()
    const out: Uint8Array[] = []
    for (let i = 0; i < count; i++) out.push(r.bytes(MAX_SNAPSHOT_ENTRY).slice())
    r.end()
    return out
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
export interface SnapshotLoad {
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
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { wires: [], corrupt: false }
    return await setAside(path, now, `unreadable: ${(err as Error).message}`)
  }
  const wires = decodeSnapshot(bytes)
  if (wires === undefined) return await setAside(path, now, `not a valid state snapshot (${bytes.length} bytes: bad magic, checksum or structure)`)
  return { wires, corrupt: false }
}

async function setAside (path: string, now: number, problem: string): Promise<SnapshotLoad> {
  const movedTo = `${path}.corrupt-${now}`
  try {
    await rename(path, movedTo)
    return { wires: [], corrupt: true, movedTo, problem }
  } catch {
    return { wires: [], corrupt: true, problem }
  }
}
