import { describe, expect, it } from 'vitest'
import { departureOf } from '../../p2p/departures.ts'

const DAY = 86_400_000

describe('departureOf', () => {
  const now = 100 * DAY
  it.each([
    { name: 'alive member counts', id: 'a', row: { liveness: 'alive' as const, lastSeen: now }, revoked: [], want: undefined },
    { name: 'dead for less than forget_after still counts', id: 'a', row: { liveness: 'dead' as const, lastSeen: now - 7 * DAY + 1 }, revoked: [], want: undefined },
    { name: 'dead for forget_after is forgotten', id: 'a', row: { liveness: 'dead' as const, lastSeen: now - 7 * DAY }, revoked: [], want: 'forgotten' },
    { name: 'suspect for long is not forgotten (only a dead member is)', id: 'a', row: { liveness: 'suspect' as const, lastSeen: now - 30 * DAY }, revoked: [], want: undefined },
    { name: 'a revoked member is removed, alive or not', id: 'a', row: { liveness: 'alive' as const, lastSeen: now }, revoked: ['a'], want: 'removed' },
    { name: 'a revoked id without a row is removed', id: 'a', row: undefined, revoked: ['a'], want: 'removed' },
    { name: 'no row and not revoked counts', id: 'a', row: undefined, revoked: ['b'], want: undefined }
  ])('$name', ({ id, row, revoked, want }) => {
    expect(departureOf(id, row, new Set(revoked), now, 7 * DAY)).toBe(want)
  })
})
