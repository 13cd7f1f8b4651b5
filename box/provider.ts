// `agent-provider-kairos-p2p`: the Kairos provider. kairos-agent runs it as
// `agent-provider-kairos-p2p <event>` with the event as JSON on stdin and reads exactly
// one JSON answer from stdout (go-pluggable's protocol). On `agent.bootstrap` it checks
// the merged cloud-config with the same loader as the agent, writes the part the
// service needs to a persistent path and starts kairos-p2p.service; every other event
// gets an empty answer. It never runs the agent itself: kairos-agent keeps a provider's
// stdout until it exits, and the agent must outlive the provider.
import { spawn } from 'node:child_process'
import { constants } from 'node:fs'
import { access, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { dump } from 'js-yaml'
import { ConfigError, formatWarning, parseConfig, parseDocument } from '../config/index.ts'
import { writeIfChanged } from '../roles/installer/files.ts'
import { runCommand } from '../roles/installer/run.ts'
import { parseConfiguredToken, TokenError } from '../token/index.ts'
import { errorMessage, KairosError } from '../util/errors.ts'
import { findOnPath } from '../util/find-on-path.ts'
import { BOX_CONFIG_PATH, KAIROS_PROVIDER_DIRS, KAIROS_PROVIDER_NAME, SERVICE_NAME } from './paths.ts'

/** Every event kairos-sdk's bus defines (bus/events.go), in its order. */
export const KAIROS_EVENTS: readonly string[] = Object.freeze([
  'agent.install.challenge', 'agent.install', 'agent.boot', 'agent.bootstrap', 'agent.installprompt',
  'agent.recovery', 'agent.recovery.stop', 'agent.available_releases', 'agent.version_image',
  'agent.interactive-install', 'agent.reset.after', 'agent.reset.before',
  'init.provider.install', 'init.provider.configure', 'init.provider.info'
])

/** The one event this provider acts on. */
export const BOOTSTRAP_EVENT = 'agent.bootstrap'

/** A go-pluggable event as it arrives on stdin. */
export interface ProviderEvent {
  name: string
  /** The payload, a JSON text; empty when it is in `file`. */
  data: string
  /** A file holding the payload, used by go-pluggable when `data` would exceed 8192 bytes. */
  file: string
}

/** The answer go-pluggable reads from stdout. A non-empty `error` fails kairos-agent. */
export interface ProviderAnswer {
  state: string
  data: string
  error: string
  log: string
}

/** The payload of `agent.bootstrap` (kairos-sdk `BootstrapPayload`). */
export interface BootstrapPayload {
  api: string
  /** The merged cloud-config, `#cloud-config` and YAML. */
  config: string
  logfile: string
}

/** The whole answer is given by this deadline, whatever a step does, ms. @default 3000 */
export const DEFAULT_PROVIDER_DEADLINE_MS = 3_000
/** Each `systemctl` call, ms. @default 2000 */
export const DEFAULT_SYSTEMCTL_TIMEOUT_MS = 2_000
/** How long the `kairos-agent.bootstrap` stage is waited for before it is left running, ms. @default 1500 */
export const DEFAULT_STAGE_WAIT_MS = 1_500
/** Largest event or payload file read, bytes. */
export const MAX_EVENT_BYTES = 16 * 1024 * 1024
/** Environment variable naming a root that every file path of the provider is under (image builds and tests). */
export const PROVIDER_ROOT_ENV = 'KAIROS_P2P_PROVIDER_ROOT'
/** The cloud-config keys the service needs; the rest (users, passwords, stages) is not copied. */
export const COPIED_KEYS: readonly string[] = Object.freeze(['p2p', 'k3s', 'k3s-agent'])

/** An event the provider cannot read: not the protocol's JSON, or a payload it cannot get. */
export class ProviderInputError extends KairosError {
  constructor (message: string, options: { cause?: unknown } = {}) {
    super(message, options)
    this.name = 'ProviderInputError'
  }
}

/** A step of the bootstrap that failed on this box (a file it cannot write, no systemd, systemctl failing). */
export class ProviderBootstrapError extends KairosError {
  constructor (message: string, options: { cause?: unknown } = {}) {
    super(message, options)
    this.name = 'ProviderBootstrapError'
  }
}

/** The answer with every field empty: "nothing to do". */
export function emptyAnswer (): ProviderAnswer {
  return { state: '', data: '', error: '', log: '' }
}

/** Parses go-pluggable's event JSON; ProviderInputError names what is wrong. */
export function parseEvent (text: string): ProviderEvent {
  if (text.trim() === '') throw new ProviderInputError('stdin is empty; expected the event as JSON: {"name":"…","data":"…","file":"…"}')
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw new ProviderInputError(`stdin is not JSON (${errorMessage(err)}); expected the event as JSON: {"name":"…","data":"…","file":"…"}`, { cause: err })
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ProviderInputError(`stdin holds ${Array.isArray(raw) ? 'an array' : JSON.stringify(raw)}; expected the event as a JSON object {"name":"…","data":"…","file":"…"}`)
  }
  const o = raw as Record<string, unknown>
  const field = (k: 'name' | 'data' | 'file'): string => {
    const v = o[k]
    if (v === undefined || v === null) return ''
    if (typeof v !== 'string') throw new ProviderInputError(`event field '${k}' is ${typeof v}; expected a string`)
    return v
  }
  return { name: field('name'), data: field('data'), file: field('file') }
}

/** The event's payload: `data`, or the content of `file` when `data` is empty. */
export async function eventPayload (event: ProviderEvent): Promise<string> {
  if (event.data !== '' || event.file === '') return event.data
  try {
    const s = await stat(event.file)
    if (s.size > MAX_EVENT_BYTES) throw new ProviderInputError(`event file ${event.file} has ${s.size} bytes; expected at most ${MAX_EVENT_BYTES}`)
    return await readFile(event.file, 'utf8')
  } catch (err) {
    if (err instanceof ProviderInputError) throw err
    const code = (err as NodeJS.ErrnoException).code
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : errorMessage(err)
    throw new ProviderInputError(`cannot read the event's payload file ${event.file}: ${why}`, { cause: err })
  }
}

/** Parses the `agent.bootstrap` payload. */
export function parseBootstrapPayload (text: string): BootstrapPayload {
  if (text.trim() === '') throw new ProviderInputError('agent.bootstrap carries no payload; expected {"api":"…","config":"#cloud-config…","logfile":"…"}')
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw new ProviderInputError(`agent.bootstrap payload is not JSON (${errorMessage(err)}); expected {"api":"…","config":"#cloud-config…","logfile":"…"}`, { cause: err })
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ProviderInputError('agent.bootstrap payload is not a JSON object; expected {"api":"…","config":"#cloud-config…","logfile":"…"}')
  const o = raw as Record<string, unknown>
  const str = (k: string): string => typeof o[k] === 'string' ? o[k] : ''
  if (typeof o.config !== 'string') throw new ProviderInputError(`agent.bootstrap payload has ${o.config === undefined ? 'no' : `a non-string (${typeof o.config})`} 'config'; expected the merged cloud-config as a string`)
  return { api: str('api'), config: o.config, logfile: str('logfile') }
}

/** What `agent.bootstrap` should do with a config. */
export type BootstrapDecision =
  | { kind: 'skip' }
  | { kind: 'invalid', error: string }
  | { kind: 'run', text: string, role: string, warnings: string[] }

/** The name config errors are reported under, like a file name in `config validate`. */
export const EVENT_CONFIG_NAME = 'cloud-config (agent.bootstrap)'

/**
 * Checks the merged cloud-config with the agent's own loader. No token and no static
 * role: nothing to do. Invalid: the lines `config validate` prints. Otherwise the
 * YAML the service reads (only `p2p`, `k3s` and `k3s-agent`). Pure.
 */
export function decideBootstrap (configText: string): BootstrapDecision {
  if (configText.trim() === '') return { kind: 'invalid', error: 'agent.bootstrap carries an empty config; expected the merged cloud-config (#cloud-config …)' }
  let loaded
  try {
    loaded = parseConfig([{ name: EVENT_CONFIG_NAME, text: configText }])
  } catch (err) {
    if (err instanceof ConfigError) return { kind: 'invalid', error: formatConfigIssues(err) }
    throw err
  }
  const p = loaded.config.p2p
  if (p.networkToken === '' && p.role === 'auto') return { kind: 'skip' }
  if (p.networkToken === '') return { kind: 'invalid', error: `error: p2p.role is '${p.role}' but p2p.network_token is not set; expected a network token (kairos-p2p token generate)\n1 error; config is not valid` }
  if (!p.networkToken.includes('{{')) {
    try {
      parseConfiguredToken(p.networkToken)
    } catch (err) {
      if (!(err instanceof TokenError)) throw err
      return { kind: 'invalid', error: `error: ${err.message}\n1 error; config is not valid` }
    }
  }
  const doc = parseDocument(EVENT_CONFIG_NAME, configText)
  const kept: Record<string, unknown> = {}
  for (const k of COPIED_KEYS) if (doc[k] !== undefined) kept[k] = doc[k]
  const text = '#cloud-config\n# Written by agent-provider-kairos-p2p from the merged Kairos cloud-config at every boot.\n' + dump(kept, { lineWidth: -1, noRefs: true })
  return { kind: 'run', text, role: p.role, warnings: loaded.warnings.map((w) => `warning: ${formatWarning(w)}`) }
}

/** `config validate`'s report of an invalid config: one `error: …` line per problem and the count. */
export function formatConfigIssues (err: ConfigError): string {
  const lines = err.issues.map((i) => `error: ${i.message}`)
  lines.push(`${err.issues.length} error${err.issues.length === 1 ? '' : 's'}; config is not valid`)
  return lines.join('\n')
}

/** The script Kairos runs at bootstrap when an image carries it (kairos-sdk `bus.RunHookScript`). */
export const BOOTSTRAP_HOOK = '/usr/bin/kairos-agent.bootstrap.hook'

async function isExecutable (file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK)
    return (await stat(file)).isFile()
  } catch {
    return false
  }
}

/** What the bootstrap touches; tests and image builds point it elsewhere. */
export interface BootstrapInit {
  /** Prefix of every file path (config, provider dirs). @default '/' */
  root: string
  /** Environment of systemctl and kairos-agent; its PATH finds them. */
  env: NodeJS.ProcessEnv
  /** @default DEFAULT_SYSTEMCTL_TIMEOUT_MS */
  systemctlTimeoutMs?: number
  /** @default DEFAULT_STAGE_WAIT_MS */
  stageWaitMs?: number
  signal?: AbortSignal
}

/**
 * Runs `argv` detached from our stdout (kairos-agent waits for every holder of the
 * pipe) and waits up to `waitMs` for it; a command still running then is left to
 * finish on its own. Resolves with a line for the answer's log.
 */
async function runStage (argv: readonly string[], env: NodeJS.ProcessEnv, waitMs: number): Promise<string> {
  const [file, ...args] = argv
  if (file === undefined) return ''
  return await new Promise((resolve) => {
    const child = spawn(file, args, { env, stdio: 'ignore', detached: true })
    const timer = setTimeout(() => { child.unref(); resolve(`${argv.join(' ')}: still running after ${waitMs} ms, left to finish`) }, waitMs)
    child.once('error', (err) => { clearTimeout(timer); resolve(`${argv.join(' ')}: could not start: ${err.message}`) })
    child.once('exit', (code, sig) => {
      clearTimeout(timer)
      resolve(`${argv.join(' ')}: ${code === 0 ? 'done' : sig !== null ? `killed by ${sig}` : `exited with code ${code ?? '?'}`}`)
    })
  })
}

/**
 * `agent.bootstrap`: decide, write the service's config, run the `kairos-agent.bootstrap`
 * stage, enable and start kairos-p2p.service (without waiting for it to start).
 */
export async function bootstrap (payload: BootstrapPayload, init: BootstrapInit): Promise<ProviderAnswer> {
  const answer = emptyAnswer()
  const decision = decideBootstrap(payload.config)
  if (decision.kind === 'skip') return answer
  if (decision.kind === 'invalid') return { ...answer, error: decision.error }
  const under = (p: string): string => join(init.root, p)

  const rival = await findOnPath(KAIROS_PROVIDER_NAME, init.env, KAIROS_PROVIDER_DIRS.map(under))
  if (rival !== undefined) {
    return {
      ...answer,
      state: `kairos-p2p did nothing: ${KAIROS_PROVIDER_NAME} is also installed (${rival}) and acts on p2p.network_token; build the image without it (see INSTALL) so the two never race on one token`
    }
  }

  // The warnings `config validate` would print, for kairos-agent's log.
  const log: string[] = [...decision.warnings]
  const configPath = under(BOX_CONFIG_PATH)
  let wrote: boolean
  try {
    wrote = await writeIfChanged(configPath, decision.text, 0o600)
  } catch (err) {
    throw new ProviderBootstrapError(`cannot write ${configPath}: ${errorMessage(err).replace(/^cannot write [^:]*: /, '')}`, { cause: err })
  }

  // What provider-kairos runs before its own work: the stage, then the hook script.
  const kairosAgent = await findOnPath('kairos-agent', init.env)
  const waitMs = init.stageWaitMs ?? DEFAULT_STAGE_WAIT_MS
  if (kairosAgent !== undefined) log.push(await runStage([kairosAgent, 'run-stage', 'kairos-agent.bootstrap'], init.env, waitMs))
  const hook = under(BOOTSTRAP_HOOK)
  if (await isExecutable(hook)) log.push(await runStage([hook], init.env, waitMs))

  if (await findOnPath('systemctl', init.env) === undefined) {
    throw new ProviderBootstrapError(`no systemd: systemctl is not on PATH, so ${SERVICE_NAME} cannot be started; wrote ${configPath}, run 'kairos-p2p agent --config ${BOX_CONFIG_PATH}' from this box's init system instead`)
  }
  const systemctl = async (...args: string[]): Promise<void> => {
    try {
      await runCommand(['systemctl', ...args], { env: init.env, timeoutMs: init.systemctlTimeoutMs ?? DEFAULT_SYSTEMCTL_TIMEOUT_MS, ...(init.signal === undefined ? {} : { signal: init.signal }) })
    } catch (err) {
      throw new ProviderBootstrapError(`${SERVICE_NAME} not started: ${errorMessage(err)}`, { cause: err })
    }
  }
  await systemctl('daemon-reload')
  if (wrote) {
    // A changed config reaches a running agent only through a restart (which also starts it).
    await systemctl('enable', SERVICE_NAME)
    await systemctl('restart', '--no-block', SERVICE_NAME)
  } else {
    await systemctl('enable', '--now', '--no-block', SERVICE_NAME)
  }
  const role = decision.role === 'auto' ? 'role by election' : `static role ${decision.role}`
  return {
    ...answer,
    state: `kairos-p2p: ${wrote ? `wrote ${configPath}` : `${configPath} unchanged`}; ${wrote ? 'enabled and restarted' : 'enabled and started'} ${SERVICE_NAME} (${role}); progress: journalctl -u kairos-p2p, kairos-p2p status`,
    log: log.join('\n')
  }
}

/** Answers one event. Never throws: every failure is the answer's `error`. */
export async function answerEvent (eventName: string, stdin: string, init: BootstrapInit): Promise<ProviderAnswer> {
  try {
    const event = parseEvent(stdin)
    if (eventName !== BOOTSTRAP_EVENT) return emptyAnswer()
    return await bootstrap(parseBootstrapPayload(await eventPayload(event)), init)
  } catch (err) {
    return { ...emptyAnswer(), error: `kairos-p2p: ${errorMessage(err)}` }
  }
}

const USAGE = `Usage: agent-provider-kairos-p2p EVENT < event.json

The Kairos provider of kairos-p2p. kairos-agent runs it with the event name and
writes the event to stdin as JSON ({"name":…,"data":…,"file":…}); it prints one
JSON answer ({"state":…,"data":…,"error":…,"log":…}) and exits 0.

agent.bootstrap with p2p.network_token set: validates the config, writes
${BOX_CONFIG_PATH}, enables and starts ${SERVICE_NAME}. Every other event: an
empty answer. ${PROVIDER_ROOT_ENV}=DIR puts every file path under DIR.
`

/** Options of `runProvider`. */
export interface RunProviderInit {
  version: string
  /** @default DEFAULT_PROVIDER_DEADLINE_MS */
  deadlineMs?: number
}

/** The provider process: argv is `[EVENT]`; prints exactly one JSON answer. Resolves with the exit code. */
export async function runProvider (argv: readonly string[], init: RunProviderInit): Promise<number> {
  const [eventName, ...rest] = argv
  if (eventName === '--help' || eventName === '-h') { process.stdout.write(USAGE); return 0 }
  if (eventName === '--version') { process.stdout.write(`agent-provider-kairos-p2p ${init.version}\n`); return 0 }
  if (eventName === undefined || rest.length > 0) {
    process.stderr.write(`agent-provider-kairos-p2p: expected exactly one argument, the event name (got ${argv.length})\n${USAGE}`)
    return 2
  }
  const deadlineMs = init.deadlineMs ?? DEFAULT_PROVIDER_DEADLINE_MS
  const abort = new AbortController()
  let answered = false
  const answer = (a: ProviderAnswer): void => {
    if (answered) return
    answered = true
    process.stdout.write(JSON.stringify(a) + '\n')
  }
  const work = (async () => {
    const stdin = await readStdin(abort.signal)
    const root = process.env[PROVIDER_ROOT_ENV]
    return await answerEvent(eventName, stdin, { root: root === undefined || root === '' ? '/' : root, env: process.env, signal: abort.signal })
  })()
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<ProviderAnswer>((resolve) => {
    timer = setTimeout(() => {
      abort.abort(new Error('deadline'))
      resolve({ ...emptyAnswer(), error: `kairos-p2p: no answer within ${deadlineMs} ms (stdin not closed, or systemctl hanging); nothing more was done` })
    }, deadlineMs)
  })
  answer(await Promise.race([work.catch((err: unknown) => ({ ...emptyAnswer(), error: `kairos-p2p: ${errorMessage(err)}` })), late]))
  clearTimeout(timer)
  return 0
}

/** Reads stdin to its end (at most MAX_EVENT_BYTES). */
async function readStdin (signal: AbortSignal): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const c of process.stdin) {
    const b = c as Buffer
    size += b.length
    if (size > MAX_EVENT_BYTES) throw new ProviderInputError(`stdin holds more than ${MAX_EVENT_BYTES} bytes; expected one event`)
    chunks.push(b)
    if (signal.aborted) break
  }
  return Buffer.concat(chunks).toString('utf8')
}
