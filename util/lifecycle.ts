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
