import type { InstallPlan } from '../install-plan.ts'
import type { InstallBackend } from './backend.ts'
import { InstallerError } from './errors.ts'
import { runCommand } from './run.ts'

/** What the exec installer needs. */
export interface ExecBackendInit {
  /** argv of the configured command (`p2p.installer.command`). */
  command: readonly string[]
  /** Base environment; the plan's `execEnv` is added on top. */
  env: NodeJS.ProcessEnv
  /** Kills the command after this long, ms. */
  timeoutMs: number
}

/**
 * `exec` installer: runs the configured command with the plan in its
 * environment (`KAIROS_ROLE`, `KAIROS_SERVER_URL`, `KAIROS_TOKEN`, …). The
 * token never goes into argv, where every local user could read it.
 */
export function createExecBackend (init: ExecBackendInit): InstallBackend {
  return {
    async apply (plan: InstallPlan, _previous, signal) {
      const secrets = [plan.execEnv.KAIROS_TOKEN, plan.execEnv.KAIROS_AGENT_TOKEN].filter((s): s is string => s !== undefined && s !== '')
      if (init.command.some((arg) => secrets.some((secret) => arg.includes(secret)))) {
        throw new InstallerError('p2p.installer.command contains a cluster token; pass it through $KAIROS_TOKEN instead of argv', { command: ['exec', '<command with a token redacted>'] })
      }
      const { stdout } = await runCommand(init.command, {
        env: { ...init.env, ...plan.execEnv },
        timeoutMs: init.timeoutMs,
        ...(signal === undefined ? {} : { signal })
      })
      const last = stdout.trimEnd().split('\n').at(-1) ?? ''
      return `ran ${init.command.join(' ')}${last === '' ? '' : `: ${last.slice(0, 200)}`}`
    }
  }
}
