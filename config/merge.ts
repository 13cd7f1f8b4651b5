/** A parsed YAML mapping. */
export type YamlMap = Record<string, unknown>

/** True for a YAML mapping (a plain object, not a list or null). */
export function isMap (value: unknown): value is YamlMap {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/**
 * Deep-merges `overlay` into a copy of `base`, the way several Kairos config sources
 * combine: mappings merge key by key, anything else (scalars, lists) replaces the
 * earlier value, and `null` (a key written with no value, e.g. `p2p:` whose children
 * are all commented out) leaves the earlier value in place.
 *
 * `origins` (optional) records, for each leaf path written by `overlay`, the `source`
 * that wrote it, so a later error can name the file a bad value came from.
 *
 * Linear in its input: each mapping of `overlay` copies the one mapping of `base` at
 * the same path, and the origins of a replaced subtree are forgotten by walking that
 * subtree, which happens once for each node ever written.
 */
export function deepMerge (base: YamlMap, overlay: YamlMap, source?: string, origins?: Map<string, string>, prefix = ''): YamlMap {
  const out: YamlMap = {}
  for (const [key, value] of Object.entries(base)) setKey(out, key, value)
  for (const [key, value] of Object.entries(overlay)) {
    const path = prefix === '' ? key : `${prefix}.${key}`
    if (value === null || value === undefined) {
      if (!Object.hasOwn(out, key)) setKey(out, key, null)
      continue
    }
    const earlier = Object.hasOwn(out, key) ? out[key] : undefined
    if (isMap(value)) {
      if (!isMap(earlier) && origins !== undefined) forget(origins, path, earlier)
      setKey(out, key, deepMerge(isMap(earlier) ? earlier : {}, value, source, origins, path))
    } else {
      setKey(out, key, value)
      if (origins !== undefined && source !== undefined) {
        forget(origins, path, earlier)
        origins.set(path, source)
      }
    }
  }
  return out
}

/** Drops the origins of `path` and of every leaf of `earlier`, the value written there before. */
function forget (origins: Map<string, string>, path: string, earlier: unknown): void {
  origins.delete(path)
  if (!isMap(earlier)) return
  for (const [key, value] of Object.entries(earlier)) forget(origins, `${path}.${key}`, value)
}

// A plain assignment of `__proto__` would replace the object's prototype.
function setKey (map: YamlMap, key: string, value: unknown): void {
  Object.defineProperty(map, key, { value, enumerable: true, writable: true, configurable: true })
}
