/**
 * When to nudge a peer that has no handshake yet. A handshake initiation that
 * reaches a node before that node has added the sender is dropped, or is lost on a
 * lossy link, and the sender retries only after WireGuard's 5 s rekey timeout.
 * Nudging from our side shortly after configuring a peer closes that gap whichever
 * side added the other first; nudging again every couple of seconds (a nudge of a
 * peer nothing was heard from starts a fresh initiation, see `WireGuardDriver.nudge`)
 * makes a handshake through a lossy link take a few seconds instead of several 5 s rounds.
 * Pure: a function of the previous tracks, the peers as `wg show` reports them and `now`.
 */

/** How long after configuring a peer the first nudge goes out, ms. */
export const DEFAULT_NUDGE_DELAY_MS = 1_000
/** Longest gap between two nudges of one peer, ms (delays double up to it: 1 s, 2 s, 2 s …). */
export const DEFAULT_NUDGE_MAX_DELAY_MS = 2_000
/**
 * Nudges per configured peer at most: about 25 s of nudging, after which WireGuard's own
 * retries (every 5 s while traffic waits) and the persistent keepalive carry on.
 */
export const DEFAULT_NUDGE_ATTEMPTS = 12
/**
 * Keepalives sent, one per nudge gap, once a peer configured in this run shows its first
 * handshake, nudged or not. If we initiated it, the other side holds the new keys
 * unconfirmed until our first data packet arrives, and cannot send with them: on a lossy
 * link the one keepalive WireGuard sends to confirm is lost about half the time, and that
 * side then waits for its own initiation (one per 5 s). The most common handshake is the
 * one WireGuard starts itself when the peer is added, before any nudge; its responder
 * was left unconfirmed as often. A keepalive is 32 bytes and touches no session.
 */
export const DEFAULT_CONFIRM_NUDGES = 3

/** Where one peer's nudges stand. */
export interface NudgeTrack {
  /** Nudges sent since the peer was (re)configured. */
  attempts: number
  /** When the next nudge is due (clock ms); undefined = no more nudges. */
  dueAt: number | undefined
  /** Confirming keepalives still to send after the first handshake (see DEFAULT_CONFIRM_NUDGES); undefined before it. */
  confirms?: number
}

export interface NudgePolicy {
  /** Delay before the first nudge, ms; each further one waits twice as long, up to `maxDelayMs`. */
  delayMs: number
  /** Longest delay between two nudges, ms. @default no cap */
  maxDelayMs?: number
  /** Nudges at most. */
  attempts: number
  /** Nudges after the first handshake of a peer nudged before it. @default 0 */
  confirms?: number
}

/** One desired peer as seen in this pass. */
export interface NudgePeer {
  publicKey: string
  /** Unix seconds of the latest handshake; 0 = never. */
  latestHandshake: number
  /** Added, or given a new endpoint, in this pass. */
  configured: boolean
}

export interface NudgePlan {
  /** The tracks for the next pass (peers not listed are dropped). */
  tracks: Map<string, NudgeTrack>
  /** Peers to nudge now. */
  due: string[]
  /** The earliest pending nudge, clock ms. */
  nextAt: number | undefined
}

/** Decides which peers to nudge now and when the next nudge is due. */
export function planNudges (previous: ReadonlyMap<string, NudgeTrack>, peers: NudgePeer[], now: number, policy: NudgePolicy): NudgePlan {
  const tracks = new Map<string, NudgeTrack>()
  const due: string[] = []
  const fresh = (): NudgeTrack => ({ attempts: 0, dueAt: policy.attempts > 0 ? now + policy.delayMs : undefined })
  for (const peer of peers) {
    const prev = previous.get(peer.publicKey)
    let track: NudgeTrack
    if (peer.configured) track = fresh()
    else if (peer.latestHandshake > 0) {
      // First handshaken since configured (nudged or not): a few confirming keepalives, one per gap.
      const left = prev?.confirms ?? (prev !== undefined ? policy.confirms ?? 0 : 0)
      const send = left > 0 && (prev?.confirms === undefined || (prev.dueAt !== undefined && prev.dueAt <= now))
      if (send) due.push(peer.publicKey)
      const rest = send ? left - 1 : left
      track = { attempts: prev?.attempts ?? 0, confirms: rest, dueAt: rest > 0 ? (send ? now + (policy.maxDelayMs ?? policy.delayMs) : prev?.dueAt) : undefined }
    }
    else if (prev === undefined) track = fresh()
    else if (prev.dueAt !== undefined && prev.dueAt <= now) {
      due.push(peer.publicKey)
      const attempts = prev.attempts + 1
      const delay = Math.min(policy.delayMs * 2 ** attempts, policy.maxDelayMs ?? Infinity)
      track = { attempts, dueAt: attempts >= policy.attempts ? undefined : now + delay }
    } else track = prev
    tracks.set(peer.publicKey, track)
  }
  let nextAt: number | undefined
  for (const t of tracks.values()) if (t.dueAt !== undefined && (nextAt === undefined || t.dueAt < nextAt)) nextAt = t.dueAt
  return { tracks, due: due.sort(), nextAt }
}
