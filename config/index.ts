/** The config loader: Kairos cloud-config in, validated {@link Config} out. */
export type { Config, ConfigWarning, InstallerConfig, K3sSection, P2PConfig, PresetName, StaticRole, Timing, VpnConfig } from './types.ts'
export { parseConfig, loadConfig, readConfigFile, parseDocument, MAX_YAML_NODES, MAX_YAML_DEPTH, type LoadedConfig, type ConfigOverrides } from './load.ts'
export { resolveConfig, type ResolveOptions } from './validate.ts'
export { ConfigError, ConfigFileError, ConfigSyntaxError, ConfigTooLargeError, formatWarning, type ConfigIssue } from './errors.ts'
export { PRESETS, PRESET_NAMES, DEFAULT_PRESET, TIMING_FIELDS, timingKey, isPresetName } from './presets.ts'
export * from './defaults.ts'
export { redactConfig, redactText, collectSecrets, REDACTED } from './redact.ts'
export { maskTemplates } from './template.ts'
