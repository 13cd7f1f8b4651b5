import { describe, expect, it } from 'vitest'
import { createRequire } from 'node:module'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'

const root = join(import.meta.dirname, '..', '..')

describe('pnet cipher', () => {
  it('an agent process runs pnet on the JavaScript XSalsa20, which many long-lived ciphers cannot exhaust', async () => {
    // A real process, because module evaluation order is what matters (the test runner loads modules its own way).
    const script = `
      import ${JSON.stringify(join(root, 'agent', 'agent.ts'))}
      import { loadPreSharedKey, PNET_CIPHER_IMPLEMENTATION } from ${JSON.stringify(join(root, 'p2p', 'pnet-cipher.ts'))}
      import { createRequire } from 'node:module'
      await loadPreSharedKey()
      const xsalsa20 = createRequire(${JSON.stringify(import.meta.resolve('@libp2p/pnet'))})('xsalsa20')
      const key = new Uint8Array(32).fill(1)
      const ciphers = Array.from({ length: 60 }, (_, i) => xsalsa20(new Uint8Array(24).fill(i), key))
      const chunk = new Uint8Array(1 << 20)
      for (let round = 0; round < 2; round++) for (const c of ciphers) c.update(chunk)
      process.stdout.write(PNET_CIPHER_IMPLEMENTATION + ' ' + ciphers[0]._xor.constructor.name)
    `
    const dir = await mkdtemp(join(tmpdir(), 'kp2p-pnet-'))
    try {
      const file = join(dir, 'check.mts')
      await writeFile(file, script)
      // The WebAssembly build throws `Memory.grow(): Maximum memory size exceeded` here.
      const { stdout } = await execa(process.execPath, [file], { cwd: root })
      expect(stdout).toBe('js Fallback')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('nothing imports @libp2p/pnet statically (it must load after the cipher choice)', async () => {
    const files = (await readdir(root, { recursive: true })).filter((f) => f.endsWith('.ts') && !f.startsWith('node_modules') && !f.startsWith('dist') && !f.startsWith('test'))
    const offenders: string[] = []
    for (const f of files) {
      const text = await readFile(join(root, f), 'utf8')
      if (/^import\s[^(]*['"]@libp2p\/pnet['"]/m.test(text)) offenders.push(f)
    }
    expect(offenders).toEqual([])
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
