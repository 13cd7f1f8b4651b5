// The artefact for boxes: `dist/kairos-p2p-<version>-linux-x64.tar.gz`, a self-contained
// executable (Node 24 inside, as a single executable application) with its launcher,
// the provider's name, the systemd unit and INSTALL, laid out to be extracted into
// /usr/local. The same tree stays unpacked next to it (`dist/kairos-p2p-<version>-linux-x64/`)
// for the tests and the lab.
//
// The steps are Node's (docs: Single executable applications): the CLI bundled as one
// CommonJS file (a SEA entry is CommonJS, and its `require` reaches built-ins only), a
// preparation blob from `node --experimental-sea-config`, a copy of this Node binary,
// stripped *before* the blob goes in (stripping after it leaves a binary that
// segfaults), and the blob injected with postject under Node's sentinel fuse.
//
//   node build/sea.ts [--out-dir dist]
import { execFile } from 'node:child_process'
import { chmod, copyFile, mkdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { glibcFloorOf, renderLauncher } from '../box/launcher.ts'
import { EXECUTABLE_SUBPATH, UNIT_SUBPATH } from '../box/paths.ts'
import { PROVIDER_NAME } from '../box/called-as.ts'
import { AGENT_NODE_OPTIONS } from '../box/runtime.ts'
import { renderUnit } from '../box/unit.ts'
import { artefactName, packageVersion } from './artefact-name.ts'
import { buildBundle, REPO_ROOT } from './bundle.ts'

const run = promisify(execFile)

/** Node's fuse for the SEA blob (`NODE_SEA_FUSE_` + the postject hash). */
export const SEA_SENTINEL_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2'
/** Resource name Node reads the blob from. */
export const SEA_RESOURCE = 'NODE_SEA_BLOB'
/** Node major the executable carries (the project's pinned `node@24`). */
export const SEA_NODE_MAJOR = 24
/** The INSTALL text in the repository; `@VERSION@`, `@GLIBC_FLOOR@` and `@ARTEFACT@` are filled in. */
export const INSTALL_TEXT = join('box', 'INSTALL')
/** Where INSTALL goes inside the artefact. */
export const INSTALL_SUBPATH = join('share', 'doc', 'kairos-p2p', 'INSTALL')

/**
 * The SEA config: `main` into the blob at `output`, with V8's code cache (it spares the
 * executable compiling its 3 MB script at every start) and the agent's Node options as
 * the executable's own (`execArgv`; NODE_OPTIONS can still add to them).
 */
export function seaConfig (main: string, output: string): Record<string, unknown> {
  return { main, output, disableExperimentalSEAWarning: true, useCodeCache: true, execArgv: [...AGENT_NODE_OPTIONS] }
}

/** A build failure naming the step and the way out. */
export class ArtefactBuildError extends Error {
  constructor (message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'ArtefactBuildError'
  }
}

/** What `buildArtefact` made. */
export interface Artefact {
  /** The tarball. */
  tarball: string
  /** The unpacked tree (the same files), e.g. for `<dir>/bin/kairos-p2p`. */
  dir: string
  /** The launcher in `dir`. */
  launcher: string
  /** Oldest glibc the executable runs on. */
  glibcFloor: string
  /** Size of the executable and of the tarball, bytes. */
  executableBytes: number
  tarballBytes: number
}

async function tool (argv: readonly string[], what: string, debianPackage: string): Promise<string> {
  const [file, ...args] = argv
  try {
    const { stdout } = await run(file ?? '', args, { maxBuffer: 64 * 1024 * 1024 })
    return stdout
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string }
    if (e.code === 'ENOENT') throw new ArtefactBuildError(`${what}: '${file ?? ''}' not found; install it (Debian: apt-get install ${debianPackage})`, { cause: err })
    throw new ArtefactBuildError(`${what}: ${argv.join(' ')} failed: ${(e.stderr ?? e.message).trim()}`, { cause: err })
  }
}

/**
 * Builds the artefact into `outDir` with this process's Node (it must be Node 24 on
 * linux-x64: the executable is a copy of it). Needs `strip` and `objdump` (binutils)
 * and `tar`.
 */
export async function buildArtefact (outDir = join(REPO_ROOT, 'dist'), root = REPO_ROOT): Promise<Artefact> {
  const major = Number(process.versions.node.split('.')[0])
  if (major !== SEA_NODE_MAJOR) throw new ArtefactBuildError(`the executable is a copy of the Node that builds it; expected Node ${SEA_NODE_MAJOR} (npm run build uses the project's node@24), got ${process.version}`)
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new ArtefactBuildError(`the artefact is for linux-x64; this is ${process.platform}-${process.arch}`)
  const version = await packageVersion(root)
  const name = artefactName(version)
  const work = join(outDir, '.sea')
  const dir = join(outDir, name)
  await rm(work, { recursive: true, force: true })
  await rm(dir, { recursive: true, force: true })
  await mkdir(work, { recursive: true })

  const { code } = await buildBundle(join(root, 'cli', 'main.ts'), 'cjs')
  const main = join(work, 'kairos-p2p.cjs')
  const blob = join(work, 'sea-prep.blob')
  await writeFile(main, code)
  await writeFile(join(work, 'sea-config.json'), JSON.stringify(seaConfig(main, blob)))
  // Under the executable's own Node options: V8 refuses a code cache made under options that change its tag.
  await tool([process.execPath, ...AGENT_NODE_OPTIONS, '--experimental-sea-config', join(work, 'sea-config.json')], 'preparing the SEA blob', 'nodejs')

  const exe = join(dir, EXECUTABLE_SUBPATH)
  await mkdir(join(exe, '..'), { recursive: true })
  await copyFile(process.execPath, exe)
  await chmod(exe, 0o755)
  await tool(['strip', exe], 'stripping the Node copy (before injection: after it the binary segfaults)', 'binutils')
  const glibcFloor = glibcFloorOf(await tool(['objdump', '-T', exe], 'reading the glibc floor', 'binutils'))
  const { inject } = await import('postject')
  await inject(exe, SEA_RESOURCE, await readFile(blob), { sentinelFuse: SEA_SENTINEL_FUSE })

  await mkdir(join(dir, 'bin'), { recursive: true })
  const launcher = join(dir, 'bin', 'kairos-p2p')
  await writeFile(launcher, renderLauncher({ glibcFloor }), { mode: 0o755 })
  await symlink('kairos-p2p', join(dir, 'bin', PROVIDER_NAME))
  await mkdir(join(dir, 'system', 'providers'), { recursive: true })
  await symlink(join('..', '..', 'bin', 'kairos-p2p'), join(dir, 'system', 'providers', PROVIDER_NAME))
  await mkdir(join(dir, UNIT_SUBPATH, '..'), { recursive: true })
  await writeFile(join(dir, UNIT_SUBPATH), renderUnit(), { mode: 0o644 })
  const install = (await readFile(join(root, INSTALL_TEXT), 'utf8'))
    .replaceAll('@VERSION@', version).replaceAll('@GLIBC_FLOOR@', glibcFloor).replaceAll('@ARTEFACT@', name)
  await mkdir(join(dir, INSTALL_SUBPATH, '..'), { recursive: true })
  await writeFile(join(dir, INSTALL_SUBPATH), install, { mode: 0o644 })

  const tarball = join(outDir, `${name}.tar.gz`)
  await rm(tarball, { force: true })
  await tool(['tar', '--create', '--gzip', '--file', tarball, '--directory', outDir, '--owner=0', '--group=0', '--numeric-owner', '--sort=name', name], 'packing the tarball', 'tar')
  await rm(work, { recursive: true, force: true })
  return { tarball, dir, launcher, glibcFloor, executableBytes: (await stat(exe)).size, tarballBytes: (await stat(tarball)).size }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { parseArgs } = await import('node:util')
  const { values } = parseArgs({ options: { 'out-dir': { type: 'string' } } })
  const started = performance.now()
  try {
    const a = await buildArtefact(values['out-dir'] ?? join(REPO_ROOT, 'dist'))
    const mb = (n: number): string => (n / 1e6).toFixed(1)
    process.stdout.write(`${relative(process.cwd(), a.tarball)}: ${mb(a.tarballBytes)} MB (executable ${mb(a.executableBytes)} MB, needs glibc ≥ ${a.glibcFloor}) in ${Math.round(performance.now() - started)} ms\n`)
  } catch (err) {
    process.stderr.write(`build/sea.ts: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = 1
  }
}
