import { createHmac, timingSafeEqual } from 'node:crypto'
import type { Stream } from '@libp2p/interface'
import type { RandomSource } from '../util/random.ts'
import { AdmissionError } from './errors.ts'
import { FrameReader, concatBytes, encodeVarint, utf8 } from './framing.ts'
import { sendFrames } from './stream-io.ts'

/**
 * Admission: a mutual proof that both ends of a connection hold the network
 * token. pnet already refuses connections without the pre-shared key; this
 * proof binds the admission key to both peer ids (authenticated by noise) and
 * to a fresh nonce from each side, so a recorded exchange cannot be replayed
 * to another peer or on another connection. The two MACs carry different role
 * labels, so a responder's answer can never be used as an initiator's proof.
 *
 *   initiator → responder  [version][nonceI]
 *   responder → initiator  [nonceR][mac(responder)]
 *   initiator → responder  [mac(initiator)]
 *   responder → initiator  [ok]
 */

/** Protocol id suffix under the token's sync protocol prefix. */
export const ADMIT_PROTOCOL_SUFFIX = '/admit/1.0.0'
const VERSION = 1
const NONCE_BYTES = 32
const MAC_BYTES = 32
const OK = 1
const LABEL = 'kairos-p2p admission v1'

/** Which end of the exchange computes the MAC. */
export type AdmissionRole = 'initiator' | 'responder'

/** The proof one side gives: HMAC-SHA256 under the admission key over the role, both ids and both nonces. */
export function admissionProof (key: Uint8Array, role: AdmissionRole, initiator: string, responder: string, nonceI: Uint8Array, nonceR: Uint8Array): Uint8Array {
  const h = createHmac('sha256', key)
  for (const part of [utf8(LABEL), utf8(role), utf8(initiator), utf8(responder), nonceI, nonceR]) {
    h.update(encodeVarint(part.length))
    h.update(part)
  }
  return new Uint8Array(h.digest())
}

/** Constant-time comparison of a received proof with the expected one. */
export function proofMatches (expected: Uint8Array, received: Uint8Array): boolean {
  return expected.length === received.length && timingSafeEqual(expected, received)
}

/** What an admission exchange needs. */
export interface AdmissionContext {
  /** The admission key derived from the token. */
  key: Uint8Array
  /** Our peer id. */
  self: string
  /** The remote peer id as authenticated by the connection's encryption. */
  remote: string
  random: RandomSource
  /** Aborts the exchange (timeout or stop). */
  signal: AbortSignal
  /** Responder only: called once the initiator's proof checked out, before the acceptance is sent. */
  onAccepted?: () => void
}

function expectLength (frame: Uint8Array, length: number, what: string): void {
  if (frame.length !== length) throw new AdmissionError('protocol', `admission: ${what} of ${frame.length} bytes, expected ${length}`)
}

/** Runs the initiator's side; resolves when both sides accepted, throws `AdmissionError` otherwise. */
export async function admitAsInitiator (stream: Stream, ctx: AdmissionContext): Promise<void> {
  const reader = new FrameReader(stream, 256)
  const nonceI = ctx.random.bytes(NONCE_BYTES)
  await sendFrames(stream, [concatBytes([Uint8Array.of(VERSION), nonceI])], ctx.signal)
  const answer = await readOrProtocolError(reader, 'responder nonce and proof')
  expectLength(answer, NONCE_BYTES + MAC_BYTES, 'responder answer')
  const nonceR = answer.subarray(0, NONCE_BYTES)
  const macR = answer.subarray(NONCE_BYTES)
  if (!proofMatches(admissionProof(ctx.key, 'responder', ctx.self, ctx.remote, nonceI, nonceR), macR)) {
    throw new AdmissionError('bad-proof', `admission: peer ${ctx.remote} gave a wrong token proof`)
  }
  await sendFrames(stream, [admissionProof(ctx.key, 'initiator', ctx.self, ctx.remote, nonceI, nonceR)], ctx.signal)
  const ok = await readOrProtocolError(reader, 'acceptance')
  if (ok.length !== 1 || ok[0] !== OK) throw new AdmissionError('bad-proof', `admission: peer ${ctx.remote} refused our token proof`)
}

/** Runs the responder's side; resolves when the initiator's proof checked out, throws `AdmissionError` otherwise. */
export async function admitAsResponder (stream: Stream, ctx: AdmissionContext): Promise<void> {
  const reader = new FrameReader(stream, 256)
  const hello = await readOrProtocolError(reader, 'initiator nonce')
  expectLength(hello, 1 + NONCE_BYTES, 'initiator hello')
  if (hello[0] !== VERSION) throw new AdmissionError('protocol', `admission: version ${hello[0]}, expected ${VERSION}`)
  const nonceI = hello.slice(1)
  const nonceR = ctx.random.bytes(NONCE_BYTES)
  await sendFrames(stream, [concatBytes([nonceR, admissionProof(ctx.key, 'responder', ctx.remote, ctx.self, nonceI, nonceR)])], ctx.signal)
  const macI = await readOrProtocolError(reader, 'initiator proof')
  if (!proofMatches(admissionProof(ctx.key, 'initiator', ctx.remote, ctx.self, nonceI, nonceR), macI)) {
    await sendFrames(stream, [Uint8Array.of(0)], ctx.signal).catch(() => {})
    throw new AdmissionError('bad-proof', `admission: peer ${ctx.remote} gave a wrong token proof`)
  }
  ctx.onAccepted?.()
  await sendFrames(stream, [Uint8Array.of(OK)], ctx.signal)
}

async function readOrProtocolError (reader: FrameReader, what: string): Promise<Uint8Array> {
  try {
    return await reader.expect(what)
  } catch (err) {
    if (err instanceof AdmissionError) throw err
    throw new AdmissionError('protocol', `admission: reading ${what} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  }
}
