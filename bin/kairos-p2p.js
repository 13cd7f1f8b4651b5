#!/usr/bin/env node
// Launcher: runs the bundled CLI (`npm run build`, dist/kairos-p2p.js) when installed as
// a package (Node does not strip types under node_modules), the TypeScript sources in a
// development checkout.
import { existsSync } from 'node:fs'
import * as nodeModule from 'node:module'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { dirname, join } from 'node:path'

const major = Number(process.versions.node.split('.')[0])
if (major < 22) {
  process.stderr.write(`kairos-p2p needs Node.js 22 or newer (this is ${process.version}); in a checkout, run it through 'npx kairos-p2p' or 'npm run' after 'npm ci', which bring Node 24.\n`)
  process.exit(1)
}
// Caches compiled (type-stripped) modules between runs: start-up drops to a third.
nodeModule.enableCompileCache?.()
const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const source = join(root, 'cli', 'main.ts')
const compiled = join(root, 'dist', 'kairos-p2p.js')
const inDependencies = root.split(/[\\/]/).includes('node_modules')
const entry = !inDependencies && existsSync(source) ? source : compiled
await import(pathToFileURL(entry).href)
