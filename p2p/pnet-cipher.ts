// Loads @libp2p/pnet so that its XSalsa20 (the `xsalsa20` package) runs on the
// package's pure-JavaScript implementation instead of its WebAssembly one.
//
// Why: xsalsa20 1.2.0's WebAssembly build shares one memory (capped at 1000 pages,
// 64 MiB) between all cipher instances, but each instance keeps its own view of that
// memory from when it was created and, when a chunk does not fit that stale view,
// grows the shared memory by the whole gap again. pnet creates two ciphers per
// connection and never releases them, so an agent with many connections, or one
// that reconnects for days, grows the memory until `WebAssembly.Memory.grow()`
// throws inside a socket handler and the process dies (docs/decisions.md, P2P-26).
// The JavaScript implementation computes the same key stream with no shared state,
// far faster than the agent's traffic needs.
//
// The package picks its implementation once, when it is first loaded, by testing
// `typeof WebAssembly`; we load it first, synchronously, with that global hidden.
// That must happen before @libp2p/pnet is linked: Node runs a CommonJS dependency
// of an ES module while linking, before any importing module's body runs, so pnet
// is never imported statically — only through `loadPreSharedKey()`.
//
// The single-file bundle carries xsalsa20 with that choice already made at build time
// (`build/bundle.ts`), so there is nothing to arrange at run time.
import { createRequire } from 'node:module'
import { BUNDLED } from '../util/bundled.ts'

/** Which XSalsa20 implementation pnet got: `js` after this module ran first. */
export type PnetCipherImplementation = 'js' | 'wasm' | 'unknown'

function pnetRequire (): NodeJS.Require {
  // Resolve `xsalsa20` exactly as @libp2p/pnet does, so both share one module instance.
  return createRequire(import.meta.resolve('@libp2p/pnet'))
}

function loadJsXsalsa20 (): PnetCipherImplementation {
  if (BUNDLED) return 'js'
  const require = pnetRequire()
  const id = require.resolve('xsalsa20')
  if (require.cache[id] !== undefined) return 'unknown'
  const descriptor = Object.getOwnPropertyDescriptor(globalThis, 'WebAssembly')
  if (descriptor === undefined) { require(id); return 'js' }
  Reflect.deleteProperty(globalThis, 'WebAssembly')
  try {
    require(id)
  } finally {
    Object.defineProperty(globalThis, 'WebAssembly', descriptor)
  }
  return 'js'
}

/** What this module arranged when it was loaded (`unknown` if xsalsa20 was already loaded). */
export const PNET_CIPHER_IMPLEMENTATION: PnetCipherImplementation = loadJsXsalsa20()

/** @libp2p/pnet's `preSharedKey`, loaded after the cipher choice above. */
export async function loadPreSharedKey (): Promise<typeof import('@libp2p/pnet').preSharedKey> {
  return (await import('@libp2p/pnet')).preSharedKey
}

/** An XSalsa20 key stream: `update` XORs the next bytes of the stream into a copy of its input. */
export interface Xsalsa20Stream { update: (input: Uint8Array) => Uint8Array }

/** The `xsalsa20` package pnet uses, on the implementation chosen above (`nonce` 24 bytes, `key` 32). */
export async function loadXsalsa20 (): Promise<(nonce: Uint8Array, key: Uint8Array) => Xsalsa20Stream> {
  // @ts-expect-error xsalsa20 ships no type declarations; the shape is declared by the return type.
  const mod = await import('xsalsa20') as { default: (nonce: Uint8Array, key: Uint8Array) => Xsalsa20Stream }
  return mod.default
}
