import { deriveKeys, type DerivedKeys, type NetworkToken } from '../token/index.ts'
import { ADMIT_PROTOCOL_SUFFIX } from './admission.ts'
import { HEARTBEAT_PROTOCOL_SUFFIX, HEARTBEAT_V2_PROTOCOL_SUFFIX } from './heartbeat.ts'
import { PUSH_PROTOCOL_SUFFIX, SYNC_PROTOCOL_SUFFIX } from './sync.ts'

/** The protocol ids of one token generation; the heartbeat's, newest version first (see heartbeat.ts). */
export interface GenerationProtocols { admit: string, sync: string, push: string, heartbeat: string[] }

/** What a node serves of a token rotation's previous generation, beside the current one (docs/decisions.md, LIFE-5). */
export interface PreviousGeneration {
  /** Its derived keys; undefined when the node holds one generation only. */
  keys: DerivedKeys | undefined
  /** True while the grace runs: read at every use, so its end takes effect without a restart. */
  honoured: () => boolean
  protocols: GenerationProtocols | undefined
  /** Its gossip topics → ours: what a member still on it publishes is taken as ours while it is honoured. */
  topics: ReadonlyMap<string, string>
}

/** The protocol ids under a generation's sync prefix. */
export function generationProtocols (keys: Pick<DerivedKeys, 'syncProtocol'>): GenerationProtocols {
  return { admit: keys.syncProtocol + ADMIT_PROTOCOL_SUFFIX, sync: keys.syncProtocol + SYNC_PROTOCOL_SUFFIX, push: keys.syncProtocol + PUSH_PROTOCOL_SUFFIX, heartbeat: [keys.syncProtocol + HEARTBEAT_PROTOCOL_SUFFIX, keys.syncProtocol + HEARTBEAT_V2_PROTOCOL_SUFFIX] }
}

/** The previous generation of `previous` (none when undefined), honoured while `now() < previous.until`. */
export function previousGeneration (previous: { token: NetworkToken, until: number } | undefined, networkId: string, ours: { state: string, members: string }, now: () => number): PreviousGeneration {
  if (previous === undefined) return { keys: undefined, honoured: () => false, protocols: undefined, topics: new Map() }
  const keys = deriveKeys(previous.token, networkId)
  const until = previous.until
  return {
    keys,
    honoured: () => now() < until,
    protocols: generationProtocols(keys),
    topics: new Map([[keys.gossipTopic, ours.state], [`${keys.syncProtocol}/members/1.0.0`, ours.members]])
  }
}
