import { InputError, KairosError } from '../util/errors.ts'

/** A lab option or argument is out of range or malformed (exit 2). */
export class LabInputError extends InputError {
  constructor (message: string) {
    super(message)
    this.name = 'LabInputError'
  }
}

/** An external program (`ip`, `tc`, `nft`, `nsenter`…) failed; the message names the command. */
export class LabCommandError extends KairosError {
  readonly command: string[]

  constructor (command: string[], detail: string, cause?: unknown) {
    super(`lab command failed: ${command.join(' ')}: ${detail}`, { cause })
    this.name = 'LabCommandError'
    this.command = command
  }
}

/** No lab with this id (or no lab at all) is recorded under the lab root. */
export class LabNotFoundError extends KairosError {
  constructor (message: string) {
    super(message, { exitCode: 1 })
    this.name = 'LabNotFoundError'
  }
}

/** A lab with this id already exists (its namespaces or its lab.json). */
export class LabExistsError extends KairosError {
  constructor (id: string, where: string) {
    super(`lab '${id}' already exists (${where}); run 'kairos-p2p lab down --id ${id}' first or pick another --id`)
    this.name = 'LabExistsError'
  }
}

/** A node name that is not part of the lab. */
export class UnknownNodeError extends InputError {
  constructor (node: string, known: string[]) {
    super(`unknown lab node '${node}'; expected one of: ${known.join(', ')}`)
    this.name = 'UnknownNodeError'
  }
}

/** The kernel or the system lacks something the requested lab needs (e.g. sch_netem for --delay). */
export class LabCapabilityError extends KairosError {
  constructor (message: string) {
    super(message)
    this.name = 'LabCapabilityError'
  }
}

/** `waitFor` ran out of time; the message carries the last observed state. */
export class LabTimeoutError extends KairosError {
  constructor (what: string, timeoutMs: number, last: string) {
    super(`lab: ${what} not reached within ${timeoutMs} ms; last state: ${last}`)
    this.name = 'LabTimeoutError'
  }
}

/** An agent process ended while the lab waited for it; the message carries the end of its log. */
export class LabAgentExitedError extends KairosError {
  constructor (node: string, logPath: string, tail: string) {
    super(`the agent on ${node} exited; last lines of ${logPath}:\n${tail}`)
    this.name = 'LabAgentExitedError'
  }
}
