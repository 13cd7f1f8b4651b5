import { readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { decodeSnapshot, encodeSnapshot, STATE_FILE } from '../../../p2p/state/persist.ts'
import { ManualClock } from '../../../util/clock.ts'
import type { Logger } from '../../../util/log.ts'
import { store, tempDir } from './fixtures.ts'

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => { for (const c of cleanups.splice(0)) await c() })

async function dir (): Promise<string> {
  const t = await tempDir()
  cleanups.push(t.remove)
  return t.dir
}

function recordingLogger (): Logger & { warnings: string[] } {
  const warnings: string[] = []
  const log: Logger & { warnings: string[] } = {
    warnings,
    debug: () => {}, info: () => {}, error: () => {},
    warn: (msg, fields) => { warnings.push(`${msg} ${JSON.stringify(fields)}`) },
    child: () => log
  }
  return log
}

/** Polls `check` until it holds or the deadline passes. */
async function eventually (check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!await check()) {
    if (Date.now() > deadline) throw new Error('condition not met before the deadline')
    await new Promise(resolve => setImmediate(resolve))
  }
}

describe('snapshot encoding', () => {
  it('round-trips and refuses any truncation or bit flip', () => {
    const wires = [Uint8Array.of(1, 2, 3), new Uint8Array(300).fill(9)]
    const bytes = encodeSnapshot(wires)
    expect(decodeSnapshot(bytes)?.wires).toEqual(wires)
    for (let cut = 0; cut < bytes.length; cut += 7) expect(decodeSnapshot(bytes.subarray(0, cut))).toBeUndefined()
    const flipped = bytes.slice()
    flipped[20] = (flipped[20] as number) ^ 0x10
    expect(decodeSnapshot(flipped)).toBeUndefined()
  })
})

describe('state store persistence', () => {
  it('a put is on disk (mode 0600) after flush()', async () => {
    const d = await dir()
    const a = await store(1, { dir: d })
    const { wire } = await a.put('vpn/advert', { ip: '10.1.0.2' })
    await a.flush()
    const file = join(d, STATE_FILE)
    expect(decodeSnapshot(new Uint8Array(await readFile(file)))?.wires).toEqual([wire])
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    expect((await readdir(d)).filter(f => f.includes('.tmp-'))).toEqual([])
  })

  it('concurrent puts all reach the file with the next flush', async () => {
    const d = await dir()
    const a = await store(1, { dir: d })
    await Promise.all(Array.from({ length: 20 }, async (_, i) => await a.put(`k${i}`, i)))
    await a.flush()
    expect(decodeSnapshot(new Uint8Array(await readFile(join(d, STATE_FILE))))?.wires).toHaveLength(20)
  })

  it('a put resolves before the state file is written; one write then carries every change made before it', async () => {
    const d = await dir()
    const b = await store(2)
    const remote = [(await b.put('r1', 1)).wire, (await b.put('r2', 2)).wire]
    const clock = new ManualClock(0)
    const writes: Array<{ entries: number, release: () => void }> = []
    const a = await store(1, {
      dir: d,
      clock,
      writeFile: async (_path, bytes) => await new Promise<void>((resolve) => { writes.push({ entries: decodeSnapshot(bytes)?.wires.length ?? -1, release: resolve }) })
    })
    await a.put('own', 1)
    expect(writes).toHaveLength(0)
    await clock.advanceAsync(200) // the flush delay
    await eventually(async () => writes.length === 1)
    // Remote entries committed while that write is in flight wait for the next one.
    for (const w of remote) await a.apply([w], b.self)
    const flushed = a.flush()
    writes[0]?.release()
    await eventually(async () => writes.length === 2)
    expect(writes.map((w) => w.entries)).toEqual([1, 3])
    writes[1]?.release()
    await flushed
  })

  it('a restart keeps own and remote entries and continues own versions', async () => {
    const d = await dir()
    const b = await store(2)
    const a = await store(1, { dir: d })
    await a.put('k', 1)
    await a.put('k', 2)
    await a.apply([(await b.put('remote', 'x')).wire], b.self)
    await a.close()
    const again = await store(1, { dir: d })
    expect(again.loadReport()).toMatchObject({ loaded: 2, corrupt: false, skipped: {} })
    expect(again.get(a.self, 'k')).toMatchObject({ version: 2, value: 2 })
    expect(again.get(b.self, 'remote')?.value).toBe('x')
    expect((await again.put('k', 3)).entry.version).toBe(3)
    expect(again.digest()).not.toEqual(a.digest())
  })

  it('writes remote changes after the flush delay on the injected clock', async () => {
    const d = await dir()
    const clock = new ManualClock(1000)
    const a = await store(1, { dir: d, clock, flushDelayMs: 200 })
    const b = await store(2)
    await a.apply([(await b.put('x', 1)).wire], b.self)
    const file = join(d, STATE_FILE)
    const onDisk = async (): Promise<number> => {
      try { return decodeSnapshot(new Uint8Array(await readFile(file)))?.wires.length ?? -1 } catch { return 0 }
    }
    expect(await onDisk()).toBe(0)
    clock.advance(200)
    await eventually(async () => await onDisk() === 1)
  })

  it('close flushes pending remote changes', async () => {
    const d = await dir()
    const a = await store(1, { dir: d, clock: new ManualClock(0) })
    const b = await store(2)
    await a.apply([(await b.put('x', 1)).wire], b.self)
    await a.close()
    expect((await store(1, { dir: d })).get(b.self, 'x')?.value).toBe(1)
  })

  it('a corrupt file is reported, kept aside and the store starts empty', async () => {
    const d = await dir()
    const file = join(d, STATE_FILE)
    await writeFile(file, 'not a snapshot at all')
    const logger = recordingLogger()
    const a = await store(1, { dir: d, clock: new ManualClock(1234), logger })
    const report = a.loadReport()
    expect(report).toMatchObject({ corrupt: true, loaded: 0, movedTo: `${file}.corrupt-1234` })
    expect(await readFile(`${file}.corrupt-1234`, 'utf8')).toBe('not a snapshot at all')
    expect(a.size().entries).toBe(0)
    expect(logger.warnings.some(w => w.includes('corrupt'))).toBe(true)
    await a.put('k', 1)
    await a.flush()
    expect((await store(1, { dir: d })).get(a.self, 'k')?.value).toBe(1)
  })

  it('a truncated file is reported as corrupt too', async () => {
    const d = await dir()
    const a = await store(1, { dir: d })
    await a.put('k', 'v')
    await a.flush()
    const file = join(d, STATE_FILE)
    const bytes = await readFile(file)
    await writeFile(file, bytes.subarray(0, bytes.length - 5))
    const again = await store(1, { dir: d, logger: recordingLogger() })
    expect(again.loadReport().corrupt).toBe(true)
    expect(again.size().entries).toBe(0)
  })

  it('entries sealed under another state key are skipped and reported, not loaded', async () => {
    const d = await dir()
    const a = await store(1, { dir: d })
    await a.put('k', 'v')
    await a.close()
    const rekeyed = await store(1, { dir: d, stateKey: new Uint8Array(32).fill(1), logger: recordingLogger() })
    expect(rekeyed.loadReport()).toMatchObject({ corrupt: false, loaded: 0, skipped: { undecryptable: 1 } })
    expect(rekeyed.size().entries).toBe(0)
    // the own version is still remembered: a later put does not reuse it
    expect((await rekeyed.put('k', 'w')).entry.version).toBe(2)
  })

  it('a failed write rejects flush() with StatePersistError; the put itself holds', async () => {
    const d = await dir()
    const a = await store(1, { dir: join(d, 'sub'), flushDelayMs: 3_600_000 })
    await writeFile(join(d, 'blocker'), '')
    // Replace the state directory by a file so the next write cannot happen.
    await rm(join(d, 'sub'), { recursive: true })
    await rename(join(d, 'blocker'), join(d, 'sub'))
    await a.put('k', 1)
    expect(a.get(a.self, 'k')?.value).toBe(1)
    await expect(a.flush()).rejects.toMatchObject({ name: 'StatePersistError' })
  })
})

describe('state file format 01', () => {
  it('is still read (entries only, no notes or tombstones)', async () => {
    const { createHash } = await import('node:crypto')
    const { ByteWriter } = await import('../../../p2p/state/codec.ts')
    const wires = [new Uint8Array([1, 2, 3]), new Uint8Array([4])]
    const w = new ByteWriter().raw(new TextEncoder().encode('KP2PST01')).varint(wires.length)
    for (const x of wires) w.bytes(x)
    const body = w.finish()
    const file = new Uint8Array([...body, ...createHash('sha256').update(body).digest()])
    expect(decodeSnapshot(file)).toEqual({ wires, notes: [], tombstones: [] })
  })
})
