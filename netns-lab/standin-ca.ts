/**
 * The k3s stand-in's cluster CA, kept as k3s keeps its own: a self-signed EC P-256
 * certificate `<data-dir>/server/tls/server-ca.crt` (key `server-ca.key`, 0600),
 * created at the server's first start and reused on every later one, so the hash
 * joiners pin stays the same across restarts. Made by the `openssl` command line
 * (node:crypto cannot write a certificate); k3s names its CA `k3s-server-ca@<unix time>`.
 */
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { execa } from 'execa'
import { pemCertificates } from '../roles/credentials.ts'
import { K3S_SERVER_CA_FILE } from '../roles/install-plan.ts'
import { errorMessage } from '../util/errors.ts'
import { StandinCaError } from './standin-protocol.ts'

/** Days the stand-in's CA is valid, as k3s's self-signed CA. @default 3650 */
export const CA_VALIDITY_DAYS = 3650

/** Timeout of the `openssl` call, ms. */
const OPENSSL_TIMEOUT_MS = 30_000

/** The CA file of a k3s data dir. */
export function clusterCaPath (dataDir: string): string {
  return join(dataDir, K3S_SERVER_CA_FILE)
}

/**
 * The cluster CA of `dataDir`, created when there is none: its PEM bytes, exactly what
 * `/cacerts` serves. Throws StandinCaError when openssl fails or the file there is not
 * a certificate.
 */
export async function ensureClusterCa (dataDir: string, now: number, signal?: AbortSignal): Promise<Buffer> {
  const file = clusterCaPath(dataDir)
  const existing = await readCa(file)
  if (existing !== undefined) return existing
  const tls = dirname(file)
  await mkdir(tls, { recursive: true, mode: 0o700 })
  const key = join(tls, 'server-ca.key')
  const tmpKey = `${key}.${process.pid}.tmp`
  const tmpCrt = `${file}.${process.pid}.tmp`
  const argv = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', tmpKey, '-out', tmpCrt,
    '-days', String(CA_VALIDITY_DAYS), '-subj', `/CN=k3s-server-ca@${Math.floor(now / 1000)}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign']
  try {
    await execa('openssl', argv, { timeout: OPENSSL_TIMEOUT_MS, ...(signal === undefined ? {} : { cancelSignal: signal }) })
    await chmod(tmpKey, 0o600)
    // The key first: a CA file on disk always has its key next to it.
    await rename(tmpKey, key)
    await rename(tmpCrt, file)
  } catch (err) {
    await rm(tmpKey, { force: true })
    await rm(tmpCrt, { force: true })
    throw new StandinCaError(`cannot create the cluster CA ${file} with openssl ${argv.slice(0, 3).join(' ')} …: ${errorMessage(err)}`, { cause: err })
  }
  const created = await readCa(file)
  if (created === undefined) throw new StandinCaError(`cluster CA ${file} vanished after it was created`)
  return created
}

/**
 * A joining server's CA: the cluster's, taken from the server it joined (as a k3s
 * server gets it with the cluster's bootstrap data), written under its own `dataDir`
 * unless one is there already. Returns the bytes it serves at `/cacerts`.
 */
export async function adoptClusterCa (dataDir: string, pem: Buffer): Promise<Buffer> {
  const file = clusterCaPath(dataDir)
  const existing = await readCa(file)
  if (existing !== undefined) return existing
  try {
    pemCertificates(pem)
  } catch (err) {
    throw new StandinCaError(`the cluster CA the server served is not a certificate bundle: ${errorMessage(err)}`, { cause: err })
  }
  await mkdir(dirname(file), { recursive: true, mode: 0o700 })
  const tmp = `${file}.${process.pid}.tmp`
  await writeFile(tmp, pem, { mode: 0o644 })
  await rename(tmp, file)
  return pem
}

async function readCa (file: string): Promise<Buffer | undefined> {
  let pem: Buffer
  try {
    pem = await readFile(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new StandinCaError(`cannot read the cluster CA ${file}: ${errorMessage(err)}`, { cause: err })
  }
  try {
    pemCertificates(pem)
  } catch (err) {
    throw new StandinCaError(`cluster CA ${file} is damaged: ${errorMessage(err)}; remove it to create a new one`, { cause: err })
  }
  return pem
}
