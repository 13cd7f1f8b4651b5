import type { StaticRole } from '../config/types.ts'
import type { HeldCredential } from '../roles/apply.ts'
import type { ClusterSecrets, SealKeys } from '../roles/credentials.ts'
import { EMPTY_FACTS, type LocalFacts, type RoleName, type RolesDecision } from '../roles/types.ts'
import { netNode, type NetNode } from './network.ts'
import { SimReplica } from './replica.ts'

/** A node of the simulation: the network's part (sim/network.ts) and the roles layer's. */
export interface SimNode extends NetNode {
  /** The hostile member: runs the adversary's step (sim/adversary.ts), not the decision. */
  hostile?: boolean
  staticRole: StaticRole
  /** Its sealing keys: credentials are sealed and opened with the production sealing. */
  keys: SealKeys
  address: string
  booted: boolean
  facts: LocalFacts
  secrets?: ClusterSecrets
  tracker?: { key: string, since: number }
  /** The member view's key at the last decision. */
  lastSignature: string
  lastPhase: RolesDecision['phase'] | ''
  recheckAt?: number
  wakePending: boolean
  dirty: boolean
  installing: boolean
  firstRole?: RoleName
  held?: HeldCredential
}

/** A node that has never booted: empty replica, no facts, no secrets. */
export function simNode (init: { id: string, index: number, staticRole: StaticRole, keys: SealKeys, address: string, hostile?: boolean }): SimNode {
  const { id, index, ...rest } = init
  return {
    ...netNode(id, index, new SimReplica(id)),
    ...rest,
    booted: false, facts: { ...EMPTY_FACTS }, lastSignature: '', lastPhase: '', wakePending: false, dirty: true, installing: false
  }
}
