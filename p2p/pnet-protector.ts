import type { AbortOptions, ConnectionProtector, MessageStream, MultiaddrConnection } from '@libp2p/interface'
import { AbstractMultiaddrConnection, byteStream, type SendResult } from '@libp2p/utils'
import type { Uint8ArrayList } from 'uint8arraylist'
import { KairosError } from '../util/errors.ts'
import { loadXsalsa20, type Xsalsa20Stream } from './pnet-cipher.ts'

// The private-network layer with more than one pre-shared key, for a token rotation's
// grace (docs/decisions.md, LIFE-5). It speaks @libp2p/pnet's protocol unchanged (each
// side sends a 24-byte nonce in clear, then XSalsa20(nonce, psk) over everything), so a
// node holding one key talks to it as to any pnet node.
//
// One key per connection, picked without a round trip:
// - Answering, it cannot know the dialler's key from the nonce, but the first thing any
//   libp2p dialler sends is multistream-select's header, `\x13/multistream/1.0.0\n`
//   (20 bytes, the answering side never speaks first). It reads those 20 bytes, tries
//   each key, and keeps the one under which they decrypt to the header: a wrong key
//   turns them into noise that matches with probability 2^-160. No key matching ends
//   the connection, as pnet's own mismatch does (later, with a garbled header).
// - Dialling, it uses the newest key unless the last connection it dialled to that
//   address with it failed before the answer's header decrypted, then the next key
//   (a node that came back within the grace holds only the previous one). The
//   dialler redials, so a node switches keys for an address in one failed attempt.

/** multistream-select's header as it goes on the wire: varint length 19, `/multistream/1.0.0\n`. */
export const MULTISTREAM_HEADER = new Uint8Array(Buffer.from('\x13/multistream/1.0.0\n', 'latin1'))
const NONCE_BYTES = 24
const PSK_BYTES = 32
/** Addresses whose key choice is remembered; the oldest is forgotten first. @default 4096 */
const MAX_REMEMBERED = 4096

/** No key of this node decrypts what the dialler sent: it holds another network's token (or none of this generation's). */
export class PnetKeyMismatchError extends KairosError {
  constructor (message: string) {
    super(message)
    this.name = 'PnetKeyMismatchError'
  }
}

/** A pnet key that is not @libp2p/pnet's v1 swarm.key text. */
export class PnetKeyFormatError extends KairosError {
  constructor (message: string) {
    super(message)
    this.name = 'PnetKeyFormatError'
  }
}

/** Decodes @libp2p/pnet's v1 swarm.key text (`/key/swarm/psk/1.0.0/`, `/base16/`, 64 hex) into the 32-byte key. */
export function decodeSwarmKey (text: Uint8Array): Uint8Array {
  const lines = Buffer.from(text).toString('utf8').split(/\r\n|\r|\n/)
  const hex = lines[2] ?? ''
  if (lines[0] !== '/key/swarm/psk/1.0.0/' || lines[1] !== '/base16/' || !/^[0-9a-fA-F]{64}$/.test(hex)) {
    throw new PnetKeyFormatError('pnet key: expected swarm.key text "/key/swarm/psk/1.0.0/\\n/base16/\\n" and 64 hex characters')
  }
  return new Uint8Array(Buffer.from(hex, 'hex'))
}

/** Options of `rotatingPreSharedKey`. */
export interface RotatingPskInit {
  /**
   * The swarm.key texts to accept, newest first; read at every connection, so a key
   * dropped at the end of a grace admits no connection from then on.
   */
  keys: () => readonly Uint8Array[]
  /** Bound on the nonce exchange and the header probe when libp2p gives no signal, ms. @default 5000 */
  timeoutMs?: number
}

/** The protector as libp2p's `connectionProtector` factory. */
export function rotatingPreSharedKey (init: RotatingPskInit): () => ConnectionProtector {
  const remembered = new Map<string, number>()
  return () => new RotatingProtector(init, remembered)
}

class RotatingProtector implements ConnectionProtector {
  readonly [Symbol.toStringTag] = '@libp2p/pnet'
  private readonly init: RotatingPskInit
  /** Remote address → index (into the keys, newest first) to dial it with next. */
  private readonly remembered: Map<string, number>

  constructor (init: RotatingPskInit, remembered: Map<string, number>) {
    this.init = init
    this.remembered = remembered
  }

  async protect (connection: MessageStream, options?: AbortOptions): Promise<MessageStream> {
    const maConn = connection as MultiaddrConnection
    const xsalsa20 = await loadXsalsa20()
    const psks = this.init.keys().map(decodeSwarmKey)
    if (psks.length === 0) throw new PnetKeyMismatchError('pnet: no key to protect the connection with')
    const opts = options ?? { signal: AbortSignal.timeout(this.init.timeoutMs ?? 5_000) }
    const localNonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES))
    const bytes = byteStream(maConn)
    const addr = maConn.remoteAddr?.toString() ?? ''

    if (maConn.direction === 'inbound') {
      const [got] = await Promise.all([bytes.read({ bytes: NONCE_BYTES + MULTISTREAM_HEADER.length, ...opts }), bytes.write(localNonce, opts)])
      const all = got.subarray()
      const remoteNonce = all.slice(0, NONCE_BYTES)
      const probe = all.slice(NONCE_BYTES)
      const psk = psks.find((k) => equal(xsalsa20(remoteNonce, k).update(probe), MULTISTREAM_HEADER))
      if (psk === undefined) {
        bytes.unwrap().abort(new PnetKeyMismatchError(`pnet: the connection from ${addr} is protected with a key this node does not hold (another network token, or one whose grace has ended)`))
        throw new PnetKeyMismatchError(`pnet: the connection from ${addr} is protected with a key this node does not hold (another network token, or one whose grace has ended)`)
      }
      const inner = bytes.unwrap()
      // The probe goes back in front of what followed it, to be decrypted in order.
      inner.unshift(probe)
      return new PskStream({ maConn: inner, localNonce, remoteNonce, psk, xsalsa20 })
    }

    const index = psks.length === 1 ? 0 : Math.min(this.remembered.get(addr) ?? 0, psks.length - 1)
    const psk = psks[index] as Uint8Array
    const [got] = await Promise.all([bytes.read({ bytes: NONCE_BYTES, ...opts }), bytes.write(localNonce, opts)])
    const remoteNonce = got.subarray().slice()
    const remember = (next: number | undefined): void => {
      this.remembered.delete(addr)
      if (next === undefined || next === 0) return
      this.remembered.set(addr, next)
      if (this.remembered.size > MAX_REMEMBERED) this.remembered.delete(this.remembered.keys().next().value as string)
    }
    return new PskStream({
      maConn: bytes.unwrap(),
      localNonce,
      remoteNonce,
      psk,
      xsalsa20,
      // Only worth watching while there is another key to fall back to.
      ...(psks.length === 1
        ? {}
        : {
            onVerdict: (ok: boolean) => { remember(ok ? index : (index + 1) % psks.length) }
          })
    })
  }
}

function equal (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

interface PskStreamInit {
  maConn: MultiaddrConnection
  localNonce: Uint8Array
  remoteNonce: Uint8Array
  psk: Uint8Array
  xsalsa20: (nonce: Uint8Array, key: Uint8Array) => Xsalsa20Stream
  /** Dialling side: called once, true when the answer's first bytes decrypt to the multistream header, false when the connection ends first or they do not. */
  onVerdict?: (ok: boolean) => void
}

/** @libp2p/pnet's box stream (the same cipher and framing), with the dialling side's verdict on the key. */
class PskStream extends AbstractMultiaddrConnection {
  private readonly maConn: MultiaddrConnection
  private readonly inboundXor: Xsalsa20Stream
  private readonly outboundXor: Xsalsa20Stream

  constructor (init: PskStreamInit) {
    super({ log: init.maConn.log.newScope('pnet'), remoteAddr: init.maConn.remoteAddr, direction: init.maConn.direction })
    if (init.psk.length !== PSK_BYTES) throw new PnetKeyFormatError(`pnet: key must be ${PSK_BYTES} bytes, got ${init.psk.length}`)
    this.inboundXor = init.xsalsa20(init.remoteNonce, init.psk)
    this.outboundXor = init.xsalsa20(init.localNonce, init.psk)
    this.maConn = init.maConn
    let verdict = init.onVerdict
    let head = new Uint8Array(0)
    const judge = (plain: Uint8Array): void => {
      if (verdict === undefined) return
      head = Buffer.concat([head, plain.subarray(0, MULTISTREAM_HEADER.length - head.length)])
      if (head.length < MULTISTREAM_HEADER.length) return
      const v = verdict
      verdict = undefined
      v(equal(head, MULTISTREAM_HEADER))
    }
    const receive = (data: Uint8Array): void => {
      const plain = this.inboundXor.update(data)
      judge(plain)
      this.onData(plain)
    }
    this.maConn.addEventListener('message', (evt) => {
      const data = evt.data
      if (data instanceof Uint8Array) receive(data)
      else for (const buf of data) receive(buf)
    })
    this.maConn.addEventListener('drain', () => { this.onMuxerDrain() })
    this.maConn.addEventListener('close', (evt) => {
      if (verdict !== undefined) { const v = verdict; verdict = undefined; v(false) }
      if (evt.error != null) {
        if (evt.local === true) this.abort(evt.error)
        else this.onRemoteReset()
      } else {
        this.onTransportClosed()
      }
    })
  }

  async sendClose (options?: AbortOptions): Promise<void> { await this.maConn.close(options) }
  sendData (data: Uint8ArrayList): SendResult {
    return { sentBytes: data.byteLength, canSendMore: this.maConn.send(this.outboundXor.update(data.subarray())) }
  }

  sendReset (err: Error): void { this.maConn.abort(err) }
  sendPause (): void { this.maConn.pause() }
  sendResume (): void { this.maConn.resume() }
}
