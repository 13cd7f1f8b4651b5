import { join } from 'node:path'
import { errorMessage } from '../../util/errors.ts'
import { findOnPath } from '../../util/find-on-path.ts'
import type { Logger } from '../../util/log.ts'
import type { InstallPlan } from '../install-plan.ts'
import type { InstallBackend } from './backend.ts'
import { readIfExists, writeIfChanged } from './files.ts'
import { runCommand } from './run.ts'

/** Where k3s reads its configuration, relative to the installer root. */
export const K3S_CONFIG_PATH = 'etc/rancher/k3s/config.yaml'

/** Header of the service environment files we write. */
export const ENV_FILE_HEADER = '# Written by kairos-p2p from k3s.env / k3s-agent.env; local edits are replaced on the next hand-off.\n'

/**
 * provider-kairos's name of each role in the stages it runs around its hand-off
 * (`provider-kairos.bootstrap.before.<name>` / `.after.<name>`), which users hook into
 * with Kairos `stages:`. docs/decisions.md (CRED-8) says why the init server runs `master`'s.
 */
export const KAIROS_STAGE_ROLE = { init: 'master', server: 'master/ha', agent: 'worker' } as const satisfies Record<InstallPlan['role'], string>

/** The Kairos stage run before (`before`) or after (`after`) the hand-off of `role`. */
export function kairosStage (when: 'before' | 'after', role: InstallPlan['role']): string {
  return `provider-kairos.bootstrap.${when}.${KAIROS_STAGE_ROLE[role]}`
}

/** The drop-in provider-kairos writes to replace a k3s unit's ExecStart; it would override config.yaml's flags. */
export function kairosOverridePath (root: string, service: string): string {
  return join(root, 'etc/systemd/system', `${service}.service.d`, 'override.conf')
}

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
  /**
   * Runs a Kairos stage through `kairos-agent run-stage` when kairos-agent is installed.
   * As in provider-kairos, a failing stage is reported (a warning) and the hand-off goes on.
   */
  const stage = async (name: string, steps: string[], signal: AbortSignal | undefined): Promise<void> => {
    const agent = await findOnPath('kairos-agent', init.env)
    if (agent === undefined) return
    try {
      await runCommand([agent, 'run-stage', name], { env: init.env, timeoutMs: init.timeoutMs, ...(signal === undefined ? {} : { signal }) })
      steps.push(`ran stage ${name}`)
    } catch (err) {
      if (signal?.aborted === true) throw err
      init.logger.warn('Kairos stage failed; handing off anyway', { stage: name, error: errorMessage(err) })
      steps.push(`stage ${name} failed`)
    }
  }
  return {
    async apply (plan: InstallPlan, previous, signal) {
      const steps: string[] = []
      const override = kairosOverridePath(init.root, plan.service)
      if (await readIfExists(override) !== undefined) {
        init.logger.warn('a unit drop-in replaces the k3s command line, so config.yaml flags may not apply; remove it if provider-kairos left it', { path: override })
      }
      await stage(kairosStage('before', plan.role), steps, signal)
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
      await stage(kairosStage('after', plan.role), steps, signal)
      return steps.join(', ')
    },
    async isCurrent (plan: InstallPlan) {
      return await readIfExists(configPath) === plan.configYaml
    }
  }
}
