import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { AddressClaim } from './address.ts'
import { VpnStateFileError } from './errors.ts'
import { writePrivateFile } from './keys.ts'

/** File under the state dir holding the node's overlay address claim. */
export const CLAIM_FILE = 'vpn/claim.json'

/** A persisted claim: the claim and the network it was made in. */
export interface PersistedClaim extends AddressClaim {
  cidr: string
  /**
   * The claim was held uncontested long enough to be established (first claim wins;
   * see vpn/peers.ts): after a restart it still stands against a contender that
   * appeared meanwhile. Absent in files written before this field existed. @default false
   */
  established?: boolean
}

/**
 * The claim persisted in `<stateDir>/vpn/claim.json`, or undefined on first start.
 * @throws VpnStateFileError when the file exists but cannot be read, or (exit code 2) is damaged.
 */
export async function loadClaim (stateDir: string): Promise<PersistedClaim | undefined> {
  const file = join(stateDir, CLAIM_FILE)
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new VpnStateFileError(`${file}: cannot read the overlay address claim`, { cause: err })
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw new VpnStateFileError(`${file}: expected JSON { cidr, address, attempt }`, { cause: err, exitCode: 2 })
  }
  const p = parsed as Partial<PersistedClaim> | null
  if (p === null || typeof p !== 'object' || typeof p.cidr !== 'string' || typeof p.address !== 'string' ||
    typeof p.attempt !== 'number' || !Number.isInteger(p.attempt) || p.attempt < 0 ||
    (p.established !== undefined && typeof p.established !== 'boolean')) {
    throw new VpnStateFileError(`${file}: expected JSON { cidr, address, attempt, established? }`, { exitCode: 2 })
  }
  return { cidr: p.cidr, address: p.address, attempt: p.attempt, ...(p.established === true ? { established: true } : {}) }
}

/** Persists the claim atomically (mode 0600). */
export async function saveClaim (stateDir: string, claim: PersistedClaim): Promise<void> {
  const body = JSON.stringify({ cidr: claim.cidr, address: claim.address, attempt: claim.attempt, ...(claim.established === true ? { established: true } : {}) }) + '\n'
  await writePrivateFile(join(stateDir, CLAIM_FILE), body)
}
