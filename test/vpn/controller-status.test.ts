import { describe, expect, it } from 'vitest'
import { sessionSettled, trackWaiting, WAITING_GRACE_MS, type WaitTrack } from '../../vpn/controller-status.ts'

const STALE = 180_000

describe('a session judged without traffic', () => {
  it('an idle session stays settled past the stale window; a send that goes unanswered unsettles it after the grace', () => {
    const track: WaitTrack = {}
    const hs = 1_000_000
    trackWaiting(track, { latestHandshake: hs, txBytes: 500, rxBytes: 400 }, hs + 1_000, STALE)
    expect(track).toEqual({})
    // Stale and quiet: the counters are noted, nothing waits.
    const stale = hs + STALE + 1
    trackWaiting(track, { latestHandshake: hs, txBytes: 500, rxBytes: 400 }, stale, STALE)
    expect(track).toEqual({ staleTx: 500, staleRx: 400 })
    expect(sessionSettled(hs, track.waitingSince, stale + 3_600_000, STALE)).toBe(true)
    // A send answered without a handshake (keys still valid): nothing waits.
    trackWaiting(track, { latestHandshake: hs, txBytes: 600, rxBytes: 400 }, stale + 1_000, STALE)
    trackWaiting(track, { latestHandshake: hs, txBytes: 600, rxBytes: 432 }, stale + 2_000, STALE)
    expect(track).toEqual({ staleTx: 600, staleRx: 432 })
    // A send (an initiation, 148 bytes) and no answer: waiting from the pass that sees it.
    trackWaiting(track, { latestHandshake: hs, txBytes: 748, rxBytes: 432 }, stale + 5_000, STALE)
    trackWaiting(track, { latestHandshake: hs, txBytes: 896, rxBytes: 432 }, stale + 10_000, STALE)
    expect(track.waitingSince).toBe(stale + 5_000)
    expect(sessionSettled(hs, track.waitingSince, stale + 5_000 + WAITING_GRACE_MS - 1, STALE)).toBe(true)
    expect(sessionSettled(hs, track.waitingSince, stale + 5_000 + WAITING_GRACE_MS, STALE)).toBe(false)
    // The handshake comes: settled again, the track cleared.
    const next = stale + 20_000
    trackWaiting(track, { latestHandshake: next, txBytes: 1_000, rxBytes: 524 }, next + 1, STALE)
    expect(track).toEqual({})
    expect(sessionSettled(next, track.waitingSince, next + 1, STALE)).toBe(true)
  })

  it('never for a peer without a handshake; a counter that went down starts over', () => {
    expect(sessionSettled(0, undefined, 1, STALE)).toBe(false)
    const track: WaitTrack = { staleTx: 900, staleRx: 0, waitingSince: 5 }
    trackWaiting(track, { latestHandshake: 0, txBytes: 148, rxBytes: 0 }, 10, STALE)
    expect(track).toEqual({ staleTx: 148, staleRx: 0 })
  })
})
