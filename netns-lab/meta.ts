import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { LabNotFoundError } from './errors.ts'
import { assertLabId, MAX_LAB_INDEX, type HostPlan, type TopologyPlan } from './plan.ts'

/**
 * lab.json: everything `lab down` and the other operations need to find a lab's
 * resources again from a fresh process, also after the process that built it crashed.
 */

/** Where labs live unless `--dir` / `KAIROS_LAB_DIR` says otherwise. */
export const DEFAULT_LAB_ROOT = '/tmp/kairos-lab'
/** File name of the lab record inside the lab dir. */
export const LAB_RECORD_FILE = 'lab.json'

/** A host as recorded: its plan plus the runtime paths and PIDs. */
export interface HostRecord extends HostPlan {
  /** Host dir on the host filesystem: state dir, config, logs, stand-in files. */
  dir: string
  /** The agent's state dir (`p2p.state_dir`). */
  stateDir: string
  /** The generated cloud-config. */
  configPath: string
  /** Agent stdout/stderr. */
  logPath: string
  /** Holder process of the host's mount namespace. */
  holderPid?: number
  /** Running agent, if any. */
  agentPid?: number
  /** Wall-clock ms of the last agent spawn. */
  agentStartedAt?: number
}

/** How loss and delay are applied on the host veths. */
export type ImpairmentMethod = 'none' | 'netem' | 'nft'

/** The content of lab.json. */
export interface LabRecord {
  version: 1
  id: string
  /** The lab dir (holds lab.json). */
  dir: string
  createdAt: number
  plan: Omit<TopologyPlan, 'hosts'>
  hosts: HostRecord[]
  lossPct: number
  delayMs: number
  impairment: ImpairmentMethod
  minimumNodes: number
  /** File holding the network token (mode 0600). */
  tokenFile: string
  /** `p2p.bootstrap_peers` written into every host config (several segments). */
  bootstrapPeers: string[]
  /** Node 24 binary that runs agents and stand-ins. */
  nodePath: string
  /** Checkout whose `cli/main.ts` and `netns-lab/k3s-standin.ts` are run. */
  repoRoot: string
  /**
   * The unpacked self-contained artefact whose `bin/kairos-p2p` runs the agents, as its
   * systemd unit starts it, with the state in the default dir; absent: the bundle on `nodePath`.
   */
  artefact?: string
  /** Active partitions: pairs of node-name groups that cannot reach each other. */
  partitions: Array<[string[], string[]]>
}

/** The dir of lab `id` under `root`. */
export function labDir (root: string, id: string): string {
  return join(root, id)
}

/** Reads lab.json of `id`, or undefined when there is none. */
export async function readLabRecord (root: string, id: string): Promise<LabRecord | undefined> {
  let text: string
  try {
    text = await readFile(join(labDir(root, id), LAB_RECORD_FILE), 'utf8')
  } catch {
    return undefined
  }
  const parsed = JSON.parse(text) as LabRecord
  if (parsed.version !== 1 || parsed.id !== id) {
    throw new LabNotFoundError(`${join(labDir(root, id), LAB_RECORD_FILE)} is not a version 1 record of lab '${id}'`)
  }
  return parsed
}

/** Writes lab.json atomically (temporary file + rename). */
export async function writeLabRecord (record: LabRecord): Promise<void> {
  await mkdir(record.dir, { recursive: true })
  const path = join(record.dir, LAB_RECORD_FILE)
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, JSON.stringify(record, null, 2) + '\n', { mode: 0o600 })
  await rename(tmp, path)
}

/** Ids of every lab recorded under `root`. */
export async function listLabIds (root: string): Promise<string[]> {
  let entries: string[]
  try {
    entries = await readdir(root)
  } catch {
    return []
  }
  const ids: string[] = []
  for (const e of entries.sort()) {
    try {
      await readFile(join(root, e, LAB_RECORD_FILE))
      ids.push(e)
    } catch { /* not a lab */ }
  }
  return ids
}

/** The lowest address index no recorded lab under `root` uses. */
export async function allocateLabIndex (root: string): Promise<number> {
  const used = new Set<number>()
  for (const id of await listLabIds(root)) {
    try {
      const rec = await readLabRecord(root, id)
      if (rec !== undefined) used.add(rec.plan.index)
    } catch { /* unreadable record: ignore */ }
  }
  for (let i = 0; i <= MAX_LAB_INDEX; i++) if (!used.has(i)) return i
  return 0
}

/** `id` when given (validated), else the only lab under `root`; LabNotFoundError otherwise. */
export async function resolveLabId (root: string, id: string | undefined): Promise<string> {
  if (id !== undefined) {
    assertLabId(id)
    return id
  }
  const ids = await listLabIds(root)
  if (ids.length === 1 && ids[0] !== undefined) return ids[0]
  if (ids.length === 0) throw new LabNotFoundError(`no labs under ${root}; start one with 'kairos-p2p lab up --nodes N'`)
  throw new LabNotFoundError(`several labs under ${root} (${ids.join(', ')}); pick one with --id`)
}
