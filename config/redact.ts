import type { Config } from './types.ts'

/** Shown in place of a secret. */
export const REDACTED = '<redacted>'

const SECRET_ENV = /TOKEN|SECRET|PASSWORD|PASSWD|KEY|CREDENTIAL/i
const SECRET_ARG = /^--(token|agent-token|datastore-endpoint)[=]/

/**
 * A copy of the config that is safe to print: the network token, secret-looking k3s
 * environment values and secret k3s arguments are replaced by `<redacted>`.
 */
export function redactConfig (config: Config): Config {
  const section = (s: Config['k3s']): Config['k3s'] => ({
    enabled: s.enabled,
    args: s.args.map((a) => SECRET_ARG.test(a) ? `${a.split('=')[0] ?? ''}=${REDACTED}` : a),
    env: Object.fromEntries(Object.entries(s.env).map(([k, v]) => [k, SECRET_ENV.test(k) ? REDACTED : v]))
  })
  return {
    p2p: { ...config.p2p, networkToken: config.p2p.networkToken === '' ? '' : REDACTED },
    k3s: section(config.k3s),
    k3sAgent: section(config.k3sAgent)
  }
}
