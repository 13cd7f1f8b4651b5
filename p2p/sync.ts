import type { Stream } from '@libp2p/interface'
import type { ApplyResult, StateStore } from './state/contract.ts'
import type { Liveness } from './types.ts'
import { MalformedFrameError } from './errors.ts'
import { FrameReader, concatBytes, decodeList, encodeList, fromUtf8, utf8 } from './framing.ts'
import { sendFrames } from './stream-io.ts'
import { DEFAULT_MAX_MEMBERS, MAX_INCARNATION, validIncarnation } from './membership.ts'

/**
 * Anti-entropy and peer exchange over `${syncProtocol}/sync/1.0.0`. One
 * exchange repairs both replicas: each side learns the other's digest and
 * sends exactly what the other lacks, so a lost gossip message is fixed by
 * the next exchange. Both sides also hand over the peers they admitted, which
 * is how a node finds members beyond the ~20 a DHT self-lookup returns.
 *
 *   initiator → responder  PEERS, DIGEST
 *   responder → initiator  PEERS, ENTRIES*, DIGEST
 *   initiator → responder  ENTRIES*, END
 *
 * Every frame is length-prefixed and bounded; the first byte is its kind. A side that
 * has a members hash opens its first PEERS frame with a row carrying it (see
 * `MEMBERS_HASH_ROW`), so the other side can leave its table out when both are equal.
 */

/** Protocol id suffix under the token's sync protocol prefix. */
export const SYNC_PROTOCOL_SUFFIX = '/sync/1.0.0'
/**
 * A push (`${syncProtocol}/push/1.0.0`): entries one side knows the other lacks, with no
 * digest either way (see `pushAsInitiator`).
 *
 *   initiator → responder  PEERS, ENTRIES*, END
 */
export const PUSH_PROTOCOL_SUFFIX = '/push/1.0.0'

const KIND = { digest: 1, entries: 2, peers: 3, end: 4, hash: 5 } as const
/** Most entries in one ENTRIES frame. */
const MAX_ENTRIES_PER_FRAME = 4096
/** Most peers in one PEERS frame; a longer list goes in several (see `peerFrames`). */
export const MAX_PEERS_PER_FRAME = 256
/** Most peers one side sends in one exchange: a full membership table and the receiver's own row. */
export const MAX_PEERS_PER_EXCHANGE = DEFAULT_MAX_MEMBERS + 1
/**
 * Id of the PEERS row that carries a side's members hash (`Membership.digest`) as its
 * `ageMs`: `["#members", [], <hash>]`. It is not a peer id, so a build from before it
 * decodes the row and skips it like any row that names no peer.
 */
export const MEMBERS_HASH_ROW = '#members'
const MAX_ADDRS = 8
const MAX_ADDR_LENGTH = 256

/**
 * A member one side knows: where to reach it, how long ago it heard from it first-hand,
 * and (from nodes that send them) the liveness and incarnation it holds for it, which
 * the receiver merges like a rumour. That is the membership's anti-entropy: a node
 * learns members it has no connection to, and a `dead` rumour it missed, on the next
 * exchange.
 */
export interface PeerAdvert {
  id: string
  addresses: string[]
  ageMs: number
  liveness?: Liveness
  incarnation?: number
}

/** What one side of an exchange works with. */
export interface SyncSide {
  store: StateStore
  /** Remote peer id (authenticated by the connection). */
  remote: string
  /** The peers we vouch for. */
  peers: () => PeerAdvert[]
  /** Called with the peers the remote vouches for. */
  onPeers: (peers: PeerAdvert[]) => void
  /** Our members hash, sent as the first row of our peer list (see `MEMBERS_HASH_ROW`); none when absent. */
  membersHash?: () => number
  /** Called with the remote's members hash, before the rows of the frame that carries it. */
  onMembersHash?: (hash: number) => void
  /** Called after each applied ENTRIES frame. */
  onApplied: (result: ApplyResult) => void
  /** Bound on any frame, bytes. */
  maxFrameBytes: number
  signal: AbortSignal
}

/** Totals of one exchange. */
export interface SyncResult {
  sent: number
  received: number
}

function frame (kind: number, body: Uint8Array): Uint8Array {
  return concatBytes([Uint8Array.of(kind), body])
}

/** Splits wire entries into ENTRIES frames that each fit `maxFrameBytes`. */
export function entryFrames (entries: Uint8Array[], maxFrameBytes: number): Uint8Array[] {
  const frames: Uint8Array[] = []
  let batch: Uint8Array[] = []
  let size = 16
  for (const e of entries) {
    const cost = e.length + 10
    if (cost + 16 > maxFrameBytes) continue
    if (batch.length > 0 && (size + cost > maxFrameBytes || batch.length >= MAX_ENTRIES_PER_FRAME)) {
      frames.push(frame(KIND.entries, encodeList(batch)))
      batch = []
      size = 16
    }
    batch.push(e)
    size += cost
  }
  if (batch.length > 0) frames.push(frame(KIND.entries, encodeList(batch)))
  return frames
}

/**
 * A peer list as PEERS frames of at most `MAX_PEERS_PER_FRAME` each, in order, at most
 * `MAX_PEERS_PER_EXCHANGE` in all; always one frame, empty when the list is.
 */
export function peerFrames (peers: PeerAdvert[]): Uint8Array[] {
  const list = peers.slice(0, MAX_PEERS_PER_EXCHANGE)
  const frames: Uint8Array[] = []
  for (let i = 0; i === 0 || i < list.length; i += MAX_PEERS_PER_FRAME) frames.push(encodePeers(list.slice(i, i + MAX_PEERS_PER_FRAME)))
  return frames
}

/** Our peer list as PEERS frames: the members hash row first when the side has one, then `side.peers()`. */
function sidePeerFrames (side: SyncSide): Uint8Array[] {
  const rows = side.peers()
  const hash = side.membersHash?.()
  return peerFrames(hash === undefined ? rows : [{ id: MEMBERS_HASH_ROW, addresses: [], ageMs: hash >>> 0 }, ...rows])
}

/** Encodes one PEERS frame (kind byte and body) of at most `MAX_PEERS_PER_FRAME` peers. */
export function encodePeers (peers: PeerAdvert[]): Uint8Array {
  const list = peers.slice(0, MAX_PEERS_PER_FRAME).map((p) => {
    const base = [p.id, p.addresses.slice(0, MAX_ADDRS), Math.max(0, Math.round(p.ageMs))]
    return p.liveness === undefined || p.incarnation === undefined ? base : [...base, p.incarnation, p.liveness]
  })
  return frame(KIND.peers, utf8(JSON.stringify(list)))
}

/** Decodes a PEERS frame body (without the kind byte); throws `MalformedFrameError` on a wrong shape. */
export function decodePeers (body: Uint8Array): PeerAdvert[] {
  let raw: unknown
  try {
    raw = JSON.parse(fromUtf8(body))
  } catch (err) {
    throw new MalformedFrameError('peers: not JSON', { cause: err })
  }
  if (!Array.isArray(raw) || raw.length > MAX_PEERS_PER_FRAME) throw new MalformedFrameError(`peers: expected an array of at most ${MAX_PEERS_PER_FRAME} items`)
  return raw.map((item: unknown, i) => {
    if (!Array.isArray(item) || (item.length !== 3 && item.length !== 5)) throw new MalformedFrameError(`peers[${i}]: expected [id, addresses, ageMs] or [id, addresses, ageMs, incarnation, liveness]`)
    const [id, addresses, ageMs, incarnation, liveness] = item as [unknown, unknown, unknown, unknown, unknown]
    if (typeof id !== 'string' || id.length === 0 || id.length > 128) throw new MalformedFrameError(`peers[${i}]: id must be a peer id string`)
    if (!Array.isArray(addresses) || addresses.length > MAX_ADDRS || !addresses.every((a) => typeof a === 'string' && a.length <= MAX_ADDR_LENGTH)) {
      throw new MalformedFrameError(`peers[${i}]: addresses must be at most ${MAX_ADDRS} multiaddr strings`)
    }
    if (typeof ageMs !== 'number' || !Number.isSafeInteger(ageMs) || ageMs < 0) throw new MalformedFrameError(`peers[${i}]: ageMs must be a non-negative integer, got ${String(ageMs)}`)
    if (item.length === 3) return { id, addresses: addresses as string[], ageMs }
    if (liveness !== 'alive' && liveness !== 'suspect' && liveness !== 'dead') throw new MalformedFrameError(`peers[${i}]: liveness must be alive, suspect or dead`)
    if (!validIncarnation(incarnation, liveness)) {
      throw new MalformedFrameError(`peers[${i}]: incarnation ${String(incarnation)} out of range (an integer from 0 to ${MAX_INCARNATION} alive, ${MAX_INCARNATION - 1} suspect or dead)`)
    }
    return { id, addresses: addresses as string[], ageMs, incarnation, liveness }
  })
}

type Awaited = 'digest' | 'end' | 'hash'

/**
 * Reads frames until one of the `want` kinds (DIGEST, END or HASH), applying ENTRIES and
 * PEERS on the way; returns which one came and its body.
 */
async function readUntil (reader: FrameReader, side: SyncSide, want: readonly Awaited[]): Promise<{ got: Awaited, digest?: Uint8Array, hash?: number, received: number }> {
  let received = 0
  let peers = 0
  for (;;) {
    const f = await reader.expect(want.map((w) => w === 'end' ? 'the end of the exchange' : `the ${w}`).join(' or '))
    const kind = f[0]
    const body = f.subarray(1)
    if (kind === KIND.peers) {
      const page = decodePeers(body)
      peers += page.length
      if (peers > MAX_PEERS_PER_EXCHANGE) throw new MalformedFrameError(`sync: more than ${MAX_PEERS_PER_EXCHANGE} peers in one exchange, expected at most a membership table and one row`)
      const hashRow = page.findIndex((p) => p.id === MEMBERS_HASH_ROW)
      const hashAdvert = page[hashRow]
      if (hashAdvert !== undefined) {
        if (hashAdvert.liveness !== undefined || hashAdvert.addresses.length > 0 || hashAdvert.ageMs > 0xffff_ffff) {
          throw new MalformedFrameError(`sync: members hash row with ${hashAdvert.addresses.length} addresses, hash ${hashAdvert.ageMs}${hashAdvert.liveness === undefined ? '' : ', a liveness'}; expected ["${MEMBERS_HASH_ROW}", [], a 32-bit hash]`)
        }
        page.splice(hashRow, 1)
        side.onMembersHash?.(hashAdvert.ageMs)
      }
      side.onPeers(page)
    } else if (kind === KIND.entries) {
      const entries = decodeList(body, MAX_ENTRIES_PER_FRAME)
      received += entries.length
      side.onApplied(await side.store.apply(entries, side.remote))
    } else if (kind === KIND.digest && want.includes('digest')) {
      return { got: 'digest', digest: body.slice(), received }
    } else if (kind === KIND.end && want.includes('end')) {
      return { got: 'end', received }
    } else if (kind === KIND.hash && want.includes('hash')) {
      if (body.length !== 4) throw new MalformedFrameError(`sync: hash frame of ${body.length} bytes, expected 4`)
      return { got: 'hash', hash: new DataView(body.buffer, body.byteOffset, 4).getUint32(0), received }
    } else {
      throw new MalformedFrameError(`sync: unexpected frame kind ${String(kind)} while waiting for ${want.join(' or ')}`)
    }
  }
}

function hashFrame (hash: number): Uint8Array {
  const b = new Uint8Array(5)
  b[0] = KIND.hash
  new DataView(b.buffer).setUint32(1, hash >>> 0)
  return b
}

/**
 * Runs the initiating side of one exchange. With `digestHash` (the 32-bit hash of our
 * digest, as heartbeats carry it) the exchange starts with the hash alone: a replica
 * that matches answers with its peer list and ends, so a safety round between equal
 * replicas costs a few hundred bytes instead of two full digests. A replica that differs answers with its digest and the exchange goes on.
 */
export async function syncAsInitiator (stream: Stream, side: SyncSide, options: { digestHash?: number } = {}): Promise<SyncResult> {
  const reader = new FrameReader(stream, side.maxFrameBytes)
  if (options.digestHash !== undefined) {
    await sendFrames(stream, [...sidePeerFrames(side), hashFrame(options.digestHash)], side.signal)
    const answer = await readUntil(reader, side, ['digest', 'end'])
    if (answer.got === 'end') return { sent: 0, received: answer.received }
    const missing = side.store.missingFor(answer.digest ?? new Uint8Array(0))
    await sendFrames(stream, [...entryFrames(missing, side.maxFrameBytes), frame(KIND.digest, side.store.digest())], side.signal)
    const last = await readUntil(reader, side, ['end'])
    return { sent: missing.length, received: answer.received + last.received }
  }
  await sendFrames(stream, [...sidePeerFrames(side), frame(KIND.digest, side.store.digest())], side.signal)
  const { digest, received } = await readUntil(reader, side, ['digest'])
  const missing = side.store.missingFor(digest ?? new Uint8Array(0))
  await sendFrames(stream, [...entryFrames(missing, side.maxFrameBytes), Uint8Array.of(KIND.end)], side.signal)
  return { sent: missing.length, received }
}

/**
 * Pushes `entries` with our peer list and ends: what a catch-up sends a peer its gossip
 * did not reach. An exchange would cost a digest each way (about 80 bytes per entry held)
 * to deliver the one or two entries the initiator already knows the peer lacks.
 */
export async function pushAsInitiator (stream: Stream, side: SyncSide, entries: Uint8Array[]): Promise<SyncResult> {
  const frames = entryFrames(entries, side.maxFrameBytes)
  await sendFrames(stream, [...sidePeerFrames(side), ...frames, Uint8Array.of(KIND.end)], side.signal)
  return { sent: entries.length, received: 0 }
}

/** Runs the receiving side of a push: applies its ENTRIES and PEERS up to its END. */
export async function pushAsResponder (stream: Stream, side: SyncSide): Promise<SyncResult> {
  const { received } = await readUntil(new FrameReader(stream, side.maxFrameBytes), side, ['end'])
  return { sent: 0, received }
}

/** Runs the responding side of one exchange; `digestHash` is our digest's hash, compared with an initiator's HASH frame. */
export async function syncAsResponder (stream: Stream, side: SyncSide, digestHash?: () => number): Promise<SyncResult> {
  const reader = new FrameReader(stream, side.maxFrameBytes)
  const first = await readUntil(reader, side, ['digest', 'hash'])
  if (first.got === 'hash') {
    if (digestHash !== undefined && first.hash === digestHash()) {
      await sendFrames(stream, [...sidePeerFrames(side), Uint8Array.of(KIND.end)], side.signal)
      return { sent: 0, received: first.received }
    }
    await sendFrames(stream, [...sidePeerFrames(side), frame(KIND.digest, side.store.digest())], side.signal)
    const theirs = await readUntil(reader, side, ['digest'])
    const missing = side.store.missingFor(theirs.digest ?? new Uint8Array(0))
    await sendFrames(stream, [...entryFrames(missing, side.maxFrameBytes), Uint8Array.of(KIND.end)], side.signal)
    return { sent: missing.length, received: first.received + theirs.received }
  }
  const missing = side.store.missingFor(first.digest ?? new Uint8Array(0))
  await sendFrames(stream, [...sidePeerFrames(side), ...entryFrames(missing, side.maxFrameBytes), frame(KIND.digest, side.store.digest())], side.signal)
  const last = await readUntil(reader, side, ['end'])
  return { sent: missing.length, received: first.received + last.received }
}
