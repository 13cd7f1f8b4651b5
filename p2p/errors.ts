import { InputError, KairosError } from '../util/errors.ts'

/** A frame from a peer that does not decode: bad length prefix, truncated, or wrong layout. */
export class MalformedFrameError extends KairosError {
  constructor (message: string, options: { cause?: unknown } = {}) {
    super(message, options)
    this.name = 'MalformedFrameError'
  }
}

/**
 * The peer ended a stream cleanly before the exchange was complete: it gave up (its own
 * deadline passed on a starved box), is stopping, or dropped the connection. Nothing was
 * wrong with what it sent, so it is not counted as a malformed frame.
 */
export class StreamEndedError extends KairosError {
  constructor (message: string) {
    super(message)
    this.name = 'StreamEndedError'
  }
}

/** A frame from a peer whose announced length exceeds the protocol's bound. */
export class FrameTooLargeError extends KairosError {
  /** The announced length. */
  readonly length: number
  /** The bound it exceeded. */
  readonly limit: number

  constructor (length: number, limit: number) {
    super(`frame of ${length} bytes exceeds the limit of ${limit} bytes`)
    this.name = 'FrameTooLargeError'
    this.length = length
    this.limit = limit
  }
}

/** A peer that failed the token proof, or did not give it in time. */
export class AdmissionError extends KairosError {
  /** Why admission failed; the node counts failures by this reason. */
  readonly reason: AdmissionFailure

  constructor (reason: AdmissionFailure, message: string, options: { cause?: unknown } = {}) {
    super(message, options)
    this.name = 'AdmissionError'
    this.reason = reason
  }
}

/** Reasons an admission fails; `revoked`: the peer was removed from the site. */
export type AdmissionFailure = 'bad-proof' | 'timeout' | 'protocol' | 'revoked'

/**
 * The identity file in the state dir exists but cannot be read as a libp2p private key.
 * Exit code 2 when its content is damaged (the operator must act), 1 for an I/O failure.
 */
export class IdentityFileError extends KairosError {
  constructor (message: string, options: { cause?: unknown, exitCode?: number } = {}) {
    super(message, options)
    this.name = 'IdentityFileError'
  }
}

/** A multiaddr in `p2p.listen`, `p2p.bootstrap_peers` or given to `dial()` that does not parse or lacks a part. */
export class P2PAddressError extends InputError {
  constructor (message: string, options: { cause?: unknown } = {}) {
    super(message, options)
    this.name = 'P2PAddressError'
  }
}

/** An operation on a node that is not running. */
export class NodeNotStartedError extends KairosError {
  constructor (operation: string) {
    super(`p2p node: ${operation} needs a started node (call start() first)`)
    this.name = 'NodeNotStartedError'
  }
}
