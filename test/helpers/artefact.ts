// The self-contained artefact for tests: the one `npm run build` left in dist/ (CI builds
// it before the tests), else one built for this test file in a scratch dir.
import { access, constants, mkdir, mkdtemp } from 'node:fs/promises'
import { join } from 'node:path'
import { REPO_ROOT } from '../../build/bundle.ts'
import { artefactName, packageVersion } from '../../build/artefact-name.ts'
import { buildArtefact } from '../../build/sea.ts'

/** The unpacked artefact: its dir and the launcher's two names. */
export interface TestArtefact {
  dir: string
  /** `<dir>/bin/kairos-p2p`. */
  launcher: string
  /** `<dir>/bin/agent-provider-kairos-p2p`. */
  provider: string
  /** True when it was built now rather than found in dist/. */
  built: boolean
}

/** How long building the artefact may take in a test's beforeAll, ms. */
export const ARTEFACT_BUILD_TIMEOUT_MS = 240_000

/** The artefact in dist/, or a fresh build of it (about 30 s) when dist/ has none. */
export async function ensureArtefact (): Promise<TestArtefact> {
  const name = artefactName(await packageVersion(REPO_ROOT))
  const inDist = join(REPO_ROOT, 'dist', name)
  const at = (dir: string, built: boolean): TestArtefact => ({ dir, launcher: join(dir, 'bin', 'kairos-p2p'), provider: join(dir, 'bin', 'agent-provider-kairos-p2p'), built })
  try {
    await access(join(inDist, 'bin', 'kairos-p2p'), constants.X_OK)
    return at(inDist, false)
  } catch { /* not built: build one for this file */ }
  const parent = join(REPO_ROOT, 'node_modules', '.cache', 'kairos-p2p', 'test')
  await mkdir(parent, { recursive: true })
  const out = await mkdtemp(join(parent, 'artefact-'))
  const a = await buildArtefact(out)
  return at(a.dir, true)
}
