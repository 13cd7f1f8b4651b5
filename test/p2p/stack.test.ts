import { describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { KEEP_ALIVE } from '@libp2p/interface'
import { createLibp2pStack } from '../../p2p/stack.ts'
import { deriveKeys } from '../../token/index.ts'
import { newToken } from './harness.ts'

describe('createLibp2pStack', () => {
  it('takes keep-alive tags off a peer as soon as they are set (P2P-41): the dialler alone keeps connections', async () => {
    const node = await createLibp2pStack({
      privateKey: await generateKeyPair('Ed25519'),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      keys: deriveKeys(newToken()),
      dht: true,
      maxFrameBytes: 64 * 1024
    })
    await node.start()
    try {
      const other = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
      // What @libp2p/kad-dht does to its closest peers (libp2p then redials them whenever they disconnect).
      await node.peerStore.merge(other, { tags: { [`${KEEP_ALIVE}-kad-dht`]: { value: 1 }, 'kad-close': { value: 50 } } })
      await expect.poll(async () => [...(await node.peerStore.get(other)).tags.keys()], { timeout: 2000 }).toEqual(['kad-close'])
    } finally {
      await node.stop()
    }
  })
})
