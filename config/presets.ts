import type { PresetName, Timing } from './types.ts'

/**
 * Production timing for a LAN site. A silent member is suspect after 1.5 s and dead
 * after 3 s (six missed heartbeats), the member view must hold still for 1.5 s before
 * a node stands for election, so a 3-node site elects within a few seconds of the last
 * boot instead of Kairos's minutes.
 */
const LAN: Timing = Object.freeze({
  antiEntropyIntervalMs: 5_000,
  heartbeatIntervalMs: 500,
  suspectAfterMs: 1_500,
  deadAfterMs: 3_000,
  redialIntervalMs: 5_000,
  electionSettleMs: 1_500,
  electionTermTimeoutMs: 5_000,
  rolesTickMs: 1_000,
  vpnReconcileMs: 5_000,
  // WireGuard re-handshakes every 2 minutes while traffic (or keepalive) flows, so a
  // peer is only down once a handshake is clearly overdue: 3 minutes.
  vpnHandshakeStaleMs: 180_000,
  rendezvousEpochMs: 3_600_000,
  rendezvousIntervalMs: 10_000,
  mdnsIntervalMs: 5_000
})

/**
 * Short intervals for tests, the simulation and the netns lab: each interval is five
 * to ten times shorter than `lan`. The exception is `vpnHandshakeStaleMs`, which
 * follows WireGuard's fixed 2-minute re-handshake and cannot be shortened without
 * reporting healthy peers as down.
 */
const LAB: Timing = Object.freeze({
  antiEntropyIntervalMs: 1_000,
  heartbeatIntervalMs: 100,
  suspectAfterMs: 300,
  deadAfterMs: 600,
  redialIntervalMs: 1_000,
  electionSettleMs: 300,
  electionTermTimeoutMs: 1_000,
  rolesTickMs: 200,
  vpnReconcileMs: 1_000,
  vpnHandshakeStaleMs: 180_000,
  rendezvousEpochMs: 60_000,
  rendezvousIntervalMs: 2_000,
  mdnsIntervalMs: 1_000
})

/** Named timing presets: `lan` (production defaults) and `lab` (tests and the netns lab). */
export const PRESETS: Readonly<Record<PresetName, Timing>> = Object.freeze({ lan: LAN, lab: LAB })

/** Every preset name, in the order shown in help texts. */
export const PRESET_NAMES: readonly PresetName[] = Object.freeze(['lan', 'lab'])

/** The preset used when neither `p2p.preset` nor an override names one. */
export const DEFAULT_PRESET: PresetName = 'lan'

/** Every `Timing` field, in declaration order. */
export const TIMING_FIELDS: ReadonlyArray<keyof Timing> = Object.freeze(Object.keys(LAN) as Array<keyof Timing>)

/** The cloud-config key of a `Timing` field under `p2p.timing`: `deadAfterMs` → `dead_after_ms`. */
export function timingKey (field: keyof Timing): string {
  return field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)
}

/** True when `name` is a preset name. */
export function isPresetName (name: unknown): name is PresetName {
  return typeof name === 'string' && (PRESET_NAMES as readonly string[]).includes(name)
}
