// The part of postject's API the artefact build uses (the package ships no types).
declare module 'postject' {
  /** Injects `data` into the executable `file` as resource `resource`, flipping the sentinel fuse. */
  export function inject (file: string, resource: string, data: Buffer, options: { sentinelFuse: string, overwrite?: boolean }): Promise<void>
}
