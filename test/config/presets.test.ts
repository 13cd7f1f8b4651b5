import { describe, expect, it } from 'vitest'
import { DEFAULT_PRESET, PRESETS, PRESET_NAMES, TIMING_FIELDS, isPresetName, timingKey } from '../../config/presets.ts'

describe('presets', () => {
  it('defines every Timing field as a positive integer in each preset', () => {
    for (const name of PRESET_NAMES) {
      const t = PRESETS[name]
      expect(Object.keys(t).sort()).toEqual([...TIMING_FIELDS].sort())
      for (const field of TIMING_FIELDS) {
        expect(Number.isInteger(t[field]) && t[field] > 0, `${name}.${field}`).toBe(true)
      }
    }
  })

  it('lan detects a dead member within 3 s and settles within 1–2 s', () => {
    expect(DEFAULT_PRESET).toBe('lan')
    expect(PRESETS.lan.deadAfterMs).toBeLessThanOrEqual(3_000)
    expect(PRESETS.lan.electionSettleMs).toBeGreaterThanOrEqual(1_000)
    expect(PRESETS.lan.electionSettleMs).toBeLessThanOrEqual(2_000)
  })

  it('keeps heartbeat < suspect < dead, and a term longer than the settle period', () => {
    for (const name of PRESET_NAMES) {
      const t = PRESETS[name]
      expect(t.heartbeatIntervalMs).toBeLessThan(t.suspectAfterMs)
      expect(t.suspectAfterMs).toBeLessThan(t.deadAfterMs)
      expect(t.electionSettleMs).toBeLessThan(t.electionTermTimeoutMs)
      expect(t.rendezvousIntervalMs).toBeLessThan(t.rendezvousEpochMs)
    }
  })

  it('lab is at least several times faster than lan, except the WireGuard handshake age', () => {
    for (const field of TIMING_FIELDS) {
      if (field === 'vpnHandshakeStaleMs') {
        expect(PRESETS.lab[field]).toBe(PRESETS.lan[field])
        continue
      }
      expect(PRESETS.lan[field] / PRESETS.lab[field], field).toBeGreaterThanOrEqual(3)
    }
  })

  it('is frozen', () => {
    expect(Object.isFrozen(PRESETS.lan)).toBe(true)
    expect(() => { (PRESETS.lab as { deadAfterMs: number }).deadAfterMs = 1 }).toThrow(TypeError)
  })

  it('maps fields to snake_case keys and recognises names', () => {
    expect(timingKey('deadAfterMs')).toBe('dead_after_ms')
    expect(timingKey('vpnHandshakeStaleMs')).toBe('vpn_handshake_stale_ms')
    expect(isPresetName('lab')).toBe(true)
    expect(isPresetName('wan')).toBe(false)
    expect(isPresetName(undefined)).toBe(false)
  })
})
