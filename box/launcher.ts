// The launcher at bin/kairos-p2p of the artefact: a POSIX shell script that checks the C
// library before the self-contained executable is loaded (the dynamic loader's own
// complaint about an old glibc is a list of symbol versions, one line each), then runs
// it with the name it was called by, which the executable cannot see otherwise, and with
// the agent's malloc settings (glibc reads them at process start only).
import { CALLED_AS_ENV, PROVIDER_NAME } from './called-as.ts'
import { EXECUTABLE_SUBPATH } from './paths.ts'
import { AGENT_MALLOC_ENV } from './runtime.ts'

/** What the launcher checks and runs. */
export interface LauncherInit {
  /** Oldest glibc the bundled Node runs on, `major.minor` (from its `GLIBC_` symbol versions). */
  glibcFloor: string
}

/** Parses `major.minor`; throws on anything else (the value goes into a shell script). */
export function parseGlibcVersion (v: string): [number, number] {
  const m = /^(\d{1,3})\.(\d{1,3})$/.exec(v)
  if (m === null) throw new Error(`glibc version '${v}' is not major.minor`)
  return [Number(m[1]), Number(m[2])]
}

/** The highest `GLIBC_x.y` symbol version in `objdump -T` output: the oldest glibc the binary loads on. */
export function glibcFloorOf (objdumpOutput: string): string {
  let best: [number, number] | undefined
  for (const m of objdumpOutput.matchAll(/\bGLIBC_(\d+)\.(\d+)(?:\.\d+)?\b/g)) {
    const v: [number, number] = [Number(m[1]), Number(m[2])]
    if (best === undefined || v[0] > best[0] || (v[0] === best[0] && v[1] > best[1])) best = v
  }
  if (best === undefined) throw new Error('no GLIBC_ symbol version in the objdump output; is the binary dynamically linked against glibc?')
  return `${best[0]}.${best[1]}`
}

/**
 * The launcher script. On a too old or missing glibc it prints one line and exits 1;
 * called as the provider it prints that line as the provider's JSON answer instead,
 * so kairos-agent logs the reason.
 */
export function renderLauncher (init: LauncherInit): string {
  const [major, minor] = parseGlibcVersion(init.glibcFloor)
  return `#!/bin/sh
# kairos-p2p launcher: checks the C library, then runs the self-contained executable
# under the name it was called by (kairos-p2p or ${PROVIDER_NAME}).
name=\${0##*/}
fail() {
  if [ "$name" = "${PROVIDER_NAME}" ]; then
    printf '{"state":"","data":"","error":"%s","log":""}\\n' "$1"
    exit 0
  fi
  printf '%s\\n' "$1" >&2
  exit 1
}
have=$(getconf GNU_LIBC_VERSION 2>/dev/null) || have=
have=\${have#glibc }
case $have in
  [0-9]*.[0-9]*) ;;
  *) fail "kairos-p2p: needs the GNU C library (glibc) ${init.glibcFloor} or later; this system reports none (musl-based systems such as Alpine are not supported)" ;;
esac
major=\${have%%.*}
minor=\${have#*.}
minor=\${minor%%[!0-9]*}
if [ "$major" -lt ${major} ] || { [ "$major" -eq ${major} ] && [ "$minor" -lt ${minor} ]; }; then
  fail "kairos-p2p: needs glibc ${init.glibcFloor} or later; this system has glibc $have"
fi
self=$(readlink -f "$0" 2>/dev/null) || self=$0
${Object.entries(AGENT_MALLOC_ENV).map(([k, v]) => `export ${k}="\${${k}:-${v}}"\n`).join('')}${CALLED_AS_ENV}=$name exec "\${self%/*}/../${EXECUTABLE_SUBPATH}" "$@"
`
}
