import { describe, expect, it } from 'vitest'
import { sessionSettled, trackWaiting, WAITING_GRACE_MS, type WaitTrack } from '../../vpn/controller-status.ts'

const STALE = 180_000

describe('a session judged without traffic', () => {
  it('an idle session stays settled past the stale window; a send that waits on a handshake unsettles it after the grace', () => {
    const track: WaitTrack = {}
    const hs = 1_000_000
    trackWaiting(track, { latestHandshake: hs, txBytes: 500 }, hs + 1_000, STALE)
    expect(track).toEqual({})
    // Stale and quiet: the counter is noted, nothing waits.
    const stale = hs + STALE + 1
    trackWaiting(track, { latestHandshake: hs, txBytes: 500 }, stale, STALE)
    expect(track).toEqual({ staleTx: 500 })
    expect(sessionSettled(hs, track.waitingSince, stale + 3_600_000, STALE)).toBe(true)
    // A send (an initiation, 148 bytes): waiting from the pass that sees it.
    trackWaiting(track, { latestHandshake: hs, txBytes: 648 }, stale + 5_000, STALE)
    trackWaiting(track, { latestHandshake: hs, txBytes: 796 }, stale + 10_000, STALE)
    expect(track.waitingSince).toBe(stale + 5_000)
    expect(sessionSettled(hs, track.waitingSince, stale + 5_000 + WAITING_GRACE_MS - 1, STALE)).toBe(true)
    expect(sessionSettled(hs, track.waitingSince, stale + 5_000 + WAITING_GRACE_MS, STALE)).toBe(false)
    // The handshake comes: settled again, the track cleared.
    const next = stale + 20_000
    trackWaiting(track, { latestHandshake: next, txBytes: 1_000 }, next + 1, STALE)
    expect(track).toEqual({})
    expect(sessionSettled(next, track.waitingSince, next + 1, STALE)).toBe(true)
  })

  it('never for a peer without a handshake; a counter that went down starts over', () => {
    expect(sessionSettled(0, undefined, 1, STALE)).toBe(false)
    const track: WaitTrack = { staleTx: 900, waitingSince: 5 }
    trackWaiting(track, { latestHandshake: 0, txBytes: 148 }, 10, STALE)
    expect(track).toEqual({ staleTx: 148 })
  })
})
