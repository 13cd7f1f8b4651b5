// Support for lab scenario tests: one lab per test under a temporary root, torn down
// after each test (also when it fails), and a node of a status by name.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll } from 'vitest'
import { createLab, type Lab, type LabInit, type LabStatus } from '../../netns-lab/lab.ts'

/** Whether the lab scenarios run: as root, unless KAIROS_LAB_E2E=0. */
export const labEnabled = process.getuid?.() === 0 && process.env.KAIROS_LAB_E2E !== '0'

/**
 * Registers the hooks of a describe block whose tests each start one lab (ids
 * `<tag><pid><n>`, so parallel runs do not collide). Call inside `describe`.
 */
export function labScenarios (tag: string): { start: (init: LabInit) => Promise<Lab> } {
  let root = ''
  let lab: Lab | undefined
  let n = 0
  beforeAll(async () => { root = await mkdtemp(join(tmpdir(), `kairos-lab-${tag}-`)) })
  afterEach(async () => { await lab?.down({ keepReports: false }); lab = undefined })
  afterAll(async () => { await rm(root, { recursive: true, force: true }) })
  return {
    start: async (init) => {
      lab = createLab({ id: `${tag}${(process.pid % 100).toString(36)}${n++}`, root, ...init })
      await lab.up()
      return lab
    }
  }
}

/** The node `name` of a lab status; throws when the status has none. */
export function labNode (s: LabStatus, name: string): LabStatus['nodes'][number] {
  const x = s.nodes.find((y) => y.name === name)
  if (x === undefined) throw new Error(`no node ${name}`)
  return x
}
