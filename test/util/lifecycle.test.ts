import { describe, expect, it } from 'vitest'
import { createLifecycle, type NamedComponent } from '../../util/lifecycle.ts'

function component (name: string, log: string[], failStart = false): NamedComponent {
  return {
    name,
    start: async () => { if (failStart) throw new Error(`${name} failed`); log.push(`start ${name}`) },
    stop: async () => { log.push(`stop ${name}`) }
  }
}

describe('createLifecycle', () => {
  it('starts in order and stops in reverse', async () => {
    const log: string[] = []
    const lc = createLifecycle([component('a', log), component('b', log), component('c', log)])
    await lc.start()
    await lc.stop()
    expect(log).toEqual(['start a', 'start b', 'start c', 'stop c', 'stop b', 'stop a'])
  })

  it('stops what already started when a start fails', async () => {
    const log: string[] = []
    const lc = createLifecycle([component('a', log), component('b', log), component('c', log, true)])
    await expect(lc.start()).rejects.toThrow('c failed')
    expect(log).toEqual(['start a', 'start b', 'stop b', 'stop a'])
  })

  it('stop is idempotent and reports stop errors without throwing', async () => {
    const log: string[] = []
    const errors: string[] = []
    const bad: NamedComponent = { name: 'bad', start: async () => {}, stop: async () => { throw new Error('boom') } }
    const lc = createLifecycle([component('a', log), bad], (name) => { errors.push(name) })
    await lc.start()
    await Promise.all([lc.stop(), lc.stop()])
    await lc.stop()
    expect(log).toEqual(['start a', 'stop a'])
    expect(errors).toEqual(['bad'])
  })
})
