import { InputError, KairosError } from '../../util/errors.ts'

/** The store was created with an unusable option (key length, identity, limits). */
export class StateStoreInitError extends InputError {
  constructor (message: string) {
    super(message)
    this.name = 'StateStoreInitError'
  }
}

/** `put` got a key that is empty, too long or has control characters. */
export class StateKeyError extends InputError {
  constructor (message: string) {
    super(message)
    this.name = 'StateKeyError'
  }
}

/** `put` got a value that is not plain JSON. */
export class StateValueError extends InputError {
  constructor (message: string) {
    super(message)
    this.name = 'StateValueError'
  }
}

/** `put` would produce an entry above the entry size bound. */
export class StateEntryTooLargeError extends InputError {
  constructor (message: string) {
    super(message)
    this.name = 'StateEntryTooLargeError'
  }
}

/** `put` of a new key while this node already owns the maximum number of entries. */
export class StateOwnerQuotaError extends KairosError {
  constructor (message: string) {
    super(message)
    this.name = 'StateOwnerQuotaError'
  }
}

/** `put` would push the replica past its total byte bound. */
export class StateFullError extends KairosError {
  constructor (message: string) {
    super(message)
    this.name = 'StateFullError'
  }
}

/** Writing the state file failed; the entry is held in memory and retried with the next write. */
export class StatePersistError extends KairosError {
  constructor (message: string, options: { cause?: unknown } = {}) {
    super(message, options)
    this.name = 'StatePersistError'
  }
}

/** `put` after `close()`. */
export class StateClosedError extends KairosError {
  constructor (message: string) {
    super(message)
    this.name = 'StateClosedError'
  }
}

/** `put` would pass the largest entry version (`MAX_VERSION`). */
export class StateVersionError extends KairosError {
  constructor (message: string) {
    super(message)
    this.name = 'StateVersionError'
  }
}
