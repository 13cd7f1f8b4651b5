import type { Clock } from '../util/clock.ts'

/** Formation milestones, in the order a healthy node reaches them. */
export const TIMELINE_EVENTS = ['started', 'discovered', 'elected', 'credential', 'overlay-up', 'installing', 'joined'] as const
export type TimelineEventName = typeof TIMELINE_EVENTS[number]

export interface TimelineEvent {
  event: string
  /** Wall-clock ms. */
  at: number
}

/**
 * The node's formation timeline: each milestone recorded once, at its first
 * occurrence, so `lab report` can chart how long formation took and where.
 */
export class Timeline {
  private readonly events = new Map<string, number>()
  private readonly clock: Clock

  constructor (clock: Clock) {
    this.clock = clock
  }

  /** Records `event` now unless it was already recorded; returns whether it was new. */
  record (event: string, at = this.clock.now()): boolean {
    if (this.events.has(event)) return false
    this.events.set(event, at)
    return true
  }

  /** Adds events from another source (e.g. the roles controller), keeping first occurrences. */
  merge (events: readonly TimelineEvent[]): void {
    for (const e of events) this.record(e.event, e.at)
  }

  list (): TimelineEvent[] {
    return [...this.events].map(([event, at]) => ({ event, at })).sort((a, b) => a.at - b.at)
  }
}
