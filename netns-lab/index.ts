// The netns lab: a whole edge site on one machine (see lab.ts for the operations).
export {
  createLab, isFormed, summarizeStatus, assertAgentsAlive, defaultNodePath, randomLabId, IDENTITY_FILE, LAST_STATUS_FILE,
  DEFAULT_WAIT_INTERVAL_MS, DEFAULT_WAIT_TIMEOUT_MS, DEFAULT_AGENT_NODE_ARGS, DEFAULT_INSTALL_TIMEOUT_MS, LAB_COMPILE_CACHE,
  type Lab, type LabInit, type LabStatus, type NodeStatus, type ClusterView, type AgentStatusView, type WaitOptions
} from './lab.ts'
export { planTopology, strictMajority, labPrefix, type TopologyPlan, type HostPlan, type SegmentPlan, type TopologyPlanInit } from './plan.ts'
export { DEFAULT_LAB_ROOT, readLabRecord, listLabIds, type LabRecord, type HostRecord, type ImpairmentMethod } from './meta.ts'
export { teardownLab, type TeardownReport, type TeardownInit } from './teardown.ts'
export { buildTimelineReport, renderTimelineSvg, type TimelineReport, type NodeTimeline, type Milestone } from './report.ts'
export { hostCloudConfig, renderCloudConfig, LAB_P2P_PORT, LAB_SITE_TIMING } from './cloud-config.ts'
export { STANDIN_PORT, type RegisteredNode, type StandinRegistry } from './k3s-standin.ts'
export {
  LabInputError, LabCommandError, LabNotFoundError, LabExistsError, UnknownNodeError, LabCapabilityError, LabTimeoutError, LabAgentExitedError
} from './errors.ts'
