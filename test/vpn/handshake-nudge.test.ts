import { describe, expect, it } from 'vitest'
import { planNudges, type NudgePeer, type NudgeTrack } from '../../vpn/handshake-nudge.ts'

const policy = { delayMs: 1_000, attempts: 3 }
const silent = (configured = false): NudgePeer[] => [{ publicKey: 'K', latestHandshake: 0, configured }]

describe('planNudges', () => {
  it('nudges a silent peer 1 s, 3 s and 7 s after it was configured, then stops', () => {
    let tracks: ReadonlyMap<string, NudgeTrack> = planNudges(new Map(), silent(true), 0, policy).tracks
    const sent: number[] = []
    for (let now = 0; now <= 60_000; now += 500) {
      const plan = planNudges(tracks, silent(), now, policy)
      if (plan.due.length > 0) sent.push(now)
      tracks = plan.tracks
    }
    expect(sent).toEqual([1_000, 3_000, 7_000])
    expect(planNudges(tracks, silent(), 70_000, policy).nextAt).toBeUndefined()
  })

  it('with a cap on the delay, nudges every maxDelayMs after the first doublings', () => {
    const capped = { delayMs: 1_000, maxDelayMs: 2_000, attempts: 6 }
    let tracks: ReadonlyMap<string, NudgeTrack> = planNudges(new Map(), silent(true), 0, capped).tracks
    const sent: number[] = []
    for (let now = 0; now <= 60_000; now += 500) {
      const plan = planNudges(tracks, silent(), now, capped)
      if (plan.due.length > 0) sent.push(now)
      tracks = plan.tracks
    }
    expect(sent).toEqual([1_000, 3_000, 5_000, 7_000, 9_000, 11_000])
  })

  it('a configured peer that handshakes gets `confirms` more nudges, one per gap, nudged before or not; one found handshaken (a restart) gets none', () => {
    const withConfirms = { delayMs: 1_000, maxDelayMs: 2_000, attempts: 6, confirms: 2 }
    const start = planNudges(new Map(), silent(true), 0, withConfirms)
    const first = planNudges(start.tracks, silent(), 1_000, withConfirms)
    expect(first.due).toEqual(['K'])
    const shaken = [{ publicKey: 'K', latestHandshake: 2, configured: false }]
    const c1 = planNudges(first.tracks, shaken, 2_000, withConfirms)
    expect(c1.due).toEqual(['K'])
    expect(c1.nextAt).toBe(4_000)
    expect(planNudges(c1.tracks, shaken, 3_000, withConfirms).due).toEqual([])
    const c2 = planNudges(c1.tracks, shaken, 4_000, withConfirms)
    expect(c2.due).toEqual(['K'])
    expect(c2.nextAt).toBeUndefined()
    expect(planNudges(c2.tracks, shaken, 10_000, withConfirms).due).toEqual([])
    // The handshake WireGuard started itself when the peer was added, before any nudge:
    // its responder is confirmed the same way (the common case on a clean link).
    const quick = planNudges(start.tracks, shaken, 500, withConfirms)
    expect(quick.due).toEqual(['K'])
    expect(quick.nextAt).toBe(2_500)
    const q2 = planNudges(quick.tracks, shaken, 2_500, withConfirms)
    expect(q2.due).toEqual(['K'])
    expect(q2.nextAt).toBeUndefined()
    expect(planNudges(q2.tracks, shaken, 10_000, withConfirms).due).toEqual([])
    // Found handshaken, never configured in this run (an agent restart): no keepalives.
    const restarted = planNudges(new Map(), shaken, 0, withConfirms)
    expect(restarted.due).toEqual([])
    expect(planNudges(restarted.tracks, shaken, 5_000, withConfirms).due).toEqual([])
  })

  it.each([
    { case: 'just configured', peers: silent(true), due: [], nextAt: 11_000 },
    { case: 'first seen without a handshake', peers: silent(), due: [], nextAt: 11_000 },
    { case: 'handshake present', peers: [{ publicKey: 'K', latestHandshake: 1, configured: false }], due: [], nextAt: undefined },
    { case: 'peer gone', peers: [], due: [], nextAt: undefined }
  ])('$case', ({ peers, due, nextAt }) => {
    const plan = planNudges(new Map(), peers, 10_000, policy)
    expect(plan.due).toEqual(due)
    expect(plan.nextAt).toBe(nextAt)
  })

  it('a handshake ends the nudges, a reconfiguration starts them again, a departed peer is dropped', () => {
    const start = planNudges(new Map(), silent(true), 0, policy)
    const shaken = planNudges(start.tracks, [{ publicKey: 'K', latestHandshake: 5, configured: false }], 1_000, policy)
    expect(shaken.due).toEqual([])
    expect(shaken.nextAt).toBeUndefined()
    const moved = planNudges(shaken.tracks, silent(true), 2_000, policy)
    expect(moved.nextAt).toBe(3_000)
    expect(planNudges(moved.tracks, [], 3_000, policy).tracks.size).toBe(0)
  })

  it('with 0 attempts never nudges', () => {
    const plan = planNudges(new Map(), silent(true), 0, { delayMs: 1_000, attempts: 0 })
    expect(plan.nextAt).toBeUndefined()
    expect(planNudges(plan.tracks, silent(), 5_000, { delayMs: 1_000, attempts: 0 }).due).toEqual([])
  })
})
