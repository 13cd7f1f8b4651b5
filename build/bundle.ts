// The command as one ES module file, with its dependencies inside: what a box runs
// (`dist/kairos-p2p.js`, from `npm run build`) and what the netns lab starts.
//
// Why: loading the ~800 modules of the agent one by one (resolve, read, link each)
// costs 0.6 CPU-s and 55 MB of resident memory before the agent does anything, even
// from Node's compile cache. The bundle loads in about 0.15 CPU-s; on a box that boots
// with a slow CPU, and in a lab that starts 30 agents at once on two cores, that is
// most of an agent's start-up. It is not minified: stack traces in a box's journal
// stay readable.
//
//   node build/bundle.ts [--out dist/kairos-p2p.js]
import { createHash } from 'node:crypto'
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Plugin } from 'rolldown'

/** The checkout this module belongs to. */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')

/** Where `npm run build` writes the bundle (the package's launcher runs it). */
export const DIST_BUNDLE = join('dist', 'kairos-p2p.js')

/**
 * Where the netns lab keeps the bundle its agents run, rebuilt when a source changes.
 * `.mjs`, since no package.json under node_modules says it is a module: as `.js`, Node
 * compiled it as CommonJS first to detect its format, 30 ms of every agent's start.
 */
export const LAB_BUNDLE = join('node_modules', '.cache', 'kairos-p2p', 'bundle', 'kairos-p2p.mjs')

/** Where the netns lab keeps the bundle of its k3s stand-in (see `LAB_BUNDLE`). */
export const LAB_STANDIN_BUNDLE = join('node_modules', '.cache', 'kairos-p2p', 'bundle', 'k3s-standin.mjs')

/** The CLI's entry module, relative to the checkout. */
export const CLI_ENTRY = join('cli', 'main.ts')

/**
 * The build-time constant the bundle defines; `util/bundled.ts` reads it. Outside the
 * bundle the identifier does not exist (and is only ever read through `typeof`).
 */
export const BUNDLED_CONSTANT = 'KAIROS_P2P_BUNDLED'

/** The constant the CommonJS bundle of the self-contained executable also defines (`util/bundled.ts`). */
export const SELF_CONTAINED_CONSTANT = 'KAIROS_P2P_SELF_CONTAINED'

/**
 * The expression in xsalsa20's index.js that picks its WebAssembly build when the
 * runtime has WebAssembly. The bundle takes the package's JavaScript implementation
 * instead; `p2p/pnet-cipher.ts` says why and does the same at run time for the sources.
 */
const XSALSA20_WASM_CHOICE = 'typeof WebAssembly !== "undefined" && require(\'./xsalsa20\')()'

/** Build-time choice of xsalsa20's JavaScript implementation; fails the build if the package changed shape. */
export function xsalsa20JavaScriptPlugin (): Plugin {
  return {
    name: 'kairos-p2p:xsalsa20-javascript',
    transform (code, id) {
      if (!/[\\/]node_modules[\\/]xsalsa20[\\/]index\.js$/.test(id)) return null
      if (!code.includes(XSALSA20_WASM_CHOICE)) {
        throw new Error(`${id}: expected the WebAssembly choice '${XSALSA20_WASM_CHOICE}'; the xsalsa20 package changed, check p2p/pnet-cipher.ts before updating the bundle`)
      }
      return { code: code.replace(XSALSA20_WASM_CHOICE, 'false'), map: null }
    }
  }
}

/**
 * Modules the CommonJS bundle leaves out: the lab (it drives a checkout, and its
 * modules use top-level await, which CommonJS cannot hold). `cli/main.ts` never loads
 * it when `SELF_CONTAINED` is defined; the plugin below only keeps the bundler from
 * reading the dead branch.
 */
const LEFT_OUT_OF_SELF_CONTAINED = /[\\/]cli[\\/]lab\.ts$/

/** Build-time removal of the modules the self-contained executable does not carry. */
export function leaveOutPlugin (pattern: RegExp = LEFT_OUT_OF_SELF_CONTAINED): Plugin {
  return {
    name: 'kairos-p2p:leave-out',
    load (id) {
      if (!pattern.test(id)) return null
      return { code: `throw new Error(${JSON.stringify(`${id} is not part of this build`)})`, map: null }
    }
  }
}

/** The bundle's text, and every file it was built from (absolute paths). */
export interface BundleResult {
  code: string
  inputs: string[]
}

/**
 * Bundles `entry` (default: the CLI) into one file, in memory: an ES module, or
 * CommonJS for the self-contained executable (`build/sea.ts`), whose entry Node runs
 * as CommonJS only.
 */
export async function buildBundle (entry = join(REPO_ROOT, CLI_ENTRY), format: 'esm' | 'cjs' = 'esm'): Promise<BundleResult> {
  const define: Record<string, string> = { [BUNDLED_CONSTANT]: 'true' }
  if (format === 'cjs') define[SELF_CONTAINED_CONSTANT] = 'true'
  const { rolldown } = await import('rolldown')
  const build = await rolldown({
    input: entry,
    platform: 'node',
    // The lab's own bundler stays a lazy import of the sources (it is a dev dependency).
    external: [/^rolldown(\/|$)/],
    plugins: format === 'cjs' ? [xsalsa20JavaScriptPlugin(), leaveOutPlugin()] : [xsalsa20JavaScriptPlugin()],
    transform: { define },
    // libp2p's modules are written to be tree-shaken; warnings about its circular
    // imports and eval-free dynamic code are noise here, errors still fail the build.
    logLevel: 'silent'
  })
  try {
    // One byte per character (AGENT-9): V8 keeps a module's source for as long as the
    // process runs, and a single character past Latin-1 (an arrow or a dash in a doc
    // comment) made it keep all 3 MB of it as two-byte text. So non-ASCII characters in
    // code are escaped, and doc comments, which only people read, are left out.
    const { output } = await build.generate({ format, codeSplitting: false, charset: 'ascii', comments: { legal: true, annotation: true, jsdoc: false } })
    const chunk = output.find((o) => o.type === 'chunk')
    if (chunk === undefined || chunk.type !== 'chunk') throw new Error(`bundling ${entry} produced no chunk`)
    return { code: chunk.code, inputs: (await build.watchFiles).filter((f) => !f.startsWith('\0')) }
  } finally {
    await build.close()
  }
}

/** What a bundle was built from: each input's path, size and modification time. */
async function fingerprint (root: string, inputs: readonly string[]): Promise<string> {
  const hash = createHash('sha256')
  for (const file of [...inputs].sort()) {
    const s = await stat(file).catch(() => undefined)
    hash.update(`${relative(root, file)}\0${s?.size ?? -1}\0${s?.mtimeMs ?? -1}\n`)
  }
  return hash.digest('hex')
}

interface Manifest { fingerprint: string, inputs: string[] }

/** Writes `text` to `file` through a temporary file and a rename, so a reader never sees half of it. */
async function writeWhole (file: string, text: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true })
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`
  await writeFile(tmp, text)
  await rename(tmp, file)
}

/**
 * The path of a bundle of this checkout's `entry` (default the CLI) at `out` (both
 * relative to `root`), built only when missing or when any file it was built from
 * changed since (size or modification time; the list of inputs is kept next to the
 * bundle). Two callers at once both build and the last rename wins: both bundles are
 * whole and equal.
 */
export async function ensureBundle (root = REPO_ROOT, out = LAB_BUNDLE, entry = CLI_ENTRY): Promise<string> {
  const file = join(root, out)
  const manifestFile = `${file}.inputs.json`
  const manifest = await readFile(manifestFile, 'utf8').then((t) => JSON.parse(t) as Manifest, () => undefined)
  if (manifest !== undefined && Array.isArray(manifest.inputs) && await stat(file).then(() => true, () => false)) {
    const inputs = manifest.inputs.map((f) => join(root, f))
    if (await fingerprint(root, inputs) === manifest.fingerprint) return file
  }
  const { code, inputs } = await buildBundle(join(root, entry))
  await writeWhole(file, code)
  const next: Manifest = { fingerprint: await fingerprint(root, inputs), inputs: inputs.map((f) => relative(root, f)) }
  await writeWhole(manifestFile, JSON.stringify(next))
  return file
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { parseArgs } = await import('node:util')
  const { values } = parseArgs({ options: { out: { type: 'string' } } })
  const out = values.out ?? join(REPO_ROOT, DIST_BUNDLE)
  const started = performance.now()
  const { code, inputs } = await buildBundle()
  await writeWhole(out, code)
  process.stdout.write(`${relative(process.cwd(), out)}: ${(code.length / 1e6).toFixed(2)} MB from ${inputs.length} files in ${Math.round(performance.now() - started)} ms\n`)
}
