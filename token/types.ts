/** The public, non-secret settings of an imported Kairos/edgevpn token. */
export interface KairosTokenSettings {
  /** `room` (a secret of the Kairos network; part of our key material). */
  room: string
  /** `rendezvous` (a secret of the Kairos network; part of our key material). */
  rendezvous: string
  /** `mdns` (a secret of the Kairos network; part of our key material). */
  mdns: string
  /** `otp.dht.interval`, seconds. @default 9000 (edgevpn's) */
  dhtInterval: number
  /** `otp.crypto.interval`, seconds. @default 9000 (edgevpn's) */
  cryptoInterval: number
  /** `max_message_size`, bytes. @default 20971520 (edgevpn's) */
  maxMessageSize: number
}

/**
 * A parsed network token: ours (`kp1…`) or an imported Kairos/edgevpn token. Every
 * key of the network is derived from `secret` by `deriveKeys`.
 */
export interface NetworkToken {
  /** `kairos-p2p` for our own tokens, `kairos` for an imported Kairos/edgevpn token. */
  kind: 'kairos-p2p' | 'kairos'
  /** Token format version; for `kairos` tokens, the version of our import mapping (1). */
  version: number
  /** The input, normalized: lowercase for ours, base64 without line breaks for Kairos. */
  text: string
  /** Secret input keying material for HKDF. */
  secret: Uint8Array
  /** The Kairos token's fields, only for `kind: 'kairos'`. */
  kairos?: KairosTokenSettings
}
