import type { InstallPlan } from '../install-plan.ts'

/** What a backend knows about the hand-off recorded before this one. */
export interface PreviousHandOff {
  kind: string
  service: string
  digest: string
}

/** One installer kind: applies a plan; the shared shell handles the record and idempotency. */
export interface InstallBackend {
  /** Applies `plan`; resolves with a one-line description of what was done. */
  apply(plan: InstallPlan, previous: PreviousHandOff | undefined, signal: AbortSignal | undefined): Promise<string>
  /** False when the recorded hand-off was undone outside our control (e.g. config.yaml removed), so it runs again. @default true */
  isCurrent?(plan: InstallPlan): Promise<boolean>
}
