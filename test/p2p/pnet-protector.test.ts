import { afterEach, describe, expect, it } from 'vitest'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import type { ConnectionProtector } from '@libp2p/interface'
import { deriveKeys, generateToken, parseToken } from '../../token/index.ts'
import { loadPreSharedKey } from '../../p2p/pnet-cipher.ts'
import { decodeSwarmKey, MULTISTREAM_HEADER, rotatingPreSharedKey } from '../../p2p/pnet-protector.ts'

const swarmKey = (): Uint8Array => deriveKeys(parseToken(generateToken())).pnetKey

describe('rotating pnet protector', () => {
  const nodes: Libp2p[] = []
  afterEach(async () => { await Promise.allSettled(nodes.splice(0).map(async (n) => { await n.stop() })) })

  const start = async (protector: () => ConnectionProtector): Promise<Libp2p> => {
    const node = await createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionProtector: protector,
      connectionMonitor: { enabled: false }
    })
    nodes.push(node)
    return node
  }
  const connects = async (from: Libp2p, to: Libp2p): Promise<boolean> => {
    try {
      await from.dial(to.getMultiaddrs()[0] as never, { signal: AbortSignal.timeout(5_000) })
      return true
    } catch {
      return false
    }
  }
  const plain = async (psk: Uint8Array): Promise<() => ConnectionProtector> => (await loadPreSharedKey())({ psk })

  it('answers a dialler that holds either key, with the key it used', async () => {
    const [newKey, oldKey] = [swarmKey(), swarmKey()]
    const both = await start(rotatingPreSharedKey({ keys: () => [newKey, oldKey] }))
    const onlyNew = await start(await plain(newKey))
    const onlyOld = await start(await plain(oldKey))
    expect(await connects(onlyNew, both)).toBe(true)
    expect(await connects(onlyOld, both)).toBe(true)
  })

  it('refuses a dialler with a key it does not hold', async () => {
    const both = await start(rotatingPreSharedKey({ keys: () => [swarmKey(), swarmKey()] }))
    const stranger = await start(await plain(swarmKey()))
    expect(await connects(stranger, both)).toBe(false)
    expect(both.getConnections()).toHaveLength(0)
  })

  it('dials with the newest key and falls back to the previous one for an address that only holds it', async () => {
    const [newKey, oldKey] = [swarmKey(), swarmKey()]
    const both = await start(rotatingPreSharedKey({ keys: () => [newKey, oldKey] }))
    const onlyOld = await start(await plain(oldKey))
    const onlyNew = await start(await plain(newKey))
    expect(await connects(both, onlyNew)).toBe(true)
    // The first attempt uses the newest key and fails; the one after it uses the previous key.
    const first = await connects(both, onlyOld)
    const second = first || await connects(both, onlyOld)
    expect(first).toBe(false)
    expect(second).toBe(true)
  })

  it('admits nothing under a key once it is dropped (the end of a grace)', async () => {
    const [newKey, oldKey] = [swarmKey(), swarmKey()]
    let keys = [newKey, oldKey]
    const rotating = await start(rotatingPreSharedKey({ keys: () => keys }))
    const onlyOld = await start(await plain(oldKey))
    expect(await connects(onlyOld, rotating)).toBe(true)
    await onlyOld.hangUp(rotating.peerId)
    keys = [newKey]
    expect(await connects(onlyOld, rotating)).toBe(false)
  })

  it('two rotating nodes with the same keys connect both ways', async () => {
    const [newKey, oldKey] = [swarmKey(), swarmKey()]
    const a = await start(rotatingPreSharedKey({ keys: () => [newKey, oldKey] }))
    const b = await start(rotatingPreSharedKey({ keys: () => [newKey, oldKey] }))
    expect(await connects(a, b)).toBe(true)
    await a.hangUp(b.peerId)
    expect(await connects(b, a)).toBe(true)
  })

  it('decodes swarm.key text and refuses anything else by name', () => {
    expect(decodeSwarmKey(swarmKey())).toHaveLength(32)
    expect(() => decodeSwarmKey(new Uint8Array(32))).toThrow(expect.objectContaining({ name: 'PnetKeyFormatError', message: expect.stringMatching(/swarm\.key text/) }))
    expect(MULTISTREAM_HEADER).toHaveLength(20)
  })
})
