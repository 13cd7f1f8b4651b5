import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { generateKeyPair } from '../../vpn/keys.ts'
import { keyLines, nudgeLines, parseGet, peerLines, uapiGet, uapiSet, uapiSocketPath } from '../../vpn/uapi.ts'
import { createWireGuardDriver, type ExecWireGuardDriver } from '../../vpn/wireguard-driver.ts'
import { createFakeTools, type FakeTools } from './fake-tools.ts'
import { startFakeUapi, type FakeUapi } from './fake-uapi.ts'

const hex = (b64: string): string => Buffer.from(b64, 'base64').toString('hex')
const own = generateKeyPair()
const p1 = generateKeyPair().publicKey
const p2 = generateKeyPair().publicKey

describe('UAPI codec', () => {
  it('parses a get answer into the dump shape: public key derived, peers with their counters', () => {
    const text = [
      `private_key=${hex(own.privateKey)}`, 'listen_port=51820', 'fwmark=0',
      `public_key=${hex(p1)}`, 'preshared_key=0000000000000000000000000000000000000000000000000000000000000000', 'protocol_version=1',
      'endpoint=10.100.0.7:51820', 'last_handshake_time_sec=1700000000', 'last_handshake_time_nsec=5', 'tx_bytes=180', 'rx_bytes=124',
      'persistent_keepalive_interval=25', 'allowed_ip=10.88.1.2/32', 'allowed_ip=10.88.9.0/24',
      `public_key=${hex(p2)}`, 'last_handshake_time_sec=0', 'last_handshake_time_nsec=0', 'tx_bytes=0', 'rx_bytes=0', 'persistent_keepalive_interval=0',
      'errno=0', ''
    ].join('\n')
    expect(parseGet(text)).toEqual({
      publicKey: own.publicKey,
      listenPort: 51820,
      peers: [
        { publicKey: p1, endpoint: '10.100.0.7:51820', allowedIps: ['10.88.1.2/32', '10.88.9.0/24'], latestHandshake: 1700000000, rxBytes: 124, txBytes: 180, keepalive: 25 },
        { publicKey: p2, allowedIps: [], latestHandshake: 0, rxBytes: 0, txBytes: 0, keepalive: 0 }
      ]
    })
  })

  it('reads an interface without a key as (none), like wg show', () => {
    expect(parseGet('listen_port=0\nerrno=0\n')).toEqual({ publicKey: '(none)', listenPort: 0, peers: [] })
  })

  it('refuses an answer without errno, with a refusal, or with a malformed line, naming it', () => {
    expect(() => parseGet('listen_port=1\n')).toThrow(/without errno/)
    expect(() => parseGet('errno=19\n')).toThrow(/errno 19/)
    expect(() => parseGet('listen_port\nerrno=0\n')).toThrow(/expected key=value/)
    expect(() => parseGet('listen_port=-1\nerrno=0\n')).toThrow(/listen_port=-1: expected a non-negative integer/)
  })

  it('encodes key, peers (removal first, allowed IPs replaced) and nudges as wg set would', () => {
    expect(keyLines(own.privateKey, 51820)).toEqual([`private_key=${hex(own.privateKey)}`, 'listen_port=51820'])
    expect(peerLines([{ publicKey: p1, endpoint: '10.100.0.7:51820', allowedIps: ['10.88.1.2/32'], keepalive: 25 }, { publicKey: p2, allowedIps: [], keepalive: 0 }], [own.publicKey])).toEqual([
      `public_key=${hex(own.publicKey)}`, 'remove=true',
      `public_key=${hex(p1)}`, 'endpoint=10.100.0.7:51820', 'persistent_keepalive_interval=25', 'replace_allowed_ips=true', 'allowed_ip=10.88.1.2/32',
      `public_key=${hex(p2)}`, 'persistent_keepalive_interval=0', 'replace_allowed_ips=true'
    ])
    // A nudge with `recreate` re-creates the peer, so its initiation is not held back by the last one; a plain one toggles keepalive.
    expect(nudgeLines([
      { publicKey: p1, endpoint: '10.100.0.7:51820', allowedIps: ['10.88.1.2/32'], keepalive: 25, recreate: true },
      { publicKey: own.publicKey, allowedIps: ['10.88.1.4/32'], keepalive: 0, recreate: true },
      { publicKey: p2, allowedIps: ['10.88.1.3/32'], keepalive: 0, recreate: false }
    ])).toEqual([
      `public_key=${hex(p1)}`, 'remove=true', `public_key=${hex(p1)}`, 'endpoint=10.100.0.7:51820', 'replace_allowed_ips=true', 'allowed_ip=10.88.1.2/32', 'persistent_keepalive_interval=25',
      `public_key=${hex(own.publicKey)}`, 'remove=true', `public_key=${hex(own.publicKey)}`, 'replace_allowed_ips=true', 'allowed_ip=10.88.1.4/32', 'persistent_keepalive_interval=1',
      `public_key=${hex(own.publicKey)}`, 'update_only=true', 'persistent_keepalive_interval=0',
      `public_key=${hex(p2)}`, 'update_only=true', 'persistent_keepalive_interval=0',
      `public_key=${hex(p2)}`, 'update_only=true', 'persistent_keepalive_interval=1',
      `public_key=${hex(p2)}`, 'update_only=true', 'persistent_keepalive_interval=0'
    ])
  })
})

describe('UAPI over a socket', () => {
  let dir: string
  let daemon: FakeUapi | undefined
  let tools: FakeTools | undefined
  let driver: ExecWireGuardDriver | undefined
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'kairos-uapi-')) })
  afterEach(async () => {
    for (const p of driver?.processes() ?? []) { try { process.kill(p.pid, 'SIGTERM') } catch {} }
    await driver?.close()
    await daemon?.close()
    await tools?.cleanup()
    driver = undefined
    daemon = undefined
    tools = undefined
    await rm(dir, { recursive: true, force: true })
  })

  it('set then get round-trips through the daemon; a refused set names its errno', async () => {
    daemon = await startFakeUapi(uapiSocketPath('kt0', dir))
    await uapiSet(daemon.path, [...keyLines(own.privateKey, 51820), ...peerLines([{ publicKey: p1, allowedIps: ['10.88.1.2/32'], keepalive: 25 }], [])])
    expect(await uapiGet(daemon.path)).toMatchObject({ publicKey: own.publicKey, listenPort: 51820, peers: [{ publicKey: p1, allowedIps: ['10.88.1.2/32'], keepalive: 25 }] })
    await expect(uapiSet(daemon.path, ['frobnicate=1'])).rejects.toThrow(/errno 22/)
    await expect(uapiSet(daemon.path, ['two\nlines=1'])).rejects.toThrow(/expected one key=value line/)
  })

  it('a missing socket or a silent daemon fails the request instead of hanging', async () => {
    await expect(uapiGet(join(dir, 'nothing.sock'))).rejects.toMatchObject({ code: 'ENOENT' })
    const { createServer } = await import('node:net')
    const silent = createServer(() => {})
    await new Promise<void>((resolve) => { silent.listen(join(dir, 'silent.sock'), resolve) })
    try {
      await expect(uapiGet(join(dir, 'silent.sock'), { timeoutMs: 100 })).rejects.toThrow(/no answer after 100 ms/)
    } finally {
      silent.close()
    }
  })

  it('the driver configures and reads a wireguard-go interface through its socket: no wg process at all', async () => {
    tools = await createFakeTools()
    daemon = await startFakeUapi(uapiSocketPath('kt0', dir))
    driver = createWireGuardDriver({ ip: tools.ip, wg: tools.wg, wireguardGo: tools.wireguardGo, uapiDir: dir, processStopTimeoutMs: 500 })
    const spec = { name: 'kt0', privateKey: own.privateKey, listenPort: 51820, address: '10.88.3.4/16', mtu: 1420 }
    expect(await driver.ensureInterface(spec)).toEqual({ kind: 'wireguard-go', created: true, changed: true })
    await driver.setPeers('kt0', [{ publicKey: p1, endpoint: '10.100.0.7:51820', allowedIps: ['10.88.1.2/32'], keepalive: 25 }], [])
    await driver.nudge('kt0', [{ publicKey: p1, endpoint: '10.100.0.7:51820', allowedIps: ['10.88.1.2/32'], keepalive: 25, recreate: true }])
    expect(await driver.show('kt0')).toMatchObject({ peers: [{ publicKey: p1, endpoint: '10.100.0.7:51820', allowedIps: ['10.88.1.2/32'], keepalive: 25 }] })
    await driver.setPeers('kt0', [], [p1])
    await driver.setPeers('kt0', [{ publicKey: p2, allowedIps: ['10.88.1.3/32'], keepalive: 0 }], [])
    expect(await driver.show('kt0')).toMatchObject({ publicKey: own.publicKey, listenPort: 51820, peers: [{ publicKey: p2, allowedIps: ['10.88.1.3/32'] }] })
    expect(daemon.device.privateKeyHex).toBe(hex(own.privateKey))
    const programs = (await tools.commands()).map((c) => c[0])
    expect(programs).toContain('wireguard-go')
    expect(programs).not.toContain('wg')
    // A second ensure finds everything in place and changes nothing.
    expect(await driver.ensureInterface(spec)).toEqual({ kind: 'wireguard-go', created: false, changed: false })
  })

  it('a dead daemon reads as a missing interface, as `wg show` would report it', async () => {
    daemon = await startFakeUapi(uapiSocketPath('kt0', dir))
    driver = createWireGuardDriver({ uapiDir: dir })
    expect(await driver.show('kt0')).toMatchObject({ listenPort: 0, peers: [] })
    await daemon.close()
    daemon = undefined
    // The socket file is gone with the server here; with a crashed daemon it stays and refuses connections.
    tools = await createFakeTools()
    driver = createWireGuardDriver({ wg: tools.wg, uapiDir: dir })
    expect(await driver.show('kt0')).toBeUndefined()
  })
})
