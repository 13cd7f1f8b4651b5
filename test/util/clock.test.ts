import { describe, expect, it } from 'vitest'
import { ManualClock, systemClock } from '../../util/clock.ts'

describe('ManualClock', () => {
  it('wakes sleepers in deadline order as time advances', async () => {
    const clock = new ManualClock(1000)
    const woke: string[] = []
    const a = clock.sleep(30).then(() => { woke.push(`a@${clock.now()}`) })
    const b = clock.sleep(10).then(() => { woke.push(`b@${clock.now()}`) })
    clock.advance(20)
    await b
    expect(woke).toEqual(['b@1010'])
    clock.advance(20)
    await a
    expect(woke).toEqual(['b@1010', 'a@1030'])
    expect(clock.now()).toBe(1040)
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
