/**
 * `kairos-p2p cluster reset`: a deliberate new cluster on one box, when the only server
 * that could issue credentials is gone for good (no HA, no backup of its state dir).
 *
 * A cluster-init runs once per token and network id (ELEC-6: a node keeps the record it
 * accepted for good), so a new cluster needs a new `p2p.network_id` on every box: the
 * state key is derived from it (token/derive.ts), so the old site's entries, its
 * cluster record and votes among them, are unreadable to the new one. On each box, with
 * its agent stopped and its cloud-config already carrying the new id, the reset moves
 * aside what belongs to the old cluster, as `<file>.reset-<UTC time>` (util/set-aside.ts,
 * never deleted): `roles.json` (role, votes, the accepted record), `cluster-secrets.json`
 * (the old k3s tokens) and the state file. The identity, the seal key and the WireGuard
 * key and claim stay: they are this box's, not the cluster's. k3s itself is not
 * touched: on a box that had joined, uninstall it before starting the agent again.
 */
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { decodeSnapshot, STATE_FILE } from '../p2p/state/persist.ts'
import { decodeWire, openValue } from '../p2p/state/wire.ts'
import { KairosError, errorMessage } from '../util/errors.ts'
import { setAside } from '../util/set-aside.ts'
import { FACTS_FILE, SECRETS_FILE } from './local-store.ts'
import { ROLE_KEYS } from './types.ts'

/** The files of the old cluster a reset moves aside, relative to the state dir. */
export const RESET_FILES: readonly string[] = [FACTS_FILE, SECRETS_FILE, join('state', STATE_FILE)]

/** A reset refused: the agent runs, the network id is unchanged, or a file cannot be moved. */
export class ClusterResetError extends KairosError {
  constructor (message: string, options: { cause?: unknown } = {}) {
    super(message, { ...options, exitCode: 2 })
    this.name = 'ClusterResetError'
  }
}

/**
 * The cluster ids of the `roles/cluster` records in the state file `bytes` that open
 * with `stateKey` (those of the network it is derived for). Pure.
 */
export function recordsUnder (bytes: Uint8Array, stateKey: Uint8Array): Set<string> {
  const out = new Set<string>()
  for (const w of decodeSnapshot(bytes)?.wires ?? []) {
    const d = decodeWire(w)
    if (d?.key !== ROLE_KEYS.cluster) continue
    const opened = openValue(stateKey, d)
    const id = 'value' in opened ? (opened.value as { clusterId?: unknown } | null)?.clusterId : undefined
    if (typeof id === 'string') out.add(id)
  }
  return out
}

/** Inputs of `resetCluster`. */
export interface ClusterResetInit {
  stateDir: string
  /** `p2p.network_id` as configured now (the new cluster's). */
  networkId: string
  /** The state key of the configured token and network id (token/derive.ts `deriveKeys`). */
  stateKey: Uint8Array
  /** Wall-clock ms, for the set-aside names. */
  now: number
  /** Only with it is anything moved; without, the answer lists what would be. */
  confirm: boolean
}

/** What a reset did (or would do, unconfirmed). */
export interface ClusterResetResult {
  done: boolean
  /** Each file of the old cluster found, with the name it was moved to (when done). */
  files: Array<{ file: string, movedTo?: string }>
}

/**
 * Moves aside the old cluster's files in `stateDir` (see the module comment). Refuses
 * with `ClusterResetError` when the record of the cluster this node accepted is in the
 * state file under the configured network id: the cloud-config still has the old
 * `p2p.network_id`, and the node would only take the old cluster back from its peers.
 */
export async function resetCluster (init: ClusterResetInit): Promise<ClusterResetResult> {
  const statePath = join(init.stateDir, 'state', STATE_FILE)
  const read = async (path: string): Promise<Uint8Array | undefined> => {
    try {
      return new Uint8Array(await readFile(path))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw new ClusterResetError(`cluster reset: cannot read ${path}: ${errorMessage(err)}`, { cause: err })
    }
  }
  // The cluster this node accepted, when roles.json still says (a damaged one is moved aside too).
  let accepted: string | undefined
  const facts = await read(join(init.stateDir, FACTS_FILE))
  try {
    const f = facts === undefined ? undefined : JSON.parse(Buffer.from(facts).toString('utf8')) as { cluster?: { clusterId?: unknown } | null, role?: { clusterId?: unknown } | null }
    const id = f?.cluster?.clusterId ?? f?.role?.clusterId
    if (typeof id === 'string') accepted = id
  } catch {}
  const state = await read(statePath)
  if (accepted !== undefined && state !== undefined && recordsUnder(state, init.stateKey).has(accepted)) {
    throw new ClusterResetError(`cluster reset: the cluster this node accepted (${accepted}) is in the state of p2p.network_id ${JSON.stringify(init.networkId)}, the one configured now; a new cluster needs a new p2p.network_id: set it in the cloud-config of every box first, then run the reset on each`)
  }
  const found = RESET_FILES.filter((f) => existsSync(join(init.stateDir, f)))
  if (!init.confirm) return { done: false, files: found.map((file) => ({ file })) }
  const files: ClusterResetResult['files'] = []
  for (const file of found) {
    try {
      files.push({ file, movedTo: setAside(join(init.stateDir, file), init.now, 'reset') })
    } catch (err) {
      const moved = files.map((f) => `${f.file} → ${f.movedTo ?? ''}`).join(', ')
      throw new ClusterResetError(`cluster reset: cannot move ${join(init.stateDir, file)} aside: ${errorMessage(err)}${moved === '' ? '' : ` (already moved: ${moved})`}`, { cause: err })
    }
  }
  return { done: true, files }
}
