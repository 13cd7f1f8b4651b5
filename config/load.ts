import { readFile } from 'node:fs/promises'
import { CORE_SCHEMA, YAMLException, loadAll, mergeTag } from 'js-yaml'
import type { Config, ConfigWarning, PresetName } from './types.ts'
import { ConfigFileError, ConfigSyntaxError, kindOf, showValue } from './errors.ts'
import { deepMerge, isMap, type YamlMap } from './merge.ts'
import { maskTemplates } from './template.ts'
import { resolveConfig } from './validate.ts'

/** The result of loading one or more cloud-configs. */
export interface LoadedConfig {
  /** The validated configuration with every default applied. */
  config: Config
  /** Non-fatal findings (unknown keys, ignored Kairos keys, questionable combinations). */
  warnings: ConfigWarning[]
  /** The names of the sources read, in merge order. */
  sources: string[]
}

/** Overrides applied on top of what the files say. */
export interface ConfigOverrides {
  /** Timing preset; wins over `p2p.preset`. @default the file's choice, else 'lan' */
  preset?: PresetName
}

// YAML 1.2 core schema plus `<<` merge keys (yaml.v3, which Kairos uses, supports both).
const SCHEMA = CORE_SCHEMA.withTags(mergeTag)
/** Alias expansions allowed per document: plenty for a config, too few for an alias bomb. */
const MAX_ALIASES = 1000

/** Parses one cloud-config text into a mapping (an empty or comment-only text is `{}`). */
export function parseDocument (name: string, text: string): YamlMap {
  const masked = maskTemplates(text.replace(/^\uFEFF/, ''))
  let docs: unknown[]
  try {
    docs = loadAll(masked.text, { schema: SCHEMA, filename: name, maxAliases: MAX_ALIASES })
  } catch (err) {
    if (err instanceof YAMLException) {
      const line = err.mark === undefined ? undefined : err.mark.line + 1
      const where = line === undefined ? name : `${name}:${line}`
      throw new ConfigSyntaxError({
        path: where,
        value: undefined,
        expected: 'valid YAML',
        message: `${where}: YAML syntax error: ${err.reason}`,
        source: name
      }, { cause: err })
    }
    throw err
  }
  if (docs.length > 1) {
    throw new ConfigSyntaxError({
      path: name, value: docs.length, expected: 'one YAML document', message: `${name}: found ${docs.length} YAML documents (separated by ---), expected one`, source: name
    })
  }
  const doc = masked.restore(docs[0] ?? null)
  if (doc === null) return {}
  if (!isMap(doc)) {
    throw new ConfigSyntaxError({
      path: name,
      value: doc,
      expected: 'a mapping of cloud-config keys',
      message: `${name}: got ${showValue(doc)} (${kindOf(doc)}), expected a mapping of cloud-config keys`,
      source: name
    })
  }
  return doc
}

/**
 * Parses cloud-config texts, deep-merges them in order (later wins, mappings merged,
 * lists replaced), validates every kairos-p2p key and applies the Kairos defaults,
 * our defaults and the timing preset. Pure: no I/O.
 *
 * Throws `ConfigSyntaxError` for text that is not YAML (naming the source and line)
 * and `ConfigError` listing every invalid key of the merged result.
 */
export function parseConfig (texts: Array<{ name: string, text: string }>, overrides: ConfigOverrides = {}): LoadedConfig {
  const origins = new Map<string, string>()
  let merged: YamlMap = {}
  for (const { name, text } of texts) merged = deepMerge(merged, parseDocument(name, text), name, origins)
  const { config, warnings } = resolveConfig(merged, overrides.preset === undefined ? { origins } : { origins, preset: overrides.preset })
  return { config, warnings, sources: texts.map((t) => t.name) }
}

/**
 * Reads one config file as UTF-8. A file that is missing or unreadable is a
 * `ConfigFileError` naming its path.
 */
export async function readConfigFile (file: string): Promise<{ name: string, text: string }> {
  try {
    return { name: file, text: await readFile(file, 'utf8') }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    const reason = code === 'ENOENT'
      ? 'no such file'
      : code === 'EACCES'
        ? 'permission denied'
        : code === 'EISDIR' ? 'is a directory, expected a file' : (err instanceof Error ? err.message : String(err))
    throw new ConfigFileError(file, reason, { cause: err })
  }
}

/**
 * Reads the files in order and hands them to {@link parseConfig}. A file that is
 * missing or unreadable is a `ConfigFileError` naming its path.
 */
export async function loadConfig (files: string[], overrides: ConfigOverrides = {}): Promise<LoadedConfig> {
  const texts: Array<{ name: string, text: string }> = []
  for (const file of files) texts.push(await readConfigFile(file))
  return parseConfig(texts, overrides)
}
