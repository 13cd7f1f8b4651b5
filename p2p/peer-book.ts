import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from '../util/log.ts'

/** File name of the known-peer list inside the state dir. */
export const PEER_BOOK_FILE = 'known-peers.json'
/** Most peers remembered; the least recently seen are forgotten first. @default 1024 */
export const DEFAULT_MAX_KNOWN_PEERS = 1024
/** Most addresses remembered per peer. @default 8 */
export const MAX_ADDRESSES_PER_PEER = 8

/** A peer we have admitted or been told of, with its addresses. */
export interface KnownPeer {
  id: string
  addresses: string[]
  /** How we first learned of it (see `Member.discoveredBy`). */
  discoveredBy: string
  /** Wall-clock ms of the last admission, 0 if never admitted. */
  admittedAt: number
}

/**
 * Known peers, persisted in the state dir so a restarted node re-dials them
 * without waiting for discovery. In memory between `save()` calls.
 */
export interface PeerBook {
  get(id: string): KnownPeer | undefined
  list(): KnownPeer[]
  /** Adds or updates a peer; returns true when it was not known before. */
  upsert(id: string, update: { addresses?: string[], discoveredBy?: string, admittedAt?: number }): boolean
  /** Forgets a peer (for example one that failed admission). */
  remove(id: string): void
  /** Writes the book if it changed since the last save. */
  save(): Promise<void>
}

/** Loads the book from `<dir>/known-peers.json` (a missing or corrupt file gives an empty book, logged). */
export async function loadPeerBook (dir: string, logger: Logger, maxPeers = DEFAULT_MAX_KNOWN_PEERS): Promise<PeerBook> {
  const file = join(dir, PEER_BOOK_FILE)
  const peers = new Map<string, KnownPeer>()
  try {
    const raw: unknown = JSON.parse(await readFile(file, 'utf8'))
    if (!Array.isArray(raw)) throw new Error('expected a JSON array')
    for (const p of raw as unknown[]) {
      if (typeof p !== 'object' || p === null) continue
      const r = p as Record<string, unknown>
      if (typeof r.id !== 'string' || !Array.isArray(r.addresses)) continue
      peers.set(r.id, {
        id: r.id,
        addresses: r.addresses.filter((a): a is string => typeof a === 'string').slice(0, MAX_ADDRESSES_PER_PEER),
        discoveredBy: typeof r.discoveredBy === 'string' ? r.discoveredBy : 'known',
        admittedAt: typeof r.admittedAt === 'number' ? r.admittedAt : 0
      })
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') logger.warn('known-peer list unreadable, starting empty', { file, error: (err as Error).message })
  }
  let dirty = false

  return {
    get: (id) => peers.get(id),
    list: () => [...peers.values()],
    upsert (id, update) {
      const existing = peers.get(id)
      const addresses = (update.addresses ?? []).slice(0, MAX_ADDRESSES_PER_PEER)
      if (existing === undefined) {
        peers.set(id, { id, addresses, discoveredBy: update.discoveredBy ?? 'peer-exchange', admittedAt: update.admittedAt ?? 0 })
        if (peers.size > maxPeers) {
          const oldest = [...peers.values()].sort((a, b) => a.admittedAt - b.admittedAt)[0]
          if (oldest !== undefined) peers.delete(oldest.id)
        }
        dirty = true
        return true
      }
      if (addresses.length > 0 && addresses.join(' ') !== existing.addresses.join(' ')) { existing.addresses = addresses; dirty = true }
      if (update.admittedAt !== undefined && update.admittedAt > existing.admittedAt) { existing.admittedAt = update.admittedAt; dirty = true }
      return false
    },
    remove (id) {
      if (peers.delete(id)) dirty = true
    },
    async save () {
      if (!dirty) return
      dirty = false
      await mkdir(dir, { recursive: true, mode: 0o700 })
      const tmp = `${file}.tmp`
      await writeFile(tmp, JSON.stringify([...peers.values()], null, 1), { mode: 0o600 })
      await rename(tmp, file)
    }
  }
}
