import { dump } from 'js-yaml'
import { redactPlan, type InstallPlan } from '../install-plan.ts'
import type { InstallBackend } from './backend.ts'

/** What the dry-run installer needs. */
export interface DryRunBackendInit {
  /** Where the plan goes. */
  write: (text: string) => void
  /** Print tokens in clear instead of `<redacted sha256:…>`. @default false (in createInstaller) */
  revealSecrets: boolean
}

/** The text `dry-run` prints for a plan: YAML of role, service, digest, config, env and exec env. */
export function renderPlan (plan: InstallPlan, revealSecrets = false): string {
  const view = revealSecrets
    ? { role: plan.role, service: plan.service, digest: plan.digest, config: plan.config, env: plan.env, execEnv: plan.execEnv }
    : redactPlan(plan)
  // The exec env repeats config.yaml in KAIROS_K3S_CONFIG; print it once.
  const { KAIROS_K3S_CONFIG: _config, ...execEnv } = view.execEnv
  return '# kairos-p2p install plan (dry run: nothing was installed)\n' +
    dump({ role: view.role, service: view.service, digest: view.digest, config: view.config, env: view.env, execEnv }, { lineWidth: -1, noRefs: true })
}

/** `dry-run` installer: prints the plan and touches nothing else. */
export function createDryRunBackend (init: DryRunBackendInit): InstallBackend {
  return {
    async apply (plan: InstallPlan) {
      init.write(renderPlan(plan, init.revealSecrets))
      return `printed the ${plan.service} plan`
    }
  }
}
