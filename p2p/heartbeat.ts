import { createHash } from 'node:crypto'
import { MalformedFrameError } from './errors.ts'
import { concatBytes, decodeVarint, encodeVarint } from './framing.ts'
import { MAX_INCARNATION } from './membership.ts'

/**
 * The heartbeat a node sends its ring successors once per
 * `heartbeatIntervalMs`, on one long-lived stream per successor. Receiving it
 * is the sign of life; it also carries the sender's incarnation, a 32-bit
 * hash of its state digest, so anti-entropy runs only with a peer whose
 * replica differs (plus a slow safety-net round), and a 32-bit hash of its
 * membership table (`Membership.digest`), so a peer that missed a rumour is
 * told by an exchange.
 *
 *   version 3: [3][flags u8][varint incarnation][u32 digest hash][u32 members hash]
 *   version 2: [2][flags u8][varint incarnation][u32 digest hash]
 *
 * Version 3 travels on `HEARTBEAT_PROTOCOL_SUFFIX`, version 2 on
 * `HEARTBEAT_V2_PROTOCOL_SUFFIX`, which a node still serves and offers second, so
 * nodes from before the members hash heartbeat with it as before.
 *
 * Flag `LAST` says "you are no longer my successor, stop watching me".
 */

/** Protocol id suffix under the token's sync protocol prefix. */
export const HEARTBEAT_PROTOCOL_SUFFIX = '/heartbeat/3.0.0'
/** The suffix of the version 2 protocol (no members hash), for nodes that predate version 3. */
export const HEARTBEAT_V2_PROTOCOL_SUFFIX = '/heartbeat/2.0.0'
/** Flag: the sender stops heartbeating this receiver (ring change). */
export const HEARTBEAT_LAST = 1

/** A decoded heartbeat. */
export interface Heartbeat {
  flags: number
  incarnation: number
  digestHash: number
  /** The sender's membership digest; undefined in a version 2 frame. */
  membersHash?: number
}

const shortIds = new Map<string, number>()
/** Most short ids kept; a site has far fewer peers, so the cache only stops unbounded growth. */
const SHORT_ID_CACHE = 4096

/**
 * The 32-bit short id of a peer id (first 4 bytes of its SHA-256); orders the heartbeat
 * ring. Cached: the ring is recomputed for every membership change and mesh round.
 */
export function shortId (peerId: string): number {
  let id = shortIds.get(peerId)
  if (id === undefined) {
    id = createHash('sha256').update(peerId).digest().readUInt32BE(0)
    if (shortIds.size >= SHORT_ID_CACHE) shortIds.clear()
    shortIds.set(peerId, id)
  }
  return id
}

/** The 32-bit hash of a state digest carried in heartbeats. */
export function digestHash (digest: Uint8Array): number {
  return createHash('sha256').update(digest).digest().readUInt32BE(0)
}

/** Encodes a heartbeat (about fourteen bytes): version 3 with a members hash, version 2 without. */
export function encodeHeartbeat (hb: Heartbeat): Uint8Array {
  const hashes = hb.membersHash === undefined ? [hb.digestHash] : [hb.digestHash, hb.membersHash]
  const h = new Uint8Array(4 * hashes.length)
  hashes.forEach((x, i) => { new DataView(h.buffer).setUint32(4 * i, x >>> 0) })
  return concatBytes([Uint8Array.of(hb.membersHash === undefined ? 2 : 3, hb.flags & 0xff), encodeVarint(hb.incarnation), h])
}

/** Decodes a heartbeat of version 2 or 3; throws `MalformedFrameError` on anything that does not fit the layout. */
export function decodeHeartbeat (body: Uint8Array): Heartbeat {
  const version = body[0]
  if (version !== 2 && version !== 3) throw new MalformedFrameError(`heartbeat: version ${String(version)}, expected 2 or 3`)
  const flags = body[1]
  if (flags === undefined) throw new MalformedFrameError('heartbeat: truncated flags')
  const inc = decodeVarint(body, 2)
  if (inc === undefined) throw new MalformedFrameError('heartbeat: truncated incarnation')
  if (inc.value > MAX_INCARNATION) throw new MalformedFrameError(`heartbeat: incarnation ${inc.value}, expected at most ${MAX_INCARNATION}`)
  const at = 2 + inc.bytes
  const hashes = version === 3 ? 2 : 1
  if (body.length !== at + 4 * hashes) throw new MalformedFrameError(`heartbeat: ${body.length} bytes, expected ${at + 4 * hashes}`)
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength)
  const hb: Heartbeat = { flags, incarnation: inc.value, digestHash: view.getUint32(at) }
  if (version === 3) hb.membersHash = view.getUint32(at + 4)
  return hb
}

/** On a quiet site the heartbeat interval grows to this multiple of the configured one. */
export const QUIET_HEARTBEAT_FACTOR = 4
/** Each beat on a quiet site comes at most this much later than the one before. */
export const QUIET_HEARTBEAT_STEP = 1.5

/**
 * The interval to the next heartbeat: the configured `baseMs` while the site is busy,
 * growing by `QUIET_HEARTBEAT_STEP` per beat up to `QUIET_HEARTBEAT_FACTOR × baseMs`
 * while it is quiet. A watcher suspects a peer only after three of its recent longest
 * gaps (see membership.ts), so a gap that grows by less than that never looks like
 * silence: the watchers' thresholds follow the slower pace with no field in the frame,
 * also on nodes that predate it.
 */
export function nextBeatInterval (currentMs: number, baseMs: number, quiet: boolean): number {
  return quiet ? Math.min(QUIET_HEARTBEAT_FACTOR * baseMs, Math.round(currentMs * QUIET_HEARTBEAT_STEP)) : baseMs
}

/**
 * The ring successors of `self` among `peers`: the next `k` after it in
 * short-id order (wrapping). Each node heartbeats its successors, so with a
 * shared view every node is watched by exactly `k` others.
 */
export function ringSuccessors (self: string, peers: string[], k: number): string[] {
  const ring = ringOrder([self, ...peers])
  const at = ring.indexOf(self)
  const out: string[] = []
  for (let i = 1; i < ring.length && out.length < k; i++) {
    const next = ring[(at + i) % ring.length]
    if (next !== undefined) out.push(next)
  }
  return out
}

/**
 * The ring predecessors of `self` among `peers`: the `k` before it in short-id order
 * (wrapping), the nodes whose successors include `self`, so whose heartbeats are due to it.
 */
export function ringPredecessors (self: string, peers: string[], k: number): string[] {
  const ring = ringOrder([self, ...peers])
  const at = ring.indexOf(self)
  const out: string[] = []
  for (let i = 1; i < ring.length && out.length < k; i++) {
    const prev = ring[(at - i + ring.length) % ring.length]
    if (prev !== undefined) out.push(prev)
  }
  return out
}

/** `ids` in ring order (short id, then peer id), without duplicates. */
export function ringOrder (ids: Iterable<string>): string[] {
  return [...new Set(ids)].map((id) => ({ id, s: shortId(id) })).sort((a, b) => a.s - b.s || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map((x) => x.id)
}
