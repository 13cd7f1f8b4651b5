import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { K3sSection } from '../../../config/types.ts'
import { buildInstallPlan, type InstallPlan, type InstallPlanInput } from '../../../roles/install-plan.ts'

export const SERVER_TOKEN = 'f'.repeat(64)
export const AGENT_TOKEN = 'e'.repeat(64)
const empty: K3sSection = { enabled: false, args: [], env: {} }

/** A plan for `role`, with optional overrides of the input. */
export function plan (role: InstallPlanInput['role'], over: Partial<InstallPlanInput> = {}): InstallPlan {
  const base: InstallPlanInput = role === 'agent'
    ? { role, serverUrl: 'https://10.88.0.1:6443', token: AGENT_TOKEN, k3s: empty, k3sAgent: empty, nodeIp: '10.88.0.9', flannelIface: 'kairos0' }
    : role === 'server'
      ? { role, serverUrl: 'https://10.88.0.1:6443', token: SERVER_TOKEN, agentToken: AGENT_TOKEN, k3s: empty, k3sAgent: empty, nodeIp: '10.88.0.2', flannelIface: 'kairos0' }
      : { role, token: SERVER_TOKEN, agentToken: AGENT_TOKEN, k3s: empty, k3sAgent: empty, nodeIp: '10.88.0.1', flannelIface: 'kairos0' }
  return buildInstallPlan({ ...base, ...over })
}

/** A scratch area: state dir, installer root and a bin dir for fake programs. */
export interface Scratch {
  dir: string
  stateDir: string
  root: string
  bin: string
  /** Environment whose PATH finds the fake programs first. */
  env: NodeJS.ProcessEnv
  /** Writes an executable `/bin/sh` script into `bin`. */
  program(name: string, body: string): Promise<string>
  remove(): Promise<void>
}

export async function scratch (): Promise<Scratch> {
  const dir = await mkdtemp(join(tmpdir(), 'installer-'))
  const bin = join(dir, 'bin')
  await mkdir(bin)
  return {
    dir,
    stateDir: join(dir, 'state'),
    root: join(dir, 'root'),
    bin,
    env: { PATH: `${bin}:/usr/bin:/bin`, LANG: 'C' },
    program: async (name, body) => {
      const path = join(bin, name)
      await writeFile(path, `#!/bin/sh\n${body}\n`)
      await chmod(path, 0o755)
      return path
    },
    remove: async () => { await rm(dir, { recursive: true, force: true }) }
  }
}

/**
 * A fake `systemctl` that appends its argv (one call per line, args joined by
 * spaces) to `<dir>/systemctl.log`, and fails with a systemd-like message when
 * its argv contains `$FAKE_SYSTEMCTL_FAIL`.
 */
export async function fakeSystemctl (s: Scratch): Promise<{ calls: () => Promise<string[]> }> {
  const log = join(s.dir, 'systemctl.log')
  await s.program('systemctl', `echo "$*" >> '${log}'
if [ -n "$FAKE_SYSTEMCTL_FAIL" ]; then
  for last in "$@"; do :; done
  case "$*" in *"$FAKE_SYSTEMCTL_FAIL"*) echo "Failed to enable unit: Unit file $last.service does not exist." >&2; exit 1;; esac
fi
exit 0`)
  return {
    calls: async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').filter((l) => l !== '')
  }
}
