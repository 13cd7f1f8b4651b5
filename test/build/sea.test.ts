// The SEA config build/sea.ts writes: the executable carries the agent's Node options.
import { describe, expect, it } from 'vitest'
import { AGENT_NODE_OPTIONS } from '../../box/runtime.ts'
import { seaConfig } from '../../build/sea.ts'

describe('seaConfig', () => {
  it('gives the executable the agent\'s Node options, with V8\'s code cache', () => {
    const c = seaConfig('/w/kairos-p2p.cjs', '/w/sea-prep.blob')
    expect(c).toMatchObject({ main: '/w/kairos-p2p.cjs', output: '/w/sea-prep.blob', useCodeCache: true, disableExperimentalSEAWarning: true })
    expect(c.execArgv).toEqual(AGENT_NODE_OPTIONS)
    expect(AGENT_NODE_OPTIONS).toContain('--max-semi-space-size=1')
  })
})
