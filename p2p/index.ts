// The p2p layer: discovery, admission, replicated state, membership.
export {
  createP2PNode, parseAddress, rendezvousCid, DialError,
  DEFAULT_ADMISSION_TIMEOUT_MS, DEFAULT_DIAL_TIMEOUT_MS, DEFAULT_SYNC_TIMEOUT_MS,
  DEFAULT_MAX_PARALLEL_DIALS, DEFAULT_HEARTBEAT_FANOUT,
  type P2PNode, type P2PNodeInit, type P2PNodeHooks, type P2PStatus, type PeerStatus,
  type GossipHookEvent
} from './node.ts'
export { DEFAULT_MAX_PENDING_INBOUND, DEFAULT_INBOUND_PER_HOST_PER_SECOND, type Libp2pOverrides } from './stack.ts'
export {
  AdmissionError, FrameTooLargeError, IdentityFileError, MalformedFrameError, NodeNotStartedError, StreamEndedError,
  P2PAddressError, type AdmissionFailure
} from './errors.ts'
export { createMembership, encodeRumour, decodeRumour, type Membership, type MembershipInit, type MembershipTransition, type MembershipTiming, type Rumour } from './membership.ts'
export type { ClusterState, ClusterStateEvents, JsonValue, Liveness, Member, StateChange, StateEntry } from './types.ts'
