import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { corruptName, setAsideCorrupt } from '../../util/set-aside.ts'

let dir = ''
afterEach(async () => { if (dir !== '') await rm(dir, { recursive: true, force: true }) })

describe('setAsideCorrupt', () => {
  it('renames a damaged file to <file>.corrupt-<UTC time>, never over an earlier one, and keeps its content', async () => {
    dir = await mkdtemp(join(tmpdir(), 'set-aside-'))
    const file = join(dir, 'roles.json')
    const at = Date.UTC(2026, 11, 4, 22, 7, 12, 345)
    expect(corruptName(file, at)).toBe(`${file}.corrupt-20261204T220712Z`)
    await writeFile(file, 'first')
    expect(setAsideCorrupt(file, at)).toBe('roles.json.corrupt-20261204T220712Z')
    await writeFile(file, 'second')
    expect(setAsideCorrupt(file, at)).toBe('roles.json.corrupt-20261204T220712Z-2')
    expect((await readdir(dir)).sort()).toEqual(['roles.json.corrupt-20261204T220712Z', 'roles.json.corrupt-20261204T220712Z-2'])
    expect(await readFile(join(dir, 'roles.json.corrupt-20261204T220712Z'), 'utf8')).toBe('first')
    expect(() => setAsideCorrupt(file, at)).toThrow(/ENOENT/)
  })
})
