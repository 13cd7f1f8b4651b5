/**
 * When to nudge a peer that has no handshake yet. A handshake initiation that
 * reaches a node before that node has added the sender is dropped, and the sender
 * retries only after WireGuard's 5 s rekey timeout. Nudging from our side shortly
 * after configuring a peer closes that gap whichever side added the other first.
 * Pure: a function of the previous tracks, the peers as `wg show` reports them and `now`.
 */

/** How long after configuring a peer the first nudge goes out, ms. */
export const DEFAULT_NUDGE_DELAY_MS = 1_000
/** Nudges per configured peer at most (delays double: 1 s, 2 s, 4 s). */
export const DEFAULT_NUDGE_ATTEMPTS = 3

/** Where one peer's nudges stand. */
export interface NudgeTrack {
  /** Nudges sent since the peer was (re)configured. */
  attempts: number
  /** When the next nudge is due (clock ms); undefined = no more nudges. */
  dueAt: number | undefined
}

export interface NudgePolicy {
  /** Delay before the first nudge, ms; each further one waits twice as long. */
  delayMs: number
  /** Nudges at most. */
  attempts: number
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
    else if (peer.latestHandshake > 0) track = { attempts: prev?.attempts ?? 0, dueAt: undefined }
    else if (prev === undefined) track = fresh()
    else if (prev.dueAt !== undefined && prev.dueAt <= now) {
      due.push(peer.publicKey)
      const attempts = prev.attempts + 1
      track = { attempts, dueAt: attempts >= policy.attempts ? undefined : now + policy.delayMs * 2 ** attempts }
    } else track = prev
    tracks.set(peer.publicKey, track)
  }
  let nextAt: number | undefined
  for (const t of tracks.values()) if (t.dueAt !== undefined && (nextAt === undefined || t.dueAt < nextAt)) nextAt = t.dueAt
  return { tracks, due: due.sort(), nextAt }
}
