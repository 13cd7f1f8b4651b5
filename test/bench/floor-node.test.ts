// The stack-floor benchmark's node (bench/_floor-node.ts) as real processes on loopback:
// three of them link up and each hears every other, so the floor measures delivered
// messages, not just started processes; SIGTERM stops each cleanly.
import { afterAll, describe, expect, it } from 'vitest'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa, type ResultPromise } from 'execa'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { generateToken } from '../../token/index.ts'
import { waitFor } from '../helpers/wait.ts'
import type { FloorNodeConfig } from '../../bench/_floor-node.ts'

const script = join(import.meta.dirname, '..', '..', 'bench', '_floor-node.ts')
const procs: ResultPromise[] = []
let root = ''

afterAll(async () => {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL')
  await Promise.allSettled(procs)
  if (root !== '') await rm(root, { recursive: true, force: true })
})

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise((resolve) => server.close(resolve))
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

describe('stack-floor node', () => {
  it('links up with its peers and hears every other node', async () => {
    root = await mkdtemp(join(tmpdir(), 'floor-node-'))
    const token = generateToken()
    const keys = await Promise.all([0, 1, 2].map(async () => await generateKeyPair('Ed25519')))
    const peers = await Promise.all(keys.map(async (k) => ({ id: peerIdFromPrivateKey(k).toString(), addr: `/ip4/127.0.0.1/tcp/${await freePort()}` })))
    const events = keys.map(() => new Set<string>())
    for (const [i, key] of keys.entries()) {
      const cfg: FloorNodeConfig = { key: Buffer.from(privateKeyToProtobuf(key)).toString('base64'), listen: peers[i]?.addr ?? '', token, peers, dht: true }
      const file = join(root, `node-${i}.json`)
      await writeFile(file, JSON.stringify(cfg))
      const p = execa(process.execPath, [script, file], { reject: false, stdin: 'ignore' })
      p.stdout?.on('data', (chunk: Buffer) => {
        for (const line of chunk.toString().split('\n').filter((l) => l.trim() !== '')) events[i]?.add((JSON.parse(line) as { event: string }).event)
      })
      procs.push(p)
    }
    await waitFor('every floor node to hear every other', () => events.every((e) => e.has('heard')) ? true : undefined, 30_000)
    expect(events.map((e) => [...e].sort())).toEqual(keys.map(() => ['heard', 'linked', 'started']))
    for (const p of procs) p.kill('SIGTERM')
    const exits = await Promise.all(procs)
    expect(exits.map((r) => r.exitCode)).toEqual([0, 0, 0])
  }, 60_000)
})
