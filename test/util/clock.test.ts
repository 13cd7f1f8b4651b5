import { describe, expect, it } from 'vitest'
import { ManualClock, systemClock } from '../../util/clock.ts'

describe('ManualClock', () => {
  it('wakes sleepers in deadline order as time advances', async () => {
    const clock = new ManualClock(1000)
    const woke: string[] = []
    const a = clock.sleep(30).then(() => { woke.push(`a@${clock.now()}`) })
    const b = clock.sleep(10).then(() => { woke.push(`b@${clock.now()}`) })
    await clock.advanceAsync(20)
    await b
    expect(woke).toEqual(['b@1010'])
    await clock.advanceAsync(20)
    await a
    expect(woke).toEqual(['b@1010', 'a@1030'])
    expect(clock.now()).toBe(1040)
  })

  it('advance resolves due sleepers in order, observed after the advance', async () => {
    const clock = new ManualClock(0)
    const woke: string[] = []
    const a = clock.sleep(30).then(() => { woke.push('a') })
    const b = clock.sleep(10).then(() => { woke.push('b') })
    const c = clock.sleep(100).then(() => { woke.push('c') })
    clock.advance(50)
    await Promise.all([a, b])
    expect(woke).toEqual(['b', 'a'])
    expect(clock.now()).toBe(50)
    clock.advance(50)
    await c
  })

  it('rejects a sleep when its signal aborts', async () => {
    const clock = new ManualClock()
    const ac = new AbortController()
    const p = clock.sleep(100, ac.signal)
    ac.abort(new Error('stop'))
    await expect(p).rejects.toThrow('stop')
  })

  it('refuses to go back in time', () => {
    const clock = new ManualClock(50)
    expect(() => { clock.set(10) }).toThrow(RangeError)
  })
})

describe('systemClock', () => {
  it('sleep rejects at once on an aborted signal', async () => {
    await expect(systemClock.sleep(10_000, AbortSignal.abort(new Error('gone')))).rejects.toThrow('gone')
  })
})
