import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createAgent, type Agent } from '../../agent/agent.ts'
import { parseConfig } from '../../config/index.ts'
import { encodeToken } from '../../token/index.ts'

/** An agent started alone on loopback, and where it keeps its state. */
export interface LoneAgent {
  agent: Agent
  /** The temporary directory it runs in. */
  root: string
  /** Its state dir, where its socket is. */
  stateDir: string
  /** Stops the agent and removes its directory. */
  stop: () => Promise<void>
}

export interface LoneAgentOptions {
  /** Names the config file and the temporary directory. */
  name: string
  /** Every byte of its network token: tests that run at once stay on networks of their own. */
  tokenByte: number
  /** More lines under `p2p:`, indented by two spaces. @default [] */
  p2p?: string[]
}

/**
 * Starts one agent on loopback with the `lab` preset, `minimum_nodes` 2, no mDNS, no
 * VPN and the dry-run installer: alone, it stays in `discovering`.
 */
export async function startLoneAgent (opts: LoneAgentOptions): Promise<LoneAgent> {
  const root = await mkdtemp(join(tmpdir(), `kp2p-${opts.name}-`))
  const stateDir = join(root, 'state')
  let agent: Agent | undefined
  const stop = async (): Promise<void> => {
    try {
      await agent?.stop()
    } finally {
      await rm(root, { recursive: true, force: true })
    }
  }
  try {
    const config = parseConfig([{
      name: `${opts.name}.yaml`,
      text: [
        'p2p:',
        `  network_token: ${encodeToken(new Uint8Array(32).fill(opts.tokenByte))}`,
        '  preset: lab',
        '  minimum_nodes: 2',
        '  mdns: false',
        '  listen: [/ip4/127.0.0.1/tcp/0]',
        `  state_dir: ${stateDir}`,
        '  vpn: {create: false}',
        '  installer: {kind: dry-run}',
        ...(opts.p2p ?? [])
      ].join('\n')
    }]).config
    agent = await createAgent({ config })
    await agent.start()
    return { agent, root, stateDir, stop }
  } catch (err) {
    await stop()
    throw err
  }
}
