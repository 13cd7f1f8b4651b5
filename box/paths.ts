// Where kairos-p2p lives on a box. Every path is on Kairos's persistent list
// (`/usr/local`, `/etc/systemd`, `/var/lib/kairos`), so nothing is lost at reboot, and
// each is an ordinary path on a Debian or Ubuntu box without Kairos.
import { join } from 'node:path'

/** What Kairos keeps across reboots (its immutable root and tmpfs overlays hold the rest). */
export const KAIROS_PERSISTENT_PATHS: readonly string[] = Object.freeze([
  '/usr/local', '/etc/systemd', '/etc/rancher', '/etc/sysconfig', '/var/lib/rancher', '/var/lib/kairos', '/var/lib/extensions', '/var/log'
])

/** Prefix the artefact is extracted into. */
export const INSTALL_PREFIX = '/usr/local'

/** The launcher every name runs (`kairos-p2p`, `agent-provider-kairos-p2p`). */
export const LAUNCHER_PATH = '/usr/local/bin/kairos-p2p'

/** The self-contained executable, relative to the install prefix. */
export const EXECUTABLE_SUBPATH = join('libexec', 'kairos-p2p', 'kairos-p2p')

/** The cloud-config the provider writes and the unit reads. */
export const BOX_CONFIG_PATH = '/usr/local/etc/kairos-p2p/cloud-config.yaml'

/** The systemd unit's name. */
export const SERVICE_NAME = 'kairos-p2p.service'

/** The unit file, relative to the install prefix (systemd reads /usr/local/lib/systemd/system). */
export const UNIT_SUBPATH = join('lib', 'systemd', 'system', SERVICE_NAME)

/** Kairos's own p2p provider; both acting on one token would race. */
export const KAIROS_PROVIDER_NAME = 'agent-provider-kairos'

/** Where kairos-agent looks for providers after `$PATH`, in order. */
export const KAIROS_PROVIDER_DIRS: readonly string[] = Object.freeze(['/system/providers', '/usr/local/system/providers'])
