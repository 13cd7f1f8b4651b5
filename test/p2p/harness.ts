import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { P2PConfig } from '../../config/types.ts'
import { parseConfig } from '../../config/index.ts'
import { generateToken, parseToken, type NetworkToken } from '../../token/index.ts'
import { createLogger, silentLogger } from '../../util/log.ts'
import { createP2PNode, type P2PNode, type P2PNodeInit } from '../../p2p/index.ts'

/**
 * A `p2p` section for an in-process node: the loader's defaults with the `lab`
 * preset, loopback on an ephemeral port, no mDNS, no overlay, dry-run installer.
 */
export function labConfig (overrides: Partial<P2PConfig> = {}): P2PConfig {
  const base = parseConfig([{
    name: 'p2p-test.yaml',
    text: 'p2p:\n  preset: lab\n  mdns: false\n  listen: [/ip4/127.0.0.1/tcp/0]\n  vpn: {create: false}\n  installer: dry-run\n'
  }]).config.p2p
  return { ...base, stateDir: '', ...overrides }
}

/** A fresh random network token. */
export function newToken (): NetworkToken {
  return parseToken(generateToken())
}

/** Nodes and temporary dirs of one test, torn down together. */
export class Cluster {
  readonly nodes: P2PNode[] = []
  private readonly dirs: string[] = []

  /** A new empty state dir. */
  async dir (): Promise<string> {
    const d = await mkdtemp(join(tmpdir(), 'kp2p-test-'))
    this.dirs.push(d)
    return d
  }

  /** Creates and starts a node; `stateDir` defaults to a fresh dir. */
  async node (token: NetworkToken, p2p: Partial<P2PConfig> = {}, extra: Partial<P2PNodeInit> = {}): Promise<P2PNode> {
    const stateDir = extra.stateDir ?? await this.dir()
    const logger = process.env.KP2P_TEST_LOG === undefined ? silentLogger : createLogger({ level: 'debug', format: 'text' }).child(`n${this.nodes.length}`)
    const node = await createP2PNode({ p2p: labConfig(p2p), token, stateDir, logger, dialTimeoutMs: 2_000, admissionTimeoutMs: 2_000, ...extra })
    this.nodes.push(node)
    await node.start()
    return node
  }

  async close (): Promise<void> {
    await Promise.allSettled(this.nodes.map(async (n) => { await n.stop() }))
    await Promise.allSettled(this.dirs.map(async (d) => { await rm(d, { recursive: true, force: true }) }))
  }
}

/** Peers of `node` that it has admitted and sees alive. */
export function alivePeers (node: P2PNode): string[] {
  return node.state.members().filter((m) => m.liveness === 'alive').map((m) => m.peerId).sort()
}

/** True when every node has admitted every other one over a live connection. */
export function fullyAdmitted (nodes: P2PNode[]): boolean {
  return nodes.every((n) => nodes.every((o) => o === n || n.status().peers.some((p) => p.id === o.peerId && p.admitted)))
}
