import { join } from 'node:path'
import type { Logger } from '../../util/log.ts'
import type { InstallPlan } from '../install-plan.ts'
import type { InstallBackend } from './backend.ts'
import { readIfExists, writeIfChanged } from './files.ts'
import { runCommand } from './run.ts'

/** Where k3s reads its configuration, relative to the installer root. */
export const K3S_CONFIG_PATH = 'etc/rancher/k3s/config.yaml'

/** Header of the service environment files we write. */
export const ENV_FILE_HEADER = '# Written by kairos-p2p from k3s.env / k3s-agent.env; local edits are replaced on the next hand-off.\n'

/** What the k3s installer needs. */
export interface K3sBackendInit {
  /** Filesystem root holding `etc/rancher/k3s` and `etc/systemd/system`. */
  root: string
  /** Environment for `systemctl` (PATH selects the binary). */
  env: NodeJS.ProcessEnv
  /** Per-command timeout, ms. */
  timeoutMs: number
  /** Receives each systemctl call at debug level. */
  logger: Logger
}

/** The environment file the k3s install script's units read (`EnvironmentFile=-…`). */
export function envFilePath (root: string, service: string): string {
  return join(root, 'etc/systemd/system', `${service}.service.env`)
}

/**
 * Renders a systemd EnvironmentFile: one `NAME="value"` per line, sorted, with
 * `\` and `"` escaped (values are single-line; the plan guarantees it).
 */
export function renderEnvFile (env: Record<string, string>): string {
  const lines = Object.keys(env).sort().map((name) => `${name}="${(env[name] ?? '').replace(/[\\"]/g, (c) => `\\${c}`)}"`)
  return ENV_FILE_HEADER + lines.map((l) => l + '\n').join('')
}

/**
 * `k3s` installer: writes config.yaml and the service environment file (both
 * 0600, atomically), then enables and starts the service through systemctl.
 *
 * Starts use `--no-block`: the k3s units are `Type=notify` with no start timeout,
 * so a blocking start of an agent whose server is not reachable yet would never
 * return; k3s keeps retrying on its own and the status reports progress.
 * The first start of a service is preceded by `daemon-reload`; a changed plan
 * restarts the service; a role change (server ↔ agent) disables the service of
 * the previous role first.
 */
export function createK3sBackend (init: K3sBackendInit): InstallBackend {
  const configPath = join(init.root, K3S_CONFIG_PATH)
  const systemctl = async (args: string[], signal: AbortSignal | undefined): Promise<void> => {
    init.logger.debug('systemctl', { args })
    await runCommand(['systemctl', ...args], { env: init.env, timeoutMs: init.timeoutMs, ...(signal === undefined ? {} : { signal }) })
  }
  return {
    async apply (plan: InstallPlan, previous, signal) {
      const steps: string[] = []
      if (previous?.kind === 'k3s' && previous.service !== plan.service) {
        await systemctl(['disable', '--now', '--no-block', previous.service], signal)
        steps.push(`disabled ${previous.service}`)
      }
      const wroteConfig = await writeIfChanged(configPath, plan.configYaml, 0o600)
      const wroteEnv = await writeIfChanged(envFilePath(init.root, plan.service), renderEnvFile(plan.env), 0o600)
      if (wroteConfig) steps.push(`wrote ${configPath}`)
      if (wroteEnv) steps.push(`wrote ${envFilePath(init.root, plan.service)}`)
      const running = previous?.kind === 'k3s' && previous.service === plan.service
      // systemd reads config.yaml and the env file at start, so a changed plan
      // needs no reload; the first start does, for a unit laid down since boot.
      if (!running) await systemctl(['daemon-reload'], signal)
      if (running) {
        await systemctl(['enable', plan.service], signal)
        await systemctl(['restart', '--no-block', plan.service], signal)
        steps.push(`restarted ${plan.service}`)
      } else {
        await systemctl(['enable', '--now', '--no-block', plan.service], signal)
        steps.push(`enabled and started ${plan.service}`)
      }
      return steps.join(', ')
    },
    async isCurrent (plan: InstallPlan) {
      return await readIfExists(configPath) === plan.configYaml
    }
  }
}
