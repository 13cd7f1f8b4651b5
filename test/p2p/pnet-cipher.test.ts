import { describe, expect, it } from 'vitest'
import { createRequire } from 'node:module'
import { execa } from 'execa'
import { PNET_CIPHER_IMPLEMENTATION } from '../../p2p/pnet-cipher.ts'
import '../../p2p/node.ts'

describe('pnet cipher', () => {
  it('uses the JavaScript XSalsa20, which many long-lived ciphers with large chunks cannot exhaust', () => {
    expect(PNET_CIPHER_IMPLEMENTATION).toBe('js')
    const require = createRequire(import.meta.resolve('@libp2p/pnet'))
    const xsalsa20 = require('xsalsa20') as (nonce: Uint8Array, key: Uint8Array) => { update: (input: Uint8Array) => Uint8Array, _xor: object }
    const key = new Uint8Array(32).fill(1)
    // The WebAssembly build throws `Memory.grow(): Maximum memory size exceeded` here.
    const ciphers = Array.from({ length: 60 }, (_, i) => xsalsa20(new Uint8Array(24).fill(i), key))
    const chunk = new Uint8Array(1 << 20)
    for (let round = 0; round < 2; round++) for (const c of ciphers) c.update(chunk)
    expect(ciphers[0]?._xor.constructor.name).toBe('Fallback')
  })

  it('gives the same key stream as the WebAssembly build, over any chunking (peers interoperate)', async () => {
    const require = createRequire(import.meta.resolve('@libp2p/pnet'))
    const id = require.resolve('xsalsa20')
    const xsalsa20 = require(id) as (nonce: Uint8Array, key: Uint8Array) => { update: (input: Uint8Array) => Uint8Array }
    const nonce = Uint8Array.from({ length: 24 }, (_, i) => i)
    const key = Uint8Array.from({ length: 32 }, (_, i) => 255 - i)
    const split = xsalsa20(nonce, key)
    const ours = Buffer.concat([split.update(new Uint8Array(7)), split.update(new Uint8Array(64)), split.update(new Uint8Array(929))])
    // A fresh process loads the package normally, i.e. its WebAssembly implementation.
    const script = `const x = require(${JSON.stringify(id)}); const c = x(Uint8Array.from({length:24},(_, i)=>i), Uint8Array.from({length:32},(_, i)=>255-i)); process.stdout.write(Buffer.from(c.update(new Uint8Array(1000))).toString('hex') + ' ' + c._xor.constructor.name)`
    const { stdout } = await execa(process.execPath, ['-e', script])
    const [hex, impl] = stdout.split(' ')
    expect(impl).toBe('WASM')
    expect(ours.toString('hex')).toBe(hex)
  })
})
