import { createHash } from 'node:crypto'
import { MalformedFrameError } from './errors.ts'
import { concatBytes, decodeVarint, encodeVarint } from './framing.ts'

/**
 * The heartbeat frame peers send each other on a long-lived stream, once per
 * `heartbeatIntervalMs`. In steady state it is three bytes: receiving it is the
 * sign of life. A node that lacks direct contact with some members lists their
 * short ids in `wants`; its neighbours answer in their next heartbeat with how
 * long ago they last heard from each one directly (`seen`), so liveness is
 * relayed one hop without all-pairs connections and without loops (answers
 * carry only first-hand evidence).
 *
 *   [version=1][varint n][n × u32 want] [varint m][m × (u32 id, varint ageMs)]
 */

/** Protocol id suffix under the token's sync protocol prefix. */
export const HEARTBEAT_PROTOCOL_SUFFIX = '/heartbeat/1.0.0'
const VERSION = 1
/** Most ids either list may hold. */
export const MAX_HEARTBEAT_IDS = 256

/** A decoded heartbeat. */
export interface Heartbeat {
  /** Short ids of members the sender wants news of. */
  wants: number[]
  /** First-hand sightings the sender answers with. */
  seen: Array<{ id: number, ageMs: number }>
}

/** The 32-bit short id of a peer id used in heartbeats (first 4 bytes of its SHA-256). */
export function shortId (peerId: string): number {
  return createHash('sha256').update(peerId).digest().readUInt32BE(0)
}

function u32 (n: number): Uint8Array {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, n >>> 0)
  return b
}

/** Encodes a heartbeat; lists longer than `MAX_HEARTBEAT_IDS` are truncated. */
export function encodeHeartbeat (hb: Heartbeat): Uint8Array {
  const wants = hb.wants.slice(0, MAX_HEARTBEAT_IDS)
  const seen = hb.seen.slice(0, MAX_HEARTBEAT_IDS)
  const parts: Uint8Array[] = [Uint8Array.of(VERSION), encodeVarint(wants.length)]
  for (const w of wants) parts.push(u32(w))
  parts.push(encodeVarint(seen.length))
  for (const s of seen) parts.push(u32(s.id), encodeVarint(Math.max(0, Math.round(s.ageMs))))
  return concatBytes(parts)
}

/** Decodes a heartbeat; throws `MalformedFrameError` on anything that does not fit the layout. */
export function decodeHeartbeat (body: Uint8Array): Heartbeat {
  if (body[0] !== VERSION) throw new MalformedFrameError(`heartbeat: version ${body[0]}, expected ${VERSION}`)
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength)
  let at = 1
  const count = (what: string): number => {
    const v = decodeVarint(body, at)
    if (v === undefined) throw new MalformedFrameError(`heartbeat: truncated ${what} count`)
    if (v.value > MAX_HEARTBEAT_IDS) throw new MalformedFrameError(`heartbeat: ${v.value} ${what}, at most ${MAX_HEARTBEAT_IDS} expected`)
    at += v.bytes
    return v.value
  }
  const id = (): number => {
    if (at + 4 > body.length) throw new MalformedFrameError('heartbeat: truncated id')
    const v = view.getUint32(at)
    at += 4
    return v
  }
  const wants: number[] = []
  for (let i = count('wants'); i > 0; i--) wants.push(id())
  const seen: Heartbeat['seen'] = []
  for (let i = count('sightings'); i > 0; i--) {
    const sid = id()
    const age = decodeVarint(body, at)
    if (age === undefined) throw new MalformedFrameError('heartbeat: truncated age')
    at += age.bytes
    seen.push({ id: sid, ageMs: age.value })
  }
  if (at !== body.length) throw new MalformedFrameError(`heartbeat: ${body.length - at} trailing bytes`)
  return { wants, seen }
}
