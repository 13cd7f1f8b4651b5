import { join } from 'node:path'
import type { InstallerConfig } from '../../config/types.ts'
import { systemClock, type Clock } from '../../util/clock.ts'
import { silentLogger, type Logger } from '../../util/log.ts'
import type { InstallPlan } from '../install-plan.ts'
import type { InstallBackend } from './backend.ts'
import { createDryRunBackend } from './dry-run.ts'
import { createExecBackend } from './exec.ts'
import { readIfExists, writeFileAtomic } from './files.ts'
import { createK3sBackend } from './k3s.ts'

export { InstallerError } from './errors.ts'
export { renderPlan } from './dry-run.ts'
export { K3S_CONFIG_PATH, envFilePath, renderEnvFile } from './k3s.ts'

/** File in the state dir recording the last completed hand-off. */
export const INSTALL_RECORD_FILE = 'install-record.json'

/** Timeout of each `systemctl` call, ms. @default 120000 */
export const DEFAULT_SYSTEMCTL_TIMEOUT_MS = 120_000

/** Timeout of the `exec` installer's command, ms (it may download and install k3s). @default 900000 */
export const DEFAULT_EXEC_TIMEOUT_MS = 900_000

/** The last hand-off that completed, persisted in the state dir. */
export interface InstallRecord {
  v: 1
  /** Installer kind that performed it. */
  kind: InstallerConfig['kind']
  /** Digest of the plan it applied. */
  digest: string
  /** Role the plan was for. */
  role: InstallPlan['role']
  /** Service it enabled (or would have, for exec and dry-run). */
  service: InstallPlan['service']
  /** When it completed, ms since the epoch. */
  at: number
  /** What was done, e.g. `wrote …, enabled and started k3s`. */
  detail: string
}

/** Outcome of one `install` call. */
export interface InstallResult {
  /** False when this plan was already handed off (nothing was done). */
  changed: boolean
  /** One line for logs and the status timeline. */
  detail: string
}

/** Applies install plans, at most once per distinct plan. */
export interface Installer {
  /** `p2p.installer.kind`. */
  readonly kind: InstallerConfig['kind']
  /**
   * Hands `plan` off unless the recorded hand-off has the same digest (and, for
   * `k3s`, config.yaml still holds it). Calls are serialised. Rejects with an
   * `InstallerError` (no record is written, so the next call retries) or with
   * the signal's reason when aborted.
   */
  install(plan: InstallPlan, signal?: AbortSignal): Promise<InstallResult>
  /** The last completed hand-off, or undefined. */
  lastRecord(): Promise<InstallRecord | undefined>
}

/** What `createInstaller` needs besides `p2p.installer`. */
export interface InstallerInit {
  /** Directory for the hand-off record (`p2p.state_dir`). */
  stateDir: string
  /** @default silentLogger */
  logger?: Logger
  /** Environment for systemctl and the exec command (PATH picks the binaries). @default process.env */
  env?: NodeJS.ProcessEnv
  /** Time stamps of the record. @default systemClock */
  clock?: Clock
  /** Where `dry-run` prints. @default process.stdout */
  write?: (text: string) => void
  /** `dry-run` prints tokens in clear. @default false */
  revealSecrets?: boolean
  /** @default DEFAULT_SYSTEMCTL_TIMEOUT_MS */
  systemctlTimeoutMs?: number
  /** @default DEFAULT_EXEC_TIMEOUT_MS */
  execTimeoutMs?: number
}

/** Creates the installer for `p2p.installer`. */
export function createInstaller (installer: InstallerConfig, init: InstallerInit): Installer {
  const logger = init.logger ?? silentLogger
  const clock = init.clock ?? systemClock
  const env = init.env ?? process.env
  const recordPath = join(init.stateDir, INSTALL_RECORD_FILE)
  const backend = createBackend(installer, init, env, logger)

  const lastRecord = async (): Promise<InstallRecord | undefined> => {
    const text = await readIfExists(recordPath)
    if (text === undefined) return undefined
    const record = parseRecord(text)
    if (record === undefined) logger.warn('install record is damaged; the hand-off will run again', { path: recordPath })
    return record
  }

  const installOnce = async (plan: InstallPlan, signal?: AbortSignal): Promise<InstallResult> => {
    signal?.throwIfAborted()
    const record = await lastRecord()
    if (record?.digest === plan.digest && record.kind === installer.kind && await (backend.isCurrent?.(plan) ?? true)) {
      return { changed: false, detail: `already handed off (${record.service}, plan ${plan.digest.slice(0, 12)})` }
    }
    logger.info('handing off', { kind: installer.kind, role: plan.role, service: plan.service, digest: plan.digest.slice(0, 12) })
    const previous = record === undefined ? undefined : { kind: record.kind, service: record.service, digest: record.digest }
    const detail = await backend.apply(plan, previous, signal)
    const done: InstallRecord = { v: 1, kind: installer.kind, digest: plan.digest, role: plan.role, service: plan.service, at: clock.now(), detail }
    await writeFileAtomic(recordPath, JSON.stringify(done, null, 2) + '\n', 0o600)
    logger.info('handed off', { kind: installer.kind, detail })
    return { changed: true, detail }
  }

  let queue: Promise<unknown> = Promise.resolve()
  return {
    kind: installer.kind,
    install: async (plan, signal) => {
      const run = queue.then(async () => await installOnce(plan, signal))
      queue = run.catch(() => {})
      return await run
    },
    lastRecord
  }
}

function createBackend (installer: InstallerConfig, init: InstallerInit, env: NodeJS.ProcessEnv, logger: Logger): InstallBackend {
  switch (installer.kind) {
    case 'k3s':
      return createK3sBackend({ root: installer.root, env, timeoutMs: init.systemctlTimeoutMs ?? DEFAULT_SYSTEMCTL_TIMEOUT_MS, logger })
    case 'exec':
      return createExecBackend({ command: installer.command, env, timeoutMs: init.execTimeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS })
    case 'dry-run':
      return createDryRunBackend({ write: init.write ?? ((text) => { process.stdout.write(text) }), revealSecrets: init.revealSecrets ?? false })
  }
}

function parseRecord (text: string): InstallRecord | undefined {
  try {
    const r = JSON.parse(text) as Partial<InstallRecord> | null
    if (r?.v !== 1 || typeof r.digest !== 'string' || typeof r.kind !== 'string' || typeof r.service !== 'string' || typeof r.at !== 'number') return undefined
    return r as InstallRecord
  } catch {
    return undefined
  }
}
