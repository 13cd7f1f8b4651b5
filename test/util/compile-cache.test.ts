import { execa } from 'execa'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'

const helper = fileURLToPath(new URL('../../util/compile-cache.ts', import.meta.url))
const dirs: string[] = []
afterEach(async () => { await Promise.all(dirs.splice(0).map(async (d) => { await rm(d, { recursive: true, force: true }) })) })

/**
 * Runs a module that may write the compile cache, then keeps running like an agent until the
 * test kills it with SIGKILL, as a box losing power would.
 */
async function runAndKill (persist: boolean, cache: string | undefined): Promise<{ said: string, files: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'kp2p-cc-'))
  dirs.push(dir)
  const script = join(dir, 'main.mjs')
  await writeFile(script, [
    `import { persistCompileCache } from ${JSON.stringify(helper)}`,
    `process.stdout.write(String(${persist ? 'persistCompileCache()' : 'false'}))`,
    'setInterval(() => {}, 1000)'
  ].join('\n'))
  const env = cache === undefined ? {} : { NODE_COMPILE_CACHE: cache }
  const child = execa(process.execPath, [script], { reject: false, env, extendEnv: cache !== undefined, buffer: false })
  const said = await new Promise<string>((resolve) => { child.stdout?.once('data', (d: Buffer) => { resolve(d.toString()) }) })
  child.kill('SIGKILL')
  await child
  const files = cache === undefined ? [] : (await readdir(cache, { recursive: true }).catch(() => [])).map(String)
  // Cache entries sit in a per-Node-version directory.
  return { said, files: files.filter((f) => f.includes('/')) }
}

describe('persistCompileCache', () => {
  it('writes the compile cache at once, so a process killed afterwards still leaves it', async () => {
    const cache = join(await mkdtemp(join(tmpdir(), 'kp2p-ccdir-')), 'cache')
    dirs.push(cache)
    const r = await runAndKill(true, cache)
    expect(r.said).toBe('true')
    expect(r.files.length).toBeGreaterThan(0)
  })

  it('without it, a killed process leaves no cache (the case it is for)', async () => {
    const cache = join(await mkdtemp(join(tmpdir(), 'kp2p-ccdir-')), 'cache')
    dirs.push(cache)
    expect((await runAndKill(false, cache)).files).toEqual([])
  })

  it('does nothing and says so when no compile cache is enabled', async () => {
    expect((await runAndKill(true, undefined)).said).toBe('false')
  })
})
