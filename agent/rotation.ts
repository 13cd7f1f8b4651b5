/**
 * Token rotation on one agent (docs/decisions.md, LIFE-5): `token rotate` publishes a
 * rotation record (roles/rotation.ts); every node follows the record a server
 * published for the token it runs with — opens its sealed copy of the new token,
 * writes it to token.json (agent/token-state.ts) and asks the agent to restart with
 * it, the replaced token honoured until the grace ends. After a restart within the
 * grace it writes its own entries again under the new state key, and at the grace end
 * it restarts once more, with the new token alone.
 */
import { generateToken, parseToken, type NetworkToken } from '../token/index.ts'
import type { Clock } from '../util/clock.ts'
import { KairosError, errorMessage } from '../util/errors.ts'
import type { Logger } from '../util/log.ts'
import type { RandomSource } from '../util/random.ts'
import type { P2PNode } from '../p2p/index.ts'
import type { StateChange } from '../p2p/types.ts'
import type { SealKeys } from '../roles/credentials.ts'
import { parseNode } from '../roles/entries.ts'
import { removalAuthority } from '../roles/removal.ts'
import { judgeRotations, mayRotate, MAX_GENERATION, MAX_GRACE_MS, MIN_GRACE_MS, ROTATION_PREFIX, rotationEntries, type IgnoredRotation } from '../roles/rotation.ts'
import { CRED_PREFIX, ROLE_KEYS } from '../roles/types.ts'
import { fingerprintOf, MAX_TOKEN_HISTORY, type ChosenToken, type TokenState } from './token-state.ts'
import { shortPeer } from './reason.ts'

/** State key of a server's announcement of its token's generation, `{v, generation, fingerprint}`. */
export const GENERATION_KEY = 'token/generation'

function isGeneration (v: unknown): v is { generation: number, fingerprint: string } {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false
  const o = v as Record<string, unknown>
  return typeof o.generation === 'number' && Number.isSafeInteger(o.generation) && o.generation > 0 && o.generation <= MAX_GENERATION && typeof o.fingerprint === 'string'
}

/** `token rotate` refused: this node is not a server, a grace runs, or the grace is out of bounds. */
export class TokenRotateRefusedError extends KairosError {
  constructor (message: string) {
    super(message, { exitCode: 2 })
    this.name = 'TokenRotateRefusedError'
  }
}

/** The token as `status` and `token inspect` show it. */
export interface TokenStatus {
  generation: number
  fingerprint: string
  /** `state`: the token this node switched to (token.json); `config`: the cloud-config's. */
  source: 'state' | 'config'
  /** While a rotation's grace runs: the replaced token's fingerprint and when the grace ends. */
  previous?: { fingerprint: string, until: number }
  /** A rotation this node cannot follow (no copy for it, or one that does not open), said to the operator. */
  problem?: string
}

/** What `token rotate` answers. */
export interface RotateResult {
  generation: number
  fingerprint: string
  until: number
  /** Members the new token was sealed to. */
  sealedTo: number
}

/** Options of `createRotation`. */
export interface RotationInit {
  node: Pick<P2PNode, 'peerId' | 'state' | 'reseal'>
  /** The token this agent runs with (agent/token-state.ts). */
  current: ChosenToken
  /** The init server of the accepted cluster record (roles controller). */
  acceptedInit: () => string | undefined
  /** This node's seal keys (loaded when a record is to be opened). */
  sealKeys: () => Promise<SealKeys>
  /** Writes token.json. */
  save: (state: TokenState) => void
  /** The node switched tokens (or a grace ended): the agent restarts with token.json. */
  restart: (reason: string) => void
  clock: Clock
  random: RandomSource
  logger: Logger
}

/** The running rotation of one agent. */
export interface Rotation {
  start: () => void
  stop: () => void
  status: () => TokenStatus
  /**
   * `token rotate --grace`: publishes a rotation record from this node (a server). The
   * node follows it (and restarts) only once `release()` is called: after the answer
   * went out.
   */
  rotate: (graceMs: number) => Promise<RotateResult>
  release: () => void
}

/** Creates the rotation watcher; it acts from `start()`. */
export function createRotation (init: RotationInit): Rotation {
  const { node, current, clock, logger } = init
  const state = node.state
  const fingerprint = fingerprintOf(current.token)
  let problem: string | undefined
  let switching = false
  /** A `rotate` whose answer is not out yet: following (a restart) waits for it. */
  let holding = false
  let controller: AbortController | undefined
  const reported = new Set<string>()

  const authority = (): ReturnType<typeof removalAuthority> => removalAuthority(init.acceptedInit(), state.list(CRED_PREFIX))
  /** The generation a server announces for our token (a box set up with a rotated token learns its number from it). */
  let announced = current.generation
  let announcing = false

  /**
   * Servers announce the generation of the token they run with (`token/generation`,
   * under its state key); a node set up with that token takes the number from a server.
   */
  const generationNews = async (): Promise<void> => {
    const a = authority()
    if (mayRotate(a, state.self) && current.generation > 0 && !announcing) {
      const own = state.get(state.self, GENERATION_KEY)?.value
      if (!isGeneration(own) || own.generation !== current.generation || own.fingerprint !== fingerprint) {
        announcing = true
        await state.put(GENERATION_KEY, { v: 1, generation: current.generation, fingerprint }).finally(() => { announcing = false })
      }
    }
    if (current.source !== 'config' || announced > current.generation) return
    for (const e of state.list(GENERATION_KEY)) {
      const v = e.value
      if (e.key !== GENERATION_KEY || !mayRotate(a, e.owner) || !isGeneration(v) || v.fingerprint !== fingerprint || v.generation <= announced) continue
      announced = v.generation
      init.save({ generation: announced, token: current.token.text, history: current.history })
      logger.info('this token\'s generation, as a server announces it', { generation: announced, by: e.owner })
    }
  }

  const follow = async (): Promise<void> => {
    if (controller === undefined || switching || holding) return
    const judged = judgeRotations(state.list(ROTATION_PREFIX), authority(), fingerprint)
    for (const i of judged.ignored) report(i)
    const r = judged.rotation
    if (r === undefined) return
    const box = r.sealed.get(state.self)
    if (box === undefined) {
      problem = `the token was rotated to generation ${r.generation} by ${shortPeer(r.by)} without a copy for this node (it was not a known member then): put the new token (fingerprint ${r.to}) in this box's cloud-config`
      return
    }
    let next: NetworkToken
    try {
      next = parseToken((await init.sealKeys()).open(box))
    } catch (err) {
      problem = `the rotation to generation ${r.generation} by ${shortPeer(r.by)} carries a copy this node cannot open (${errorMessage(err)}): put the new token (fingerprint ${r.to}) in this box's cloud-config`
      return
    }
    if (fingerprintOf(next) !== r.to) {
      problem = `the rotation to generation ${r.generation} by ${shortPeer(r.by)} sealed this node a token whose fingerprint is not ${r.to}; not followed`
      return
    }
    if (switching || controller === undefined) return
    switching = true
    const now = clock.now()
    init.save({
      generation: r.generation,
      token: next.text,
      ...(r.until > now ? { previous: { token: current.token.text, until: r.until } } : {}),
      history: [fingerprint, ...current.history.filter((h) => h !== fingerprint)].slice(0, MAX_TOKEN_HISTORY)
    })
    logger.info('following a token rotation: restarting with the new token', { generation: r.generation, by: r.by, fingerprint: r.to, graceUntil: new Date(r.until).toISOString() })
    init.restart(`token rotated to generation ${r.generation}`)
  }

  const report = (i: IgnoredRotation): void => {
    const k = `${i.by} ${i.key} ${i.reason}`
    if (reported.has(k)) return
    reported.add(k)
    logger.warn('token rotation record ignored', { by: i.by, key: i.key, reason: i.reason })
  }

  const run = (): void => {
    generationNews().catch((err: unknown) => { logger.warn('announcing the token generation failed', { error: errorMessage(err) }) })
    follow().catch((err: unknown) => { logger.warn('following a token rotation failed', { error: errorMessage(err) }) })
  }
  const relevant = (c: StateChange): boolean => c.entry.key.startsWith(ROTATION_PREFIX) || c.entry.key === GENERATION_KEY || c.entry.key.startsWith(CRED_PREFIX) || c.entry.key === ROLE_KEYS.cluster
  const onChange = (evt: CustomEvent<StateChange>): void => { if (relevant(evt.detail)) run() }

  const afterSwitch = async (signal: AbortSignal): Promise<void> => {
    const previous = current.previous
    if (previous === undefined) return
    // What this node wrote under the replaced key, written again under the new one; the
    // rotation record stays as it is, for members still on the replaced token.
    const n = await node.reseal((key) => key.startsWith(ROTATION_PREFIX))
    if (n > 0) logger.info('own state entries sealed again under the new token', { entries: n })
    await clock.sleep(Math.max(0, previous.until - clock.now()), signal)
    logger.info('the rotation\'s grace ended: restarting with the new token alone', { generation: current.generation })
    init.restart('the token rotation\'s grace ended')
  }

  return {
    start: () => {
      if (controller !== undefined) return
      const c = new AbortController()
      controller = c
      state.addEventListener('change', onChange)
      afterSwitch(c.signal).catch((err: unknown) => { if (!c.signal.aborted) logger.warn('finishing a token rotation failed', { error: errorMessage(err) }) })
      run()
    },
    stop: () => {
      controller?.abort()
      controller = undefined
      state.removeEventListener('change', onChange)
    },
    // This node follows its own record as every member does.
    release: () => { if (holding) { holding = false; run() } },
    status: () => ({
      generation: announced,
      fingerprint,
      source: current.source,
      ...(current.previous === undefined || current.previous.until <= clock.now() ? {} : { previous: { fingerprint: fingerprintOf(current.previous.token), until: current.previous.until } }),
      ...(problem === undefined ? {} : { problem })
    }),
    rotate: async (graceMs) => {
      if (!Number.isSafeInteger(graceMs) || graceMs < MIN_GRACE_MS || graceMs > MAX_GRACE_MS) {
        throw new TokenRotateRefusedError(`token rotate: grace of ${graceMs} ms is out of bounds; expected ${MIN_GRACE_MS / 1000} s to ${MAX_GRACE_MS / 86_400_000} days`)
      }
      const a = authority()
      if (!mayRotate(a, state.self)) {
        throw new TokenRotateRefusedError(a.init === undefined
          ? 'token rotate: no cluster record is accepted yet, so no node is a server; rotate once the cluster has formed'
          : `token rotate: this node is not a server; run it on the init server ${shortPeer(a.init)} or an HA server`)
      }
      const now = clock.now()
      if (current.previous !== undefined && current.previous.until > now) {
        throw new TokenRotateRefusedError(`token rotate: the last rotation's grace runs until ${new Date(current.previous.until).toISOString()}; rotate again after it (a member still on the token before it could not follow)`)
      }
      if (switching || holding) throw new TokenRotateRefusedError('token rotate: this node is switching to a new token already')
      const departed = state.departed?.() ?? new Map()
      const recipients = new Map<string, string>()
      for (const e of state.list(ROLE_KEYS.node)) {
        if (e.key !== ROLE_KEYS.node || departed.get(e.owner) === 'removed' || departed.get(e.owner) === 'forgotten') continue
        const v = parseNode(e.value)
        if (v !== undefined) recipients.set(e.owner, v.sealKey)
      }
      const text = generateToken(init.random)
      const to = fingerprintOf(parseToken(text))
      const header = { generation: announced + 1, from: fingerprint, to, at: now, until: now + graceMs }
      holding = true
      try {
        for (const { key, value } of rotationEntries(header, text, recipients, init.random)) await state.put(key, value)
      } catch (err) {
        holding = false
        throw err
      }
      logger.info('token rotation published', { generation: header.generation, fingerprint: to, sealedTo: recipients.size, graceUntil: new Date(header.until).toISOString() })
      return { generation: header.generation, fingerprint: to, until: header.until, sealedTo: recipients.size }
    }
  }
}
