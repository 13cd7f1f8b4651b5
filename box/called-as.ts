// Which program this process is: the agent's command or the Kairos provider. One
// executable serves both, told apart by the name it was called by.
import { basename } from 'node:path'

/** The name kairos-agent looks for on PATH and in its provider dirs. */
export const PROVIDER_NAME = 'agent-provider-kairos-p2p'

/**
 * Set by the artefact's launcher (`box/launcher.ts`) to the name it was called by, since
 * the self-contained executable only sees its own path. Removed at start, so nothing the
 * agent runs inherits it.
 */
export const CALLED_AS_ENV = 'KAIROS_P2P_CALLED_AS'

/** The name this process was called by: the launcher's word, else argv[0]'s or the script's base name. */
export function calledAs (env: NodeJS.ProcessEnv, argv0: string, script: string | undefined): string {
  const told = env[CALLED_AS_ENV]
  if (told !== undefined && told !== '') return told
  const zero = basename(argv0)
  if (zero === PROVIDER_NAME) return zero
  return script === undefined ? zero : basename(script)
}
