import { describe, expect, it } from 'vitest'
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { execa } from 'execa'
import { renderUnit, unitCommand } from '../../box/unit.ts'
import { glibcFloorOf, parseGlibcVersion, renderLauncher } from '../../box/launcher.ts'
import { AGENT_MALLOC_ENV } from '../../box/runtime.ts'
import { BOX_CONFIG_PATH, INSTALL_PREFIX, KAIROS_PERSISTENT_PATHS, LAUNCHER_PATH, UNIT_SUBPATH, EXECUTABLE_SUBPATH } from '../../box/paths.ts'
import { DEFAULT_STATE_DIR } from '../../config/defaults.ts'

const persistent = (path: string): boolean => KAIROS_PERSISTENT_PATHS.some((p) => path === p || path.startsWith(`${p}/`))

describe('the systemd unit', () => {
  const unit = renderUnit()
  const lines = unit.split('\n')

  it('starts after the network is online, restarts always and stops the agent alone', () => {
    expect(lines).toContain('After=network-online.target')
    expect(lines).toContain('Wants=network-online.target')
    expect(lines).toContain('Restart=always')
    expect(lines).toContain('KillMode=process')
    expect(lines).toContain('StandardError=journal')
    expect(lines).toContain('WantedBy=multi-user.target')
  })

  it('runs the launcher with the box config, as unitCommand says', () => {
    expect(lines).toContain(`ExecStart=${unitCommand().join(' ')}`)
    expect(unitCommand()).toEqual([LAUNCHER_PATH, 'agent', '--config', BOX_CONFIG_PATH, '--log-format', 'json'])
    expect(lines).toContain(`ConditionPathExists=${BOX_CONFIG_PATH}`)
  })

  it('and everything it reads or writes lives where Kairos keeps it across reboots', () => {
    for (const path of [LAUNCHER_PATH, BOX_CONFIG_PATH, DEFAULT_STATE_DIR, join(INSTALL_PREFIX, UNIT_SUBPATH), join(INSTALL_PREFIX, EXECUTABLE_SUBPATH)]) {
      expect(persistent(path), path).toBe(true)
    }
  })
})

describe('the launcher', () => {
  it('reads the glibc floor as the highest GLIBC_ symbol version', () => {
    const objdump = [
      '0000000000000000      DF *UND*  0000000000000000 (GLIBC_2.2.5) memcpy',
      '0000000000000000      DF *UND*  0000000000000000 (GLIBC_2.28)  fcntl64',
      '0000000000000000      DF *UND*  0000000000000000 (GLIBC_2.9)   pipe2',
      '0000000000000000      DF *UND*  0000000000000000 (GLIBCXX_3.4.30) _ZSt4cout'
    ].join('\n')
    expect(glibcFloorOf(objdump)).toBe('2.28')
    expect(() => glibcFloorOf('no versions here')).toThrow(/no GLIBC_ symbol version/)
  })

  it('takes only major.minor into the script', () => {
    expect(parseGlibcVersion('2.28')).toEqual([2, 28])
    expect(() => renderLauncher({ glibcFloor: '2.28; rm -rf /' })).toThrow(/not major\.minor/)
    expect(renderLauncher({ glibcFloor: '2.31' })).toContain('[ "$major" -eq 2 ] && [ "$minor" -lt 31 ]')
  })

  it('runs the executable with the agent\'s malloc settings, unless the environment sets its own', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'launcher-'))
    try {
      const launcher = join(dir, 'bin', 'kairos-p2p')
      const executable = join(dir, EXECUTABLE_SUBPATH)
      await mkdir(dirname(launcher), { recursive: true })
      await mkdir(dirname(executable), { recursive: true })
      await writeFile(launcher, renderLauncher({ glibcFloor: '2.0' }), { mode: 0o755 })
      // The executable stand-in prints its malloc settings, then its arguments.
      await writeFile(executable, '#!/bin/sh\nenv | grep ^MALLOC_ | sort | tr "\\n" " "; printf "%s\\n" "$*"\n')
      await chmod(executable, 0o755)
      const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' }
      expect(AGENT_MALLOC_ENV.MALLOC_ARENA_MAX).toBe('2')
      const settings = (over: Record<string, string> = {}): string => Object.entries({ ...AGENT_MALLOC_ENV, ...over }).sort(([a], [b]) => a < b ? -1 : 1).map(([k, v]) => `${k}=${v} `).join('')
      expect((await execa(launcher, ['agent', '--help'], { env, extendEnv: false })).stdout).toBe(`${settings()}agent --help`)
      expect((await execa(launcher, ['agent'], { env: { ...env, MALLOC_ARENA_MAX: '4' }, extendEnv: false })).stdout).toBe(`${settings({ MALLOC_ARENA_MAX: '4' })}agent`)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
