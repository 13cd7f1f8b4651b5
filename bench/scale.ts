// The state one node holds at 100, 300 and 1 000 members, and what it costs.
//
// For N = 100 and 300 the simulation (production membership, merge, roles and sealing)
// forms a site of N nodes on a clean network; the entries of its largest replica are
// then written again by N real identities with the production store (signed and
// encrypted) and applied to one fresh production store, as a node's replica. For
// N = 1 000 (KAIROS_BENCH_SCALE_1000=1 runs the simulation at that size too, which
// takes tens of minutes here) the entries per owner of the 300-node site are given to
// 1 000 identities, and the init server's credentials one per member.
// Per N: the simulation's wall time and peak memory, and for the one replica its
// entries, owners, wire bytes, state file bytes, digest bytes, memory (heap and buffers), entries refused
// (and why), and the time to apply the whole replica to an empty store.
// Each size runs in its own process, so peak memory is its own. Prints one JSON line.
import { execFile } from 'node:child_process'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import type { Ed25519PrivateKey } from '@libp2p/interface'

const ONE = '--one'

if (process.argv.includes(ONE)) {
  const n = Number(process.argv[process.argv.indexOf(ONE) + 1])
  process.stdout.write(`${JSON.stringify(await measure(n))}\n`)
  process.exit(0)
}

const sizes = [100, 300, 1_000]
const result: Record<string, unknown> = { timing: 'lab', faults: 'none' }
const failures: string[] = []
// A parent ended (bench/run.ts's timeout) ends the size under way with it.
let running: ReturnType<typeof execFile> | undefined
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => { running?.kill(); process.exit(1) })
for (const n of sizes) {
  process.stderr.write(`scale: N=${n}\n`)
  // The simulation at 1 000 members peaks near 1.5 GB: room above Node's default heap limit on small machines.
  const args = ['--expose-gc', ...(n >= 1_000 ? ['--max-old-space-size=8192'] : []), fileURLToPath(import.meta.url), ONE, String(n)]
  try {
    const pending = promisify(execFile)(process.execPath, args, { maxBuffer: 1 << 24, env: process.env })
    running = pending.child
    const { stdout } = await pending
    result[`n${n}`] = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}')
  } catch (err) {
    // Why the child failed: its exit and the last lines it wrote to stderr.
    const e = err as { code?: unknown, signal?: unknown, stderr?: unknown, message?: string }
    const tail = typeof e.stderr === 'string' ? e.stderr.trim().split('\n').slice(-8).join(' | ') : ''
    const exit = e.signal !== undefined && e.signal !== null ? `signal ${String(e.signal)}` : `exit ${String(e.code ?? '?')}`
    const error = `N=${n}: ${exit}${tail === '' ? `: ${e.message ?? String(err)}` : `: ${tail}`}`
    result[`n${n}`] = { failed: true, error }
    failures.push(error)
    process.stderr.write(`scale: ${error}\n`)
  }
}
process.stdout.write(`${JSON.stringify(result)}\n`)
if (failures.length > 0) {
  process.stderr.write(`scale: failed: ${failures.join('; ')}\n`)
  process.exitCode = 1
}

/** Runs full collections (with a turn of the event loop for finalizers) until the heap shrinks by less than 64 KB, at most 10. */
async function settleHeap (used: () => number): Promise<void> {
  let last = Infinity
  for (let i = 0; i < 10 && globalThis.gc !== undefined; i++) {
    globalThis.gc()
    await new Promise((resolve) => setImmediate(resolve))
    const now = used()
    if (last - now < 65_536) return
    last = now
  }
}

async function measure (n: number): Promise<Record<string, unknown>> {
  const { PRESETS } = await import('../config/presets.ts')
  const { runSimulation } = await import('../sim/sim.ts')
  const { createStateStore } = await import('../p2p/state/store.ts')
  const { STATE_FILE } = await import('../p2p/state/persist.ts')
  const { advertValue, VPN_ADVERT_KEY } = await import('../vpn/peers.ts')
  const { MEMBER_KEY } = await import('../p2p/node.ts')
  const { randomBytes } = await import('node:crypto')
  const { generateKeyPairFromSeed } = await import('@libp2p/crypto/keys')
  const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')
  type Entry = NonNullable<ReturnType<typeof runSimulation>['state']>[number]

  const simulate = n < 1_000 || process.env.KAIROS_BENCH_SCALE_1000 === '1'
  const simN = simulate ? n : 300
  const started = performance.now()
  const sim = runSimulation({ seed: 1, nodes: simN, minimumNodes: Math.floor(simN / 2) + 1, timing: PRESETS.lab, faults: 'none', keepState: true })
  const simSeconds = (performance.now() - started) / 1000
  const simPeakRssMb = Math.round(process.resourceUsage().maxRSS / 1024)
  let entries: Entry[] = sim.state ?? []
  if (!simulate) entries = scaleUp(entries, n)
  // The simulation runs no overlay and no presence: each member also holds its WireGuard advert and presence entry.
  const owners = [...new Set(entries.map((e) => e.owner))]
  owners.forEach((owner, k) => {
    const advert = advertValue({ publicKey: randomBytes(32).toString('base64'), port: 51820, endpoints: [`10.${k >> 16}.${(k >> 8) & 255}.${k & 255}:51820`, `[fd00::${k.toString(16)}]:51820`], address: `10.99.${k >> 8}.${k & 255}`, attempt: 0 })
    entries.push({ owner, key: VPN_ADVERT_KEY, value: advert, version: 1, writtenAt: 0 }, { owner, key: MEMBER_KEY, value: { since: 1_796_000_000_000 }, version: 1, writtenAt: 0 })
  })

  // Each owner writes its entries again with the production store (versions as held).
  const byOwner = new Map<string, Entry[]>()
  for (const e of entries) {
    const list = byOwner.get(e.owner)
    if (list === undefined) byOwner.set(e.owner, [e])
    else list.push(e)
  }
  const stateKey = new Uint8Array(32).fill(7)
  const identity = async (i: number): Promise<{ privateKey: Ed25519PrivateKey, self: string }> => {
    const seed = new Uint8Array(32)
    new DataView(seed.buffer).setUint32(0, i + 1)
    const privateKey = await generateKeyPairFromSeed('Ed25519', seed)
    return { privateKey, self: peerIdFromPrivateKey(privateKey).toString() }
  }
  const identities = new Map<string, { privateKey: Ed25519PrivateKey, self: string }>()
  for (const owner of byOwner.keys()) identities.set(owner, await identity(identities.size))
  const ids = new Map([...identities].map(([owner, id]) => [owner, id.self]))
  const rename = (v: unknown): unknown => {
    if (typeof v === 'string') return ids.get(v) ?? v
    if (Array.isArray(v)) return v.map(rename)
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [ids.get(k) ?? k, rename(x)]))
    return v
  }
  const wires: Uint8Array[] = []
  for (const [owner, list] of byOwner) {
    const id = identities.get(owner) as { privateKey: Ed25519PrivateKey, self: string }
    const writer = await createStateStore({ ...id, stateKey, limits: { maxEntriesPerOwner: 1 << 20, maxOwnerBytes: 1 << 26 } })
    for (const e of list) {
      const key = rename(e.key) as string
      let wire: Uint8Array | undefined
      for (let v = 0; v < e.version; v++) wire = (await writer.put(key, rename(e.value) as never)).wire
      if (wire !== undefined) wires.push(wire)
    }
    await writer.close()
  }

  // One node's replica: every wire entry applied to a fresh production store with its defaults.
  const dir = await mkdtemp(join(tmpdir(), 'kairos-scale-'))
  try {
    const self = await identity(1 << 20)
    // The simulation's garbage must be gone before the baseline, or collecting it later
    // makes the store's figure small or negative: collect until the heap stops shrinking.
    const used = (): number => { const m = process.memoryUsage(); return m.heapUsed + m.arrayBuffers }
    await settleHeap(used)
    const heapBefore = used()
    const store = await createStateStore({ ...self, stateKey, dir, flushDelayMs: 0 })
    // Copies made after the baseline, as bytes off the network are: whatever the store keeps of them counts.
    const arriving = wires.map((w) => w.slice())
    const applyStarted = performance.now()
    const applied = await store.apply(arriving, [...ids.values()][0] ?? '')
    const applySeconds = (performance.now() - applyStarted) / 1000
    arriving.length = 0
    await store.flush()
    await settleHeap(used)
    const memoryMb = (used() - heapBefore) / 1e6
    const fileBytes = (await stat(join(dir, STATE_FILE))).size
    const wireBytes = wires.reduce((sum, w) => sum + w.length, 0)
    const out = {
      simulated: simulate,
      ...(simulate ? { simSeconds: round(simSeconds), simPeakRssMb, simFormed: sim.formationMs !== undefined && sim.violations.length === 0 } : { from: 'the 300-node site, per owner' }),
      members: n,
      entries: wires.length,
      owners: byOwner.size,
      accepted: applied.accepted.length,
      refused: applied.rejected,
      wireKb: round(wireBytes / 1024),
      stateFileKb: round(fileBytes / 1024),
      digestKb: round(store.digest().length / 1024),
      memoryMb: round(memoryMb),
      applySeconds: round(applySeconds)
    }
    await store.close()
    return out
  } finally {
    await rm(dir, { recursive: true, force: true })
  }

  /** The 300-node site's entries for `size` owners: each new owner copies an agent's entries; the init server seals one credential per member. */
  function scaleUp (list: Entry[], size: number): Entry[] {
    const owners = [...new Set(list.map((e) => e.owner))]
    const init = list.find((e) => e.key === 'roles/cluster')?.owner
    const template = owners.find((o) => o !== init && list.some((e) => e.owner === o && e.key === 'roles/status')) ?? owners[0]
    const cred = list.find((e) => e.owner === init && e.key.startsWith('cred/'))
    const out = [...list]
    for (let k = owners.length; k < size; k++) {
      const owner = `sim-extra-${k}`
      for (const e of list) if (e.owner === template) out.push({ ...e, owner })
      if (cred !== undefined && init !== undefined) out.push({ ...cred, key: `cred/${owner}` })
    }
    return out
  }
}

function round (x: number): number {
  return Math.round(x * 100) / 100
}
