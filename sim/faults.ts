import type { RandomSource } from '../util/random.ts'

/** Which faults a run draws from its seed. */
export type FaultMix = 'none' | 'full' | 'clean-split'

/** The events a fault plan schedules. */
export type FaultEvent =
  | { type: 'boot', node: number }
  | { type: 'crash', node: number }
  | { type: 'restart', node: number }
  | { type: 'partition', groups: number[] }
  | { type: 'heal' }

export interface FaultPlanInit {
  faults: FaultMix
  /** Nodes in the run, the hostile member included: each boots, and each is in a partition's groups. */
  nodes: number
  /** Honest nodes: which ones crash, and the halves of a clean split. */
  honest: number
  /** Spread of boot times, ms. @default drawn from the seed, up to 3 minutes ('full' only) */
  bootSpreadMs?: number
  /** The run's random source: the plan is part of the seed's sequence. */
  rng: RandomSource
  /** When the run starts. */
  t0: number
  /** Schedules an event. */
  push: (at: number, ev: FaultEvent) => void
}

export interface FaultPlan {
  /** Share of gossip lost. */
  loss: number
  /** Longest gossip delay, ms. */
  maxDelay: number
  /** When the last scheduled fault ends (the last boot, heal or restart). */
  lastFault: number
  /** One line per fault, for the run's description. */
  description: string[]
}

/**
 * Draws a run's faults from its seed and schedules them: staggered boots, then with
 * 'full' loss, delay and reordering, partitions, crashes and site power cycles, or
 * with 'clean-split' a split in halves for the first minute.
 */
export function planFaults (init: FaultPlanInit): FaultPlan {
  const { faults, rng, t0, push } = init
  const n = init.honest
  const all = Array.from({ length: init.nodes }, (_, i) => i)
  const desc: string[] = []
  const loss = faults === 'full' ? rng.float() * 0.3 : 0
  const maxDelay = faults === 'full' ? 2 + rng.int(800) : 5
  const shortBoot = rng.float() < 0.5
  const drawnSpread = rng.int(shortBoot ? 10_000 : 180_000)
  const bootSpread = init.bootSpreadMs ?? (faults === 'full' ? drawnSpread : 0)
  let lastFault = t0
  for (const node of all) {
    const at = t0 + rng.int(bootSpread + 1)
    push(at, { type: 'boot', node })
    lastFault = Math.max(lastFault, at)
  }
  desc.push(`loss=${loss.toFixed(2)} delay<=${maxDelay}ms boots over ${bootSpread}ms`)
  if (faults === 'clean-split') {
    const groups = all.map((i) => (i < Math.ceil(n / 2) ? 0 : 1))
    push(t0, { type: 'partition', groups })
    push(t0 + 60_000, { type: 'heal' })
    lastFault = Math.max(lastFault, t0 + 60_000)
    desc.push('clean split in halves for 60s from the start')
  } else if (faults === 'full') {
    const horizon = bootSpread + 20_000
    const partitions = rng.int(4)
    for (let p = 0; p < partitions; p++) {
      const at = t0 + rng.int(horizon)
      const k = 2 + rng.int(2)
      const groups = all.map(() => rng.int(k))
      const dur = 500 + rng.int(40_000)
      push(at, { type: 'partition', groups })
      push(at + dur, { type: 'heal' })
      lastFault = Math.max(lastFault, at + dur)
      desc.push(`partition into ${k} at +${at - t0}ms for ${dur}ms`)
    }
    const crashes = rng.int(Math.max(1, Math.floor(n / 3)))
    for (let c = 0; c < crashes; c++) {
      const node = rng.int(n)
      const at = t0 + rng.int(horizon)
      const down = 200 + rng.int(30_000)
      push(at, { type: 'crash', node })
      push(at + down, { type: 'restart', node })
      lastFault = Math.max(lastFault, at + down)
    }
    if (crashes > 0) desc.push(`${crashes} crash/restart`)
    if (rng.float() < 0.3) {
      const at = t0 + rng.int(horizon + 20_000)
      let maxBack = at
      for (const node of all) {
        push(at, { type: 'crash', node })
        const back = at + 1_000 + rng.int(20_000)
        push(back, { type: 'restart', node })
        maxBack = Math.max(maxBack, back)
      }
      lastFault = Math.max(lastFault, maxBack)
      desc.push(`site power cycle at +${at - t0}ms`)
    }
  }
  return { loss, maxDelay, lastFault, description: desc }
}
