import { describe, expect, it } from 'vitest'
import { concurrently, createLifecycle, type NamedComponent } from '../../util/lifecycle.ts'

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

describe('concurrently', () => {
  /** A part whose start waits for `gate`: parts started together are all in flight at once. */
  function gated (name: string, log: string[], gate: Promise<void>, failStart = false): NamedComponent {
    return {
      name,
      start: async () => { log.push(`begin ${name}`); await gate; if (failStart) throw new Error(`${name} failed`); log.push(`start ${name}`) },
      stop: async () => { log.push(`stop ${name}`) }
    }
  }

  it('starts the parts side by side and stops them in reverse list order', async () => {
    const log: string[] = []
    let open = (): void => {}
    const gate = new Promise<void>((resolve) => { open = resolve })
    const group = concurrently('g', [gated('a', log, gate), gated('b', log, gate), gated('c', log, gate)])
    const starting = group.start()
    await new Promise((resolve) => setImmediate(resolve))
    expect(log).toEqual(['begin a', 'begin b', 'begin c'])
    open()
    await starting
    await group.stop()
    expect(log.slice(6)).toEqual(['stop c', 'stop b', 'stop a'])
  })

  it('a failed part stops the parts that started and fails the start with its error', async () => {
    const log: string[] = []
    const group = concurrently('g', [component('a', log), gated('b', log, Promise.resolve(), true), component('c', log)])
    await expect(group.start()).rejects.toThrow('b failed')
    expect(log.filter((l) => l.startsWith('stop'))).toEqual(['stop c', 'stop a'])
  })

  it('inside a lifecycle: starts after the earlier components, stops before them, and a stop error still stops the rest', async () => {
    const log: string[] = []
    const errors: string[] = []
    const bad: NamedComponent = { name: 'bad', start: async () => {}, stop: async () => { throw new Error('boom') } }
    const lc = createLifecycle([component('p2p', log), concurrently('rest', [component('a', log), bad, component('c', log)])], (name) => { errors.push(name) })
    await lc.start()
    await lc.stop()
    expect(log).toEqual(['start p2p', 'start a', 'start c', 'stop c', 'stop a', 'stop p2p'])
    expect(errors).toEqual(['rest'])
  })
})
