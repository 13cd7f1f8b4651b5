/** Something with a start and a stop; stop is idempotent and prompt. */
export interface Startable {
  start: () => Promise<void>
  stop: () => Promise<void>
}

export interface NamedComponent extends Startable {
  name: string
}

/**
 * Starts components in order and stops them in reverse. When a start fails, the
 * components already started are stopped (in reverse) before the error is re-thrown.
 */
export function createLifecycle (components: NamedComponent[], onStopError?: (name: string, err: unknown) => void): Startable {
  const started: NamedComponent[] = []
  let stopping: Promise<void> | undefined
  const stopAll = async (): Promise<void> => {
    while (started.length > 0) {
      const c = started.pop() as NamedComponent
      try {
        await c.stop()
      } catch (err) {
        onStopError?.(c.name, err)
      }
    }
  }
  return {
    start: async () => {
      for (const c of components) {
        try {
          await c.start()
        } catch (err) {
          await stopAll()
          throw err
        }
        started.push(c)
      }
    },
    stop: async () => {
      stopping ??= stopAll().finally(() => { stopping = undefined })
      await stopping
    }
  }
}

/**
 * One component made of parts whose starts run side by side, for parts that need
 * nothing from each other and may each take seconds on a busy box. Stopped one by
 * one in reverse list order. When a start fails, the parts that did start are
 * stopped before the first error is re-thrown; a failed stop is re-thrown after the
 * other parts were stopped.
 */
export function concurrently (name: string, parts: NamedComponent[]): NamedComponent {
  const started = new Set<NamedComponent>()
  const stopStarted = async (): Promise<unknown[]> => {
    const errors: unknown[] = []
    for (const c of [...parts].reverse()) {
      if (!started.delete(c)) continue
      try {
        await c.stop()
      } catch (err) {
        errors.push(err)
      }
    }
    return errors
  }
  return {
    name,
    start: async () => {
      const results = await Promise.allSettled(parts.map(async (c) => { await c.start(); started.add(c) }))
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
      if (failed === undefined) return
      await stopStarted()
      throw failed.reason
    },
    stop: async () => {
      const [first] = await stopStarted()
      if (first !== undefined) throw first
    }
  }
}
