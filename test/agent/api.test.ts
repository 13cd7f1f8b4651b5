import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const root = join(import.meta.dirname, '..', '..')

describe('agent start-up', () => {
  it('loading the agent and its status API does not load undici (node:http imported as a module would)', async () => {
    const modules = ['agent/api.ts', 'agent/agent.ts', 'config/index.ts'].map((f) => pathToFileURL(join(root, f)).href)
    const script = `${modules.map((m) => `await import(${JSON.stringify(m)})`).join('; ')}; process.stdout.write(JSON.stringify(process.moduleLoadList.filter((m) => m.includes('undici'))))`
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { cwd: root })
    expect(JSON.parse(stdout)).toEqual([])
  }, 30_000)

  it('the check above sees undici when node:http is imported as a module', async () => {
    const script = "await import('node:http'); process.stdout.write(JSON.stringify(process.moduleLoadList.filter((m) => m.includes('undici'))))"
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script])
    expect(JSON.parse(stdout)).not.toEqual([])
  })
})
