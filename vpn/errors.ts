import { InputError, KairosError } from '../util/errors.ts'

/** `vpn.cidr` is not an IPv4 network with room for hosts (prefix /8 … /30). */
export class OverlayCidrError extends InputError {
  constructor (message: string) {
    super(message)
    this.name = 'OverlayCidrError'
  }
}

/** `vpn.interface` is not a valid Linux interface name (1–15 characters, no `/`, `:` or space). */
export class InterfaceNameError extends InputError {
  constructor (message: string) {
    super(message)
    this.name = 'InterfaceNameError'
  }
}

/** Every address of the overlay is claimed by another node. */
export class AddressPoolExhaustedError extends KairosError {
  constructor (message: string) {
    super(message)
    this.name = 'AddressPoolExhaustedError'
  }
}

/** A persisted file of the VPN (key, claim) exists but cannot be used. */
export class VpnStateFileError extends KairosError {
  /** Exit code 2 when the file's content is damaged (the controller sets it aside and rebuilds it), 1 for an I/O failure. */
  constructor (message: string, options: { cause?: unknown, exitCode?: number } = {}) {
    super(message, options)
    this.name = 'VpnStateFileError'
  }
}

/** An external program (`ip`, `wg`, `wireguard-go`) failed; the message names the command. */
export class WireGuardCommandError extends KairosError {
  /** The argv that failed (never contains key material). */
  readonly command: string[]

  constructor (command: string[], detail: string, options: { cause?: unknown } = {}) {
    super(`${command.join(' ')}: ${detail}`, options)
    this.name = 'WireGuardCommandError'
    this.command = command
  }
}

/** The WireGuard interface could not be brought up (no kernel support and no working wireguard-go). */
export class WireGuardInterfaceError extends KairosError {
  constructor (message: string, options: { cause?: unknown } = {}) {
    super(message, options)
    this.name = 'WireGuardInterfaceError'
  }
}
