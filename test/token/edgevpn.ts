// Builds network tokens the way edgevpn's GenerateNewConnectionData does (as used by
// `kairos-agent`/`edgevpn -g -b`): otp keys and room from gotp.RandomSecret(32)
// (32 characters of A-Z2-7, as in the tokens edgevpn's documentation shows),
// rendezvous and mdns from RandStringRunes(32) (letters a-zA-Z), intervals 9000,
// length 32, max message size 20 MiB; yaml.v2 Marshal layout (2-space indent,
// struct field order), then base64 std with padding.
import type { RandomSource } from '../../util/random.ts'

const BASE32_STD = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'

/** gotp.RandomSecret(n) (xlzd/gotp as edgevpn pins it): n characters of the base32 alphabet. */
export function gotpRandomSecret (random: RandomSource, n: number): string {
  let out = ''
  for (let i = 0; i < n; i++) out += BASE32_STD[random.int(BASE32_STD.length)]
  return out
}

/** edgevpn utils.RandStringRunes(n). */
export function randStringRunes (random: RandomSource, n: number): string {
  let out = ''
  for (let i = 0; i < n; i++) out += LETTERS[random.int(LETTERS.length)]
  return out
}

/** The fields of an edgevpn connection config. */
export interface EdgevpnConfig {
  dhtKey: string
  cryptoKey: string
  room: string
  rendezvous: string
  mdns: string
  interval: number
  length: number
  maxMessageSize: number
}

/** A new config with edgevpn's generator defaults. */
export function edgevpnConfig (random: RandomSource): EdgevpnConfig {
  return {
    room: gotpRandomSecret(random, 32),
    rendezvous: randStringRunes(random, 32),
    mdns: randStringRunes(random, 32),
    dhtKey: gotpRandomSecret(random, 32),
    cryptoKey: gotpRandomSecret(random, 32),
    interval: 9000,
    length: 32,
    maxMessageSize: 20 << 20
  }
}

/** yaml.v2 Marshal output of the config. */
export function edgevpnYaml (c: EdgevpnConfig): string {
  return [
    'otp:',
    '  dht:',
    `    interval: ${c.interval}`,
    `    key: ${c.dhtKey}`,
    `    length: ${c.length}`,
    '  crypto:',
    `    interval: ${c.interval}`,
    `    key: ${c.cryptoKey}`,
    `    length: ${c.length}`,
    `room: ${c.room}`,
    `rendezvous: ${c.rendezvous}`,
    `mdns: ${c.mdns}`,
    `max_message_size: ${c.maxMessageSize}`,
    ''
  ].join('\n')
}

/** base64 std of any text, as edgevpn's token is. */
export function base64 (text: string): string {
  return Buffer.from(text, 'utf8').toString('base64')
}

/** A whole edgevpn network token. */
export function edgevpnToken (random: RandomSource): string {
  return base64(edgevpnYaml(edgevpnConfig(random)))
}

// The sample configuration printed in edgevpn's token documentation ("Anatomy of a
// configuration file"), i.e. the output of `edgevpn -g`.
export const EDGEVPN_DOCS_EXAMPLE = `otp:
  dht:
    interval: 9000
    key: LHKNKT6YZYQGGY3JANGXMLJTHRH7SW3C
    length: 32
  crypto:
    interval: 9000
    key: SGIB6NYJMSRJF2AJDGUI2NDB5LBVCPLS
    length: 32
room: ubONSBFkdWbzkSBTglFzOhWvczTBQJOR
rendezvous: exoHOajMYMSPrHhevAEEjnCHLssFfzfT
mdns: VoZfePlTchbSrdmivaqaOyQyEnTMlugi
max_message_size: 20971520
`
