// One node of the stack-floor benchmark (bench/floor.ts): the libp2p stack an agent
// runs (p2p/stack.ts) and nothing of the agent's own work (no admission, state,
// membership, election, VPN or installer). It dials the agent's mesh links
// (p2p/mesh.ts) to peers whose addresses it is given, and publishes a small message
// on one gossipsub topic: at once, to each peer that subscribes, and every second,
// until it has heard every other node. Events go to stdout as JSON lines:
//   {"event":"started","at":…}  libp2p listening
//   {"event":"linked","at":…}   every one of its links connected
//   {"event":"heard","at":…}    a message from every other node
// Run: node _floor-node.ts <config.json> (see FloorNodeConfig); `--warm` loads and exits.
import { readFileSync } from 'node:fs'
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { meshLinks, DEFAULT_MESH_LINKS } from '../p2p/mesh.ts'
import { createLibp2pStack } from '../p2p/stack.ts'
import { DEFAULT_MAX_FRAME_BYTES } from '../p2p/framing.ts'
import { deriveKeys, parseToken } from '../token/index.ts'

/** What bench/floor.ts writes for each node. */
export interface FloorNodeConfig {
  /** The node's Ed25519 key, libp2p protobuf, base64. */
  key: string
  listen: string
  token: string
  /** Every node of the site (this one included): peer id and listen multiaddr. */
  peers: Array<{ id: string, addr: string }>
  dht: boolean
}

const TOPIC = 'floor'
const REPUBLISH_MS = 1000
/** First redial after a failed dial (a peer not listening yet), ms; doubles up to a second. */
const REDIAL_MS = 25

const emit = (event: string): void => { process.stdout.write(JSON.stringify({ event, at: Date.now() }) + '\n') }

const file = process.argv[2]
if (file === '--warm') process.exit(0)
if (file === undefined) {
  process.stderr.write('usage: _floor-node.ts <config.json>\n')
  process.exit(2)
}
const cfg = JSON.parse(readFileSync(file, 'utf8')) as FloorNodeConfig
const keys = deriveKeys(parseToken(cfg.token))
const node = await createLibp2pStack({
  privateKey: privateKeyFromProtobuf(Buffer.from(cfg.key, 'base64')),
  listen: [cfg.listen],
  keys,
  dht: cfg.dht,
  maxFrameBytes: DEFAULT_MAX_FRAME_BYTES
})
const self = node.peerId.toString()
const addrOf = new Map(cfg.peers.map((p) => [p.id, p.addr]))
const links = meshLinks(self, cfg.peers.map((p) => p.id).filter((id) => id !== self), DEFAULT_MESH_LINKS)
const others = cfg.peers.length - 1
const heard = new Set<string>()
let stopping = false

node.services.pubsub.addEventListener('gossipsub:message', (evt) => {
  const { msg } = evt.detail
  if (msg.topic !== TOPIC) return
  const from = new TextDecoder().decode(msg.data).split(' ')[0] ?? ''
  if (from === self || heard.has(from) || !addrOf.has(from)) return
  heard.add(from)
  if (heard.size === others) emit('heard')
})
// Unsigned messages are told apart by their content alone: each publish gets a fresh sequence number.
let seq = 0
const publish = async (): Promise<string[]> => {
  if (stopping) return []
  try {
    const { recipients } = await node.services.pubsub.publish(TOPIC, new TextEncoder().encode(`${self} ${seq++}`))
    return recipients.map((p) => p.toString())
  } catch { return [] }
}
/**
 * A peer that just subscribed gets our message directly; gossipsub drops it while its
 * outbound stream to that peer is still opening, so it is tried again shortly.
 */
const publishTo = (peer: string, tries = 0): void => {
  void publish().then((got) => {
    if (!got.includes(peer) && tries < 20 && !stopping) setTimeout(() => { publishTo(peer, tries + 1) }, 25)
  })
}
node.services.pubsub.addEventListener('subscription-change', (evt) => {
  if (evt.detail.subscriptions.some((s) => s.topic === TOPIC && s.subscribe)) publishTo(evt.detail.peerId.toString())
})

await node.start()
node.services.pubsub.subscribe(TOPIC)
emit('started')

let linked = false
const checkLinked = (): void => {
  if (!linked && links.every((p) => node.getConnections().some((c) => c.remotePeer.toString() === p))) { linked = true; emit('linked') }
}
node.addEventListener('connection:open', checkLinked)
const dial = (peer: string, wait = REDIAL_MS): void => {
  const addr = addrOf.get(peer)
  if (stopping || addr === undefined) return
  node.dial(multiaddr(`${addr}/p2p/${peer}`)).then(checkLinked, () => { setTimeout(() => { dial(peer, Math.min(2 * wait, 1000)) }, wait) })
}
for (const p of links) dial(p)
// A link that closed (the other side or libp2p ended it) is dialled again, as the agent's mesh does.
node.addEventListener('peer:disconnect', (evt) => {
  const peer = evt.detail.toString()
  if (links.includes(peer)) dial(peer)
})
void publish()
const timer = setInterval(() => { void publish() }, REPUBLISH_MS)

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.once(sig, () => {
    stopping = true
    clearInterval(timer)
    void Promise.resolve(node.stop()).finally(() => process.exit(0))
  })
}
