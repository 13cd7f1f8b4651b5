import { createServer, type Server } from 'node:net'

/** One peer as the fake daemon holds it (keys in hex, as on the wire). */
export interface FakeUapiPeer {
  endpoint?: string
  keepalive: number
  allowedIps: string[]
  handshakeSec: number
}

/**
 * A stand-in for wireguard-go's control socket: answers `get=1` and applies `set=1`
 * the way wireguard-go does for the keys this project sends, and records every
 * request. Unknown keys are refused with errno 22 (EINVAL), as wireguard-go does.
 */
export interface FakeUapi {
  readonly path: string
  readonly requests: string[]
  readonly device: { privateKeyHex?: string, listenPort: number, peers: Map<string, FakeUapiPeer> }
  close(): Promise<void>
}

export async function startFakeUapi (path: string): Promise<FakeUapi> {
  const requests: string[] = []
  const device: FakeUapi['device'] = { listenPort: 0, peers: new Map() }

  const get = (): string => {
    const lines: string[] = []
    if (device.privateKeyHex !== undefined) lines.push(`private_key=${device.privateKeyHex}`)
    lines.push(`listen_port=${device.listenPort}`)
    for (const [key, p] of device.peers) {
      lines.push(`public_key=${key}`)
      if (p.endpoint !== undefined) lines.push(`endpoint=${p.endpoint}`)
      lines.push(`last_handshake_time_sec=${p.handshakeSec}`, 'last_handshake_time_nsec=0', 'tx_bytes=10', 'rx_bytes=20', `persistent_keepalive_interval=${p.keepalive}`)
      for (const ip of p.allowedIps) lines.push(`allowed_ip=${ip}`)
    }
    return lines.map((l) => `${l}\n`).join('') + 'errno=0\n\n'
  }

  const set = (lines: string[]): number => {
    let peer: { key: string, value: FakeUapiPeer, created: boolean } | undefined
    for (const line of lines) {
      const [key = '', value = ''] = line.split('=', 2)
      if (peer === undefined) {
        if (key === 'private_key') { device.privateKeyHex = value; continue }
        if (key === 'listen_port') { device.listenPort = Number(value); continue }
      }
      if (key === 'public_key') {
        const held = device.peers.get(value)
        peer = { key: value, value: held ?? { keepalive: 0, allowedIps: [], handshakeSec: 0 }, created: held === undefined }
        device.peers.set(value, peer.value)
        continue
      }
      if (peer === undefined) return 22
      switch (key) {
        case 'remove': device.peers.delete(peer.key); break
        case 'update_only': if (peer.created) device.peers.delete(peer.key); break
        case 'endpoint': peer.value.endpoint = value; break
        case 'persistent_keepalive_interval': peer.value.keepalive = Number(value); break
        case 'replace_allowed_ips': peer.value.allowedIps = []; break
        case 'allowed_ip': peer.value.allowedIps.push(value); break
        default: return 22
      }
    }
    return 0
  }

  const server: Server = createServer((socket) => {
    let text = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      text += chunk
      const end = text.indexOf('\n\n')
      if (end < 0) return
      const request = text.slice(0, end + 1)
      text = text.slice(end + 2)
      requests.push(request)
      const [op, ...rest] = request.split('\n').filter((l) => l !== '')
      if (op === 'get=1') socket.write(get())
      else if (op === 'set=1') socket.write(`errno=${set(rest)}\n\n`)
      else socket.destroy()
    })
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(path, resolve) })
  return {
    path,
    requests,
    device,
    close: async () => { await new Promise<void>((resolve) => { server.close(() => { resolve() }) }) }
  }
}
