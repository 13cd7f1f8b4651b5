// The systemd unit that runs the agent on a box, Kairos or plain Debian/Ubuntu.
import { BOX_CONFIG_PATH, LAUNCHER_PATH } from './paths.ts'

/** What the unit points at; the defaults are the artefact's paths under /usr/local. */
export interface UnitInit {
  /** @default LAUNCHER_PATH */
  launcher?: string
  /** @default BOX_CONFIG_PATH */
  config?: string
}

/** The unit's `ExecStart` as an argument array (no argument holds a space). */
export function unitCommand (init: UnitInit = {}): string[] {
  return [init.launcher ?? LAUNCHER_PATH, 'agent', '--config', init.config ?? BOX_CONFIG_PATH, '--log-format', 'json']
}

/**
 * `kairos-p2p.service`. `KillMode=process`: a stop or restart of the agent ends the
 * agent alone, so wireguard-go and k3s (started through systemd, but wireguard-go as
 * the agent's child) keep the overlay and the cluster up meanwhile. `Restart=always`
 * with a short pause: the agent keeps its state on disk and resumes. Logs go to the
 * journal as JSON lines (`journalctl -u kairos-p2p`). The state dir is the config's
 * `p2p.state_dir`, by default /var/lib/kairos/p2p (persistent on Kairos).
 */
export function renderUnit (init: UnitInit = {}): string {
  const config = init.config ?? BOX_CONFIG_PATH
  return `[Unit]
Description=kairos-p2p agent: p2p discovery, election and WireGuard overlay for k3s
Wants=network-online.target
After=network-online.target
ConditionPathExists=${config}

[Service]
Type=simple
ExecStart=${unitCommand(init).join(' ')}
Restart=always
RestartSec=5s
KillMode=process
TimeoutStopSec=30s
StandardOutput=journal
StandardError=journal
SyslogIdentifier=kairos-p2p
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
`
}
