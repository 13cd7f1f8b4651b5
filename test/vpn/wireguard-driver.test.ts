import { access } from 'node:fs/promises'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { parseDump } from '../../vpn/driver.ts'
import { generateKeyPair } from '../../vpn/keys.ts'
import { createWireGuardDriver, type ExecWireGuardDriver } from '../../vpn/wireguard-driver.ts'
import { waitFor } from '../helpers/wait.ts'
import { createFakeTools, type FakeTools } from './fake-tools.ts'

const MUTATING = new Set(['add', 'del', 'set', 'remove'])
const isMutating = (argv: string[]): boolean => argv[0] === 'wireguard-go' || argv.slice(1).some((a) => MUTATING.has(a))
/** Drops the prefix program from a recorded command line. */
const bare = (argv: string[]): string[] => argv[0] === 'pfx' ? argv.slice(1) : argv

let tools: FakeTools
let driver: ExecWireGuardDriver | undefined
const keys = generateKeyPair()
const spec = { name: 'kt0', privateKey: keys.privateKey, listenPort: 51820, address: '10.88.3.4/16', mtu: 1420 }

beforeEach(async () => { tools = await createFakeTools() })
afterEach(async () => {
  if (driver !== undefined) {
    // Stop every fake wireguard-go this test started, by PID.
    for (const p of driver.processes()) { try { process.kill(p.pid, 'SIGTERM') } catch {} }
    await driver.close()
    driver = undefined
  }
  await tools.cleanup()
})

function makeDriver (extra: Parameters<typeof createWireGuardDriver>[0] = {}): ExecWireGuardDriver {
  driver = createWireGuardDriver({ ip: tools.ip, wg: tools.wg, wireguardGo: tools.wireguardGo, uapiDir: false, processStopTimeoutMs: 500, ...extra })
  return driver
}

describe('parseDump', () => {
  it('reads interface and peers and drops the private key', () => {
    const text = [
      'PRIVATEKEY\tPUBKEY=\t51820\toff',
      'PEER1=\t(none)\t192.168.1.2:51820\t10.88.0.2/32\t1700000000\t1234\t5678\t25',
      'PEER2=\t(none)\t(none)\t(none)\t0\t0\t0\toff',
      ''
    ].join('\n')
    const dump = parseDump(text)
    expect(JSON.stringify(dump)).not.toContain('PRIVATEKEY')
    expect(dump).toEqual({
      publicKey: 'PUBKEY=',
      listenPort: 51820,
      peers: [
        { publicKey: 'PEER1=', endpoint: '192.168.1.2:51820', allowedIps: ['10.88.0.2/32'], latestHandshake: 1700000000, rxBytes: 1234, txBytes: 5678, keepalive: 25 },
        { publicKey: 'PEER2=', allowedIps: [], latestHandshake: 0, rxBytes: 0, txBytes: 0, keepalive: 0 }
      ]
    })
  })
})

describe('createWireGuardDriver against fake ip / wg / wireguard-go', () => {
  it('falls back to wireguard-go and configures key, port, MTU, link and address', async () => {
    const d = makeDriver()
    const result = await d.ensureInterface(spec)
    expect(result).toEqual({ kind: 'wireguard-go', created: true, changed: true })
    const steps = (await tools.commands()).filter(isMutating)
    expect(steps.map((c) => c.join(' ').replace(/private-key \S+/, 'private-key <file>'))).toEqual([
      'ip link add dev kt0 type wireguard',
      'wireguard-go kt0',
      'wg set kt0 listen-port 51820 private-key <file>',
      'ip link set dev kt0 mtu 1420 up',
      'ip address add 10.88.3.4/16 dev kt0'
    ])
    expect(await tools.goEnv()).toEqual(['WG_PROCESS_FOREGROUND=1'])
    expect(d.processes()).toHaveLength(1)

    // The key went through a 0600 file that is gone afterwards, never through argv.
    const files = await tools.keyFiles()
    expect(files).toHaveLength(1)
    expect(files[0]?.mode).toBe('600')
    await expect(access(files[0]?.path ?? '')).rejects.toThrow()
    expect(await tools.rawLog()).not.toContain(keys.privateKey)
    const dump = await d.show('kt0')
    expect(dump?.publicKey).toBe(keys.publicKey)
  })

  it('is idempotent: a second ensure changes nothing', async () => {
    const d = makeDriver()
    await d.ensureInterface(spec)
    const before = (await tools.commands()).length
    expect(await d.ensureInterface(spec)).toEqual({ kind: 'wireguard-go', created: false, changed: false })
    expect((await tools.commands()).slice(before).filter(isMutating)).toEqual([])
    // A new address replaces the old one; nothing else is touched.
    const again = (await tools.commands()).length
    expect((await d.ensureInterface({ ...spec, address: '10.88.9.9/16' })).changed).toBe(true)
    expect((await tools.commands()).slice(again).filter(isMutating).map((c) => c.join(' '))).toEqual([
      'ip address del 10.88.3.4/16 dev kt0',
      'ip address add 10.88.9.9/16 dev kt0'
    ])
  })

  it('sets and removes peers in one wg call and parses the dump', async () => {
    const d = makeDriver()
    await d.ensureInterface(spec)
    const p1 = generateKeyPair().publicKey
    const p2 = generateKeyPair().publicKey
    const gone = generateKeyPair().publicKey
    await d.setPeers('kt0', [
      { publicKey: p1, endpoint: '192.168.1.2:51820', allowedIps: ['10.88.0.2/32'], keepalive: 25 },
      { publicKey: p2, allowedIps: ['10.88.0.3/32'], keepalive: 0 }
    ], [gone])
    const last = (await tools.commands()).at(-1)
    expect(last).toEqual(['wg', 'set', 'kt0',
      'peer', gone, 'remove',
      'peer', p1, 'endpoint', '192.168.1.2:51820', 'persistent-keepalive', '25', 'allowed-ips', '10.88.0.2/32',
      'peer', p2, 'persistent-keepalive', 'off', 'allowed-ips', '10.88.0.3/32'])
    await tools.setDumpPeers('kt0', [`${p1}\t(none)\t192.168.1.2:51820\t10.88.0.2/32\t1700000000\t10\t20\t25`])
    const dump = await d.show('kt0')
    expect(dump?.peers).toEqual([{ publicKey: p1, endpoint: '192.168.1.2:51820', allowedIps: ['10.88.0.2/32'], latestHandshake: 1700000000, rxBytes: 10, txBytes: 20, keepalive: 25 }])
    expect(await d.show('nope0')).toBeUndefined()
  })

  it('nudges peers by turning persistent keepalive off and on in one wg call', async () => {
    const d = makeDriver()
    await d.ensureInterface(spec)
    const p1 = generateKeyPair().publicKey
    const p2 = generateKeyPair().publicKey
    await d.setPeers('kt0', [
      { publicKey: p1, endpoint: '192.168.1.2:51820', allowedIps: ['10.88.0.2/32'], keepalive: 25 },
      { publicKey: p2, endpoint: '192.168.1.3:51820', allowedIps: ['10.88.0.3/32'], keepalive: 0 }
    ], [])
    const before = await d.show('kt0')
    await d.nudge('kt0', [
      { publicKey: p1, endpoint: '192.168.1.2:51820', allowedIps: ['10.88.0.2/32'], keepalive: 25, recreate: true },
      { publicKey: p2, endpoint: '192.168.1.3:51820', allowedIps: ['10.88.0.3/32'], keepalive: 0, recreate: false }
    ])
    // p1 is re-created (its next initiation is not held back by the last one) with keepalive from off; p2's keepalive goes off, on, off.
    expect((await tools.commands()).at(-1)).toEqual(['wg', 'set', 'kt0',
      'peer', p1, 'remove', 'peer', p1, 'endpoint', '192.168.1.2:51820', 'persistent-keepalive', '25', 'allowed-ips', '10.88.0.2/32',
      'peer', p2, 'persistent-keepalive', 'off', 'peer', p2, 'persistent-keepalive', '1', 'peer', p2, 'persistent-keepalive', 'off'])
    // The peers end as they were.
    expect(await d.show('kt0')).toEqual(before)
    const count = (await tools.commands()).length
    await d.nudge('kt0', [])
    expect(await tools.commands()).toHaveLength(count)
  })

  it('reports a wireguard-go that dies and brings the interface back on the next ensure', async () => {
    const d = makeDriver()
    await d.ensureInterface(spec)
    const [proc] = d.processes()
    const exits: unknown[] = []
    d.addEventListener('process:exit', (evt) => { exits.push(evt.detail) })
    process.kill(proc?.pid ?? 0, 'SIGTERM')
    await waitFor('process:exit', () => (exits.length === 1) || undefined, 5_000, 5)
    expect(exits[0]).toMatchObject({ interface: 'kt0', pid: proc?.pid })
    expect(await d.show('kt0')).toBeUndefined()
    const result = await d.ensureInterface(spec)
    expect(result.created).toBe(true)
    expect(d.processes()).toHaveLength(1)
    expect(d.processes()[0]?.pid).not.toBe(proc?.pid)
  })

  it('remove() deletes the link and stops wireguard-go without an exit event', async () => {
    const d = makeDriver()
    await d.ensureInterface(spec)
    const exits: unknown[] = []
    d.addEventListener('process:exit', (evt) => { exits.push(evt.detail) })
    expect(await d.remove('kt0')).toBe(true)
    expect(d.processes()).toEqual([])
    expect(await d.show('kt0')).toBeUndefined()
    expect(await d.remove('kt0')).toBe(false)
    expect(exits).toEqual([])
  })

  it('runs every command through commandPrefix', async () => {
    const d = makeDriver({ commandPrefix: [tools.prefix, '--net=/run/netns/x'] })
    await d.ensureInterface(spec)
    await d.setPeers('kt0', [{ publicKey: generateKeyPair().publicKey, allowedIps: ['10.88.0.2/32'], keepalive: 25 }], [])
    const all = await tools.commands()
    const byPrefix = all.filter((c) => c[0] === 'pfx')
    const direct = all.filter((c) => c[0] !== 'pfx')
    expect(byPrefix.length).toBe(direct.length)
    expect(byPrefix.every((c) => c[1] === '--net=/run/netns/x')).toBe(true)
    expect(byPrefix.map((c) => bare(c).slice(1)[0]?.split('/').at(-1))).toEqual(direct.map((c) => c[0]))
    expect(await tools.rawLog()).not.toContain(keys.privateKey)
  })

  it('fails clearly when wireguard-go cannot start, and with kernel mode when the kernel lacks WireGuard', async () => {
    const { writeFile } = await import('node:fs/promises')
    await writeFile(`${tools.dir}/go-fails`, '')
    await expect(makeDriver().ensureInterface(spec)).rejects.toMatchObject({ name: 'WireGuardInterfaceError', message: expect.stringContaining('wireguard-go kt0') })
    await expect(makeDriver({ mode: 'kernel' }).ensureInterface(spec)).rejects.toMatchObject({ name: 'WireGuardInterfaceError', message: expect.stringContaining('Unknown device type') })
  })

  it('rejects a bad interface name and wraps a missing program with the command', async () => {
    await expect(makeDriver().ensureInterface({ ...spec, name: 'much-too-long-name0' })).rejects.toMatchObject({ name: 'InterfaceNameError' })
    await expect(makeDriver({ ip: '/nonexistent/ip' }).ensureInterface(spec)).rejects.toMatchObject({ name: 'WireGuardCommandError', message: expect.stringContaining('/nonexistent/ip -d -j -4 address show dev kt0') })
  })
})
