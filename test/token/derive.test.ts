import { hkdfSync } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { preSharedKey } from '@libp2p/pnet'
import { seededRandom } from '../../util/random.ts'
import { deriveKeys, encodeToken, generateToken, parseToken, type DerivedKeys } from '../../token/index.ts'
import { base64, EDGEVPN_DOCS_EXAMPLE } from './edgevpn.ts'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

// A fixed token of ours (secret bytes 0..31) and a fixed Kairos token (the sample
// configuration from edgevpn's token documentation, base64 as `edgevpn -g -b`).
const OURS = 'kp1pqqqsyqcyq5rqwzqfpg9scrgwpugpzysnzs23v9ccrydpk8qarc0sjxjhvy'
const KAIROS = base64(EDGEVPN_DOCS_EXAMPLE)

const NOW = 1_800_000_000_000
const EPOCH_MS = 3_600_000

function vector (keys: DerivedKeys): Record<string, string | number> {
  const rv = keys.rendezvousKey(NOW, EPOCH_MS)
  return {
    pnetKey: new TextDecoder().decode(keys.pnetKey),
    mdnsTag: keys.mdnsTag,
    mdnsServiceName: keys.mdnsServiceName,
    dhtProtocol: keys.dhtProtocol,
    gossipTopic: keys.gossipTopic,
    syncProtocol: keys.syncProtocol,
    stateKey: hex(keys.stateKey),
    admissionKey: hex(keys.admissionKey),
    fingerprint: keys.fingerprint,
    epoch: rv.epoch,
    rendezvousCurrent: hex(rv.current),
    rendezvousPrevious: hex(rv.previous)
  }
}

describe('derivation vectors (a change here changes every deployed network)', () => {
  it('our fixed token', () => {
    expect(encodeToken(new Uint8Array(32).map((_, i) => i))).toBe(OURS)
    expect(vector(deriveKeys(parseToken(OURS)))).toEqual({
      pnetKey: '/key/swarm/psk/1.0.0/\n/base16/\n0e3c55575e2f390929566f9c5e1e1126d89136a03b68ead2ad4fb7e1e3b45c6d',
      mdnsTag: 'kp-zx2bpw4syu4mxtuu',
      mdnsServiceName: '_kp-zx2bpw4syu4mxtuu._udp.local',
      dhtProtocol: '/kairos-p2p/zhbfgghm5ocluna7/kad/1.0.0',
      gossipTopic: '/kairos-p2p/fftrs3uscxe6wcwo/state/1.0.0',
      syncProtocol: '/kairos-p2p/pxvy5knonfheh4lv',
      stateKey: '79f8e9ae1f255a65ade537297fd4188dcfed7c32a97002f1c2043d99b876b897',
      admissionKey: '75c77d19c5f8f781896326a65068a785ca0163e43892f308c2e4a3ea36c280c2',
      fingerprint: 'kdez-hykn-erug-22da',
      epoch: 500000,
      rendezvousCurrent: 'ee7060d13fe45abbedc3f73352fcd2bc4eac4dce0e70621d9a12b0127e1cc6e9',
      rendezvousPrevious: 'd9603e9ad802818eca390f7a0927243efc22f33c74eeca1e7a3b324d1c0b6579'
    })
  })

  it('our fixed token with network id site-a', () => {
    const v = vector(deriveKeys(parseToken(OURS), 'site-a'))
    expect(v).toMatchObject({
      gossipTopic: '/kairos-p2p/j2xx6oy4qzq75jnd/state/1.0.0',
      syncProtocol: '/kairos-p2p/rypqzrnwk3y3q7ir',
      stateKey: '1759805938bd229445759f5124db49f61da6a253be0232dd66769c4d51190938',
      admissionKey: '32edf434659d5b6b328a3808ada9f8722bd143fad9826108ae85abf22f61afb8'
    })
  })

  it('the fixed Kairos token', () => {
    expect(vector(deriveKeys(parseToken(KAIROS)))).toEqual({
      pnetKey: '/key/swarm/psk/1.0.0/\n/base16/\n689bfc52daaec63b91d0f23c1f7e097393eba7be2c02eedb53d5438419ae24e2',
      mdnsTag: 'kp-d3dy5lh3i7esyb4e',
      mdnsServiceName: '_kp-d3dy5lh3i7esyb4e._udp.local',
      dhtProtocol: '/kairos-p2p/wy4q74ybkerrw6tp/kad/1.0.0',
      gossipTopic: '/kairos-p2p/dcztghdqb5o7dk7h/state/1.0.0',
      syncProtocol: '/kairos-p2p/ieecf4jj2u3nr6ij',
      stateKey: '192ba1a6601f54fa4c5ff93e3a5fae099b76c0d9a41473a585d4dd673d14d5b5',
      admissionKey: '2297a32a57fbac664da8717284cd34a0adf07a9922e11d2eee4ec98f397c7b9d',
      fingerprint: 'xjmj-dryy-rqkz-iqsl',
      epoch: 500000,
      rendezvousCurrent: 'c69194b38ecf9f689d9e85a7ea2c7faabea844956ab6b725931d61ada0a5b420',
      rendezvousPrevious: '8cba82eaefeeed048603521b24ae1f4a127e2a550dda40aae4e4a46cafb8a42c'
    })
  })

  it('is HKDF-SHA256 with salt kairos-p2p/<kind>/v<version> and info <label>[\\0<scope>]', () => {
    const token = parseToken(OURS)
    const salt = 'kairos-p2p/kairos-p2p/v1'
    const hkdf = (info: string): string => hex(new Uint8Array(hkdfSync('sha256', token.secret, salt, info, 32)))
    const keys = deriveKeys(token, 'site-a')
    expect(hex(keys.stateKey)).toBe(hkdf('state-key\u0000site-a'))
    expect(hex(keys.admissionKey)).toBe(hkdf('admission-key\u0000site-a'))
    expect(hex(keys.rendezvousKey(NOW, EPOCH_MS).current)).toBe(hkdf('rendezvous\u0000500000'))
    expect(new TextDecoder().decode(keys.pnetKey).endsWith(hkdf('pnet-psk'))).toBe(true)
  })
})

describe('deriveKeys', () => {
  const a = parseToken(generateToken(seededRandom(1)))
  const b = parseToken(generateToken(seededRandom(2)))

  it('gives every derived secret a distinct value', () => {
    const k = deriveKeys(a)
    const rv = k.rendezvousKey(NOW, EPOCH_MS)
    const psk = new TextDecoder().decode(k.pnetKey).split('\n')[2] as string
    const values = [psk, hex(k.stateKey), hex(k.admissionKey), hex(rv.current), hex(rv.previous), hex(a.secret)]
    expect(new Set(values).size).toBe(values.length)
    expect(k.stateKey).toHaveLength(32)
    expect(k.admissionKey).toHaveLength(32)
    expect(rv.current).toHaveLength(32)
  })

  it('network-wide values depend on the token only; per-network values on the network id too', () => {
    const x = deriveKeys(a, 'site-x')
    const y = deriveKeys(a, 'site-y')
    for (const field of ['mdnsTag', 'dhtProtocol', 'fingerprint'] as const) expect(x[field]).toBe(y[field])
    expect(x.pnetKey).toEqual(y.pnetKey)
    expect(x.rendezvousKey(NOW, EPOCH_MS)).toEqual(y.rendezvousKey(NOW, EPOCH_MS))
    for (const field of ['gossipTopic', 'syncProtocol'] as const) expect(x[field]).not.toBe(y[field])
    expect(x.stateKey).not.toEqual(y.stateKey)
    expect(x.admissionKey).not.toEqual(y.admissionKey)
    expect(deriveKeys(a).networkId).toBe('')
  })

  it('two tokens share nothing', () => {
    const x = deriveKeys(a)
    const y = deriveKeys(b)
    for (const field of ['mdnsTag', 'dhtProtocol', 'fingerprint', 'gossipTopic', 'syncProtocol'] as const) expect(x[field]).not.toBe(y[field])
    expect(x.pnetKey).not.toEqual(y.pnetKey)
    expect(x.stateKey).not.toEqual(y.stateKey)
  })

  it('identifiers have the documented shapes', () => {
    const k = deriveKeys(a, 'n')
    expect(k.mdnsTag).toMatch(/^kp-[a-z2-7]{16}$/)
    expect(k.mdnsTag.length).toBeLessThanOrEqual(63)
    expect(k.mdnsServiceName).toBe(`_${k.mdnsTag}._udp.local`)
    expect(k.dhtProtocol).toMatch(/^\/kairos-p2p\/[a-z2-7]{16}\/kad\/1\.0\.0$/)
    expect(k.dhtProtocol).not.toContain('/ipfs/')
    expect(k.gossipTopic).toMatch(/^\/kairos-p2p\/[a-z2-7]{16}\/state\/1\.0\.0$/)
    expect(k.syncProtocol).toMatch(/^\/kairos-p2p\/[a-z2-7]{16}$/)
    expect(k.fingerprint).toMatch(/^[a-z2-7]{4}(-[a-z2-7]{4}){3}$/)
  })

  it('pnetKey is what @libp2p/pnet takes, and the PSK inside is the derived key', () => {
    const k = deriveKeys(a)
    const protector = preSharedKey({ psk: k.pnetKey })() as unknown as { psk: Uint8Array }
    expect(hex(protector.psk)).toBe(new TextDecoder().decode(k.pnetKey).split('\n')[2])
    expect(protector.psk).toHaveLength(32)
  })

  it('rendezvous keys roll over at epoch boundaries; previous is the last epoch\'s current', () => {
    const k = deriveKeys(a)
    const start = 500_000 * EPOCH_MS
    const first = k.rendezvousKey(start, EPOCH_MS)
    expect(first.epoch).toBe(500_000)
    expect(k.rendezvousKey(start + EPOCH_MS - 1, EPOCH_MS)).toEqual(first)
    const before = k.rendezvousKey(start - 1, EPOCH_MS)
    expect(before.epoch).toBe(499_999)
    expect(first.previous).toEqual(before.current)
    const next = k.rendezvousKey(start + EPOCH_MS, EPOCH_MS)
    expect(next.previous).toEqual(first.current)
    expect(next.current).not.toEqual(first.current)
    // The epoch length is part of the answer: a different length, a different epoch.
    expect(k.rendezvousKey(start, 60_000).epoch).toBe(start / 60_000)
  })

  it('rejects a bad time or epoch length', () => {
    const k = deriveKeys(a)
    expect(() => k.rendezvousKey(Number.NaN, EPOCH_MS)).toThrow(/now must be a non-negative number of ms, got NaN/)
    expect(() => k.rendezvousKey(-1, EPOCH_MS)).toThrow(RangeError)
    expect(() => k.rendezvousKey(NOW, 0)).toThrow(/epochMs must be a positive integer, got 0/)
    expect(() => k.rendezvousKey(NOW, 1.5)).toThrow(RangeError)
  })

  it('a Kairos token and ours never share keys even with the same secret bytes', () => {
    const ours = parseToken(OURS)
    const kairos = { ...parseToken(KAIROS), secret: ours.secret }
    expect(deriveKeys(kairos).fingerprint).not.toBe(deriveKeys(ours).fingerprint)
  })
})
