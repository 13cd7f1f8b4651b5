import { EventEmitter } from 'node:events'
import { describe, expect, it } from 'vitest'
import { FATAL_EXIT_CODE, installFatalHandlers } from '../../util/fatal.ts'
import { createLogger } from '../../util/log.ts'

function setup (stop?: () => Promise<void>, stopTimeoutMs = 5_000): { target: EventEmitter, lines: Array<Record<string, unknown>>, exited: Promise<number>, uninstall: () => void } {
  const target = new EventEmitter()
  const lines: Array<Record<string, unknown>> = []
  const logger = createLogger({ format: 'json', write: (l) => { lines.push(JSON.parse(l) as Record<string, unknown>) } })
  let exit: (code: number) => void = () => {}
  const exited = new Promise<number>((resolve) => { exit = resolve })
  const { uninstall } = installFatalHandlers({ logger, target, exit, stopTimeoutMs, ...(stop === undefined ? {} : { stop }) })
  return { target, lines, exited, uninstall }
}

describe('installFatalHandlers', () => {
  it('logs an unhandled rejection, stops, then exits 1', async () => {
    const order: string[] = []
    const { target, lines, exited } = setup(async () => { order.push('stop') })
    target.emit('unhandledRejection', new Error('loop died'))
    expect(await exited).toBe(FATAL_EXIT_CODE)
    expect(FATAL_EXIT_CODE).toBe(1)
    expect(order).toEqual(['stop'])
    expect(lines[0]).toMatchObject({ level: 'error', msg: 'fatal: unhandled rejection; stopping and exiting', error: 'loop died' })
    expect(lines[0]?.stack).toMatch(/loop died/)
    expect(lines.at(-1)).toMatchObject({ msg: 'stopped after a fatal error' })
  })

  it('an uncaught exception with nothing to stop exits at once', async () => {
    const { target, lines, exited } = setup()
    target.emit('uncaughtException', new TypeError('bad'))
    expect(await exited).toBe(1)
    expect(lines).toHaveLength(1)
  })

  it('a stop that hangs is given up after its bound', async () => {
    const { target, lines, exited } = setup(async () => { await new Promise(() => {}) }, 20)
    target.emit('unhandledRejection', 'not an Error')
    expect(await exited).toBe(1)
    expect(lines.map((l) => l.msg)).toEqual(['fatal: unhandled rejection; stopping and exiting', 'fatal: stop did not finish in time'])
  })

  it('a stop that fails still exits; a second fatal error exits at once', async () => {
    const first = setup(async () => { throw new Error('stop broke') })
    first.target.emit('unhandledRejection', new Error('a'))
    expect(await first.exited).toBe(1)
    expect(first.lines.at(-1)).toMatchObject({ msg: 'fatal: stop failed', error: 'stop broke' })

    const second = setup(async () => { await new Promise(() => {}) })
    second.target.emit('unhandledRejection', new Error('a'))
    second.target.emit('uncaughtException', new Error('b'))
    expect(await second.exited).toBe(1)
  })

  it('uninstall removes both handlers', () => {
    const { target, uninstall } = setup()
    expect(target.listenerCount('unhandledRejection')).toBe(1)
    uninstall()
    expect(target.listenerCount('unhandledRejection') + target.listenerCount('uncaughtException')).toBe(0)
  })
})
