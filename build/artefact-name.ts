// Names of the self-contained artefact, for the build and for what runs it (the lab).
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'

/** `kairos-p2p-<version>-linux-x64`: the artefact's base name (tarball and unpacked dir). */
export function artefactName (version: string): string {
  return `kairos-p2p-${version}-linux-x64`
}

/** The version in `root`'s package.json. */
export async function packageVersion (root: string): Promise<string> {
  const file = join(root, 'package.json')
  const pkg = JSON.parse(await readFile(file, 'utf8')) as { version?: unknown }
  if (typeof pkg.version !== 'string') throw new Error(`${file} has no version`)
  return pkg.version
}

/** The unpacked artefact `npm run build` leaves in the checkout `root`. */
export async function distArtefactDir (root: string): Promise<string> {
  return join(root, 'dist', artefactName(await packageVersion(root)))
}
