import { readFile } from 'node:fs/promises'
import { CORE_SCHEMA, EVENT_ID, YAMLException, constructFromEvents, mergeTag, parseEvents, type Event } from 'js-yaml'
import type { Config, ConfigWarning, PresetName } from './types.ts'
import { ConfigFileError, ConfigSyntaxError, ConfigTooLargeError, kindOf, showValue } from './errors.ts'
import { deepMerge, isMap, type YamlMap } from './merge.ts'
import { REDACTED, collectSecrets, redactText } from './redact.ts'
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
/** Alias uses allowed per document. @default 1000 */
const MAX_ALIASES = 1000
/**
 * YAML nodes (scalars, lists, mappings, keys included) one cloud-config may hold, each
 * alias counted as the whole node it stands for. A large real config (users, files,
 * stages) has a few thousand; an alias bomb (40 aliases, 447 bytes) expands to
 * millions, so it is refused before anything walks it. @default 100000
 */
export const MAX_YAML_NODES = 100_000
/**
 * Nesting depth of one cloud-config, aliases expanded (an alias inside a deep list
 * nests the whole anchored node there). @default 100
 */
export const MAX_YAML_DEPTH = 100

/**
 * Counts the nodes and the nesting depth of a YAML event stream as if every alias were
 * written out in full, in one pass over the events: each anchored node's expanded size
 * and height is remembered and added where an alias names it. Throws
 * `ConfigTooLargeError` as soon as a budget is exceeded, so the work is bounded by the
 * text's length, whatever the aliases multiply.
 */
function checkBudget (name: string, text: string, events: Event[]): void {
  // One frame per open document or collection; a document frame does not nest.
  interface Frame { size: number, height: number, anchor: string | undefined, collection: boolean }
  const anchors = new Map<string, { size: number, height: number }>()
  const stack: Frame[] = []
  let total = 0
  let depth = 0
  const anchorOf = (e: { anchorStart: number, anchorEnd: number }): string | undefined =>
    e.anchorStart < 0 ? undefined : text.slice(e.anchorStart, e.anchorEnd)
  /** Adds a node of `size` nodes and `height` levels to the open collection. */
  const add = (size: number, height: number, alias: string | undefined): void => {
    total += size
    const what = alias === undefined ? '' : `; *${alias.slice(0, 40)} repeats ${size} nodes`
    if (total > MAX_YAML_NODES) throw new ConfigTooLargeError(name, `more than ${MAX_YAML_NODES} YAML nodes, aliases counted as the nodes they repeat${what}`, MAX_YAML_NODES)
    if (depth + height > MAX_YAML_DEPTH) throw new ConfigTooLargeError(name, `YAML nested more than ${MAX_YAML_DEPTH} levels deep, aliases expanded${what}`, MAX_YAML_DEPTH)
    const parent = stack[stack.length - 1]
    if (parent !== undefined) {
      parent.size += size
      if (parent.collection) parent.height = Math.max(parent.height, height + 1)
    }
  }
  for (const e of events) {
    switch (e.type) {
      case EVENT_ID.DOCUMENT:
        stack.push({ size: 0, height: 0, anchor: undefined, collection: false })
        break
      case EVENT_ID.SEQUENCE:
      case EVENT_ID.MAPPING:
        total += 1
        depth += 1
        if (total > MAX_YAML_NODES || depth > MAX_YAML_DEPTH) add(0, 0, undefined)
        stack.push({ size: 1, height: 1, anchor: anchorOf(e), collection: true })
        break
      case EVENT_ID.SCALAR: {
        add(1, 0, undefined)
        const anchor = anchorOf(e)
        if (anchor !== undefined) anchors.set(anchor, { size: 1, height: 0 })
        break
      }
      case EVENT_ID.ALIAS: {
        const anchor = anchorOf(e) ?? ''
        // An alias to an unknown anchor is the constructor's error to report; count it as one.
        const node = anchors.get(anchor) ?? { size: 1, height: 0 }
        add(node.size, node.height, anchor)
        break
      }
      case EVENT_ID.POP: {
        const frame = stack.pop()
        if (frame === undefined || !frame.collection) break
        depth -= 1
        if (frame.anchor !== undefined) anchors.set(frame.anchor, { size: frame.size, height: frame.height })
        // Its nodes are in `total` already; the enclosing collection takes its size and height.
        const parent = stack[stack.length - 1]
        if (parent !== undefined) {
          parent.size += frame.size
          if (parent.collection) parent.height = Math.max(parent.height, frame.height + 1)
        }
        break
      }
      default:
        break
    }
  }
}

/** Parses one cloud-config text into a mapping (an empty or comment-only text is `{}`). */
export function parseDocument (name: string, text: string): YamlMap {
  const masked = maskTemplates(text.replace(/^\uFEFF/, ''))
  let docs: unknown[]
  try {
    const events = parseEvents(masked.text, { filename: name, maxDepth: MAX_YAML_DEPTH })
    checkBudget(name, masked.text, events)
    docs = constructFromEvents(events, { source: masked.text, schema: SCHEMA, filename: name, maxAliases: MAX_ALIASES })
  } catch (err) {
    if (err instanceof ConfigSyntaxError) throw err
    const yaml = err instanceof YAMLException
    const line = yaml && err.mark !== undefined ? err.mark.line + 1 : undefined
    const where = line === undefined ? name : `${name}:${line}`
    // The reason may quote the text; the text may hold the token.
    const reason = redactText(yaml ? err.reason : `the YAML parser failed (${err instanceof Error ? err.message : String(err)})`)
    throw new ConfigSyntaxError({
      path: where,
      value: undefined,
      expected: 'valid YAML',
      message: `${where}: YAML syntax error: ${reason}`,
      source: name
    }, { cause: err })
  }
  if (docs.length > 1) {
    throw new ConfigSyntaxError({
      path: name, value: docs.length, expected: 'one YAML document', message: `${name}: found ${docs.length} YAML documents (separated by ---), expected one`, source: name
    })
  }
  const doc = masked.restore(docs[0] ?? null)
  if (doc === null) return {}
  if (!isMap(doc)) {
    const shown = showValue(doc, collectSecrets(doc))
    throw new ConfigSyntaxError({
      path: name,
      value: shown.includes(REDACTED) ? REDACTED : doc,
      expected: 'a mapping of cloud-config keys',
      message: `${name}: got ${shown} (${kindOf(doc)}), expected a mapping of cloud-config keys`,
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
