import { constants } from 'node:fs'
import { access, stat } from 'node:fs/promises'
import { delimiter, join } from 'node:path'

/** The first executable file `name` in `env.PATH`, then in `extraDirs`; undefined when there is none. */
export async function findOnPath (name: string, env: NodeJS.ProcessEnv, extraDirs: readonly string[] = []): Promise<string | undefined> {
  const dirs = [...(env.PATH ?? '').split(delimiter).filter((d) => d !== ''), ...extraDirs]
  for (const dir of dirs) {
    const file = join(dir, name)
    try {
      await access(file, constants.X_OK)
      if ((await stat(file)).isFile()) return file
    } catch { /* not here */ }
  }
  return undefined
}
