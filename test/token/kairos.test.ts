import { describe, expect, it } from 'vitest'
import { seededRandom } from '../../util/random.ts'
import { deriveKeys, KAIROS_DEFAULTS, parseToken } from '../../token/index.ts'
import { kairosKeyMaterial } from '../../token/kairos.ts'
import { base64, EDGEVPN_DOCS_EXAMPLE as DOCS_EXAMPLE, edgevpnConfig, edgevpnToken, edgevpnYaml } from './edgevpn.ts'


describe('Kairos/edgevpn token import', () => {
  it('imports tokens made the way edgevpn makes them', () => {
    for (let seed = 1; seed <= 50; seed++) {
      const config = edgevpnConfig(seededRandom(seed))
      const text = base64(edgevpnYaml(config))
      expect(text.startsWith('b3RwOgogIGRodDoK')).toBe(true) // "otp:\n  dht:\n", as every edgevpn token starts
      const token = parseToken(text)
      expect(token.kind).toBe('kairos')
      expect(token.version).toBe(1)
      expect(token.text).toBe(text)
      expect(token.kairos).toEqual({
        room: config.room,
        rendezvous: config.rendezvous,
        mdns: config.mdns,
        dhtInterval: 9000,
        cryptoInterval: 9000,
        maxMessageSize: 20971520
      })
      expect(token.secret).toEqual(kairosKeyMaterial([config.dhtKey, config.cryptoKey, config.room, config.rendezvous, config.mdns]))
    }
  })

  it('imports the example from edgevpn\'s documentation', () => {
    const token = parseToken(base64(DOCS_EXAMPLE))
    expect(token.kairos).toMatchObject({ room: 'ubONSBFkdWbzkSBTglFzOhWvczTBQJOR', mdns: 'VoZfePlTchbSrdmivaqaOyQyEnTMlugi', maxMessageSize: 20971520 })
  })

  it('reads a token wrapped at 76 columns (base64 without -w0), with surrounding whitespace', () => {
    const text = edgevpnToken(seededRandom(3))
    const wrapped = (text.match(/.{1,76}/g) ?? []).join('\n')
    expect(wrapped).toContain('\n')
    expect(parseToken(`\n${wrapped}\n`).secret).toEqual(parseToken(text).secret)
  })

  it('keys depend on the secret fields only, not on YAML layout or numeric settings', () => {
    const config = edgevpnConfig(seededRandom(8))
    const flow = `{otp: {crypto: {key: "${config.cryptoKey}", interval: 60}, dht: {key: ${config.dhtKey}}}, ` +
      `mdns: '${config.mdns}', rendezvous: ${config.rendezvous}, room: ${config.room}, max_message_size: 1024}`
    const a = parseToken(base64(edgevpnYaml(config)))
    const b = parseToken(base64(flow))
    expect(b.kairos).toMatchObject({ dhtInterval: KAIROS_DEFAULTS.interval, cryptoInterval: 60, maxMessageSize: 1024 })
    expect(deriveKeys(b).fingerprint).toBe(deriveKeys(a).fingerprint)
    expect(deriveKeys(b).stateKey).toEqual(deriveKeys(a).stateKey)
  })

  it('every secret field changes the keys', () => {
    const config = edgevpnConfig(seededRandom(9))
    const base = deriveKeys(parseToken(base64(edgevpnYaml(config)))).fingerprint
    for (const field of ['dhtKey', 'cryptoKey', 'room', 'rendezvous', 'mdns'] as const) {
      const changed = { ...config, [field]: config[field].slice(0, -1) + (config[field].endsWith('A') ? 'B' : 'A') }
      expect(deriveKeys(parseToken(base64(edgevpnYaml(changed)))).fingerprint, field).not.toBe(base)
    }
  })

  it('keeps values that look like numbers as written (YAML read as strings, as Go does)', () => {
    const config = { ...edgevpnConfig(seededRandom(10)), room: '0123', mdns: '1e3' }
    const token = parseToken(base64(edgevpnYaml(config)))
    expect(token.kairos?.room).toBe('0123')
    expect(token.kairos?.mdns).toBe('1e3')
  })

  it('key material is length-prefixed so fields cannot be shifted into each other', () => {
    expect(kairosKeyMaterial(['ab', 'c', 'x', 'y', 'z'])).not.toEqual(kairosKeyMaterial(['a', 'bc', 'x', 'y', 'z']))
    expect(Buffer.from(kairosKeyMaterial(['ab', 'c'])).toString('hex')).toBe('00000002616200000001' + '63')
  })
})
