import type { Config } from './types.ts'

/** Shown in place of a secret. */
export const REDACTED = '<redacted>'

const SECRET_ENV = /TOKEN|SECRET|PASSWORD|PASSWD|KEY|CREDENTIAL/i
const SECRET_ARG = /^--(token|agent-token|datastore-endpoint)[=]/
/** A mapping key whose string value is a secret wherever it appears (`network_token`, `K3S_TOKEN`, `--token: …`). */
const SECRET_KEY = /token|secret|password|passwd|credential|private|key$/i
/** The k3s flags whose value is a secret, in `--flag=value` or `--flag value` form. */
const SECRET_FLAG = /(--(?:token|agent-token|datastore-endpoint)[= ])([^\s"',\]}]+)/gi
/** The same in `--flag=value` form only: recognised in any text. */
const SECRET_FLAG_EQ = /(--(?:token|agent-token|datastore-endpoint)=)([^\s"',\]}]+)/gi
/**
 * Token shapes, recognised in any text whatever key they sit under: a kairos-p2p token
 * (`kp1` and bech32 characters, any case), a k3s token (`K10<hash>::…`) and a long
 * base64 run such as a Kairos/edgevpn token.
 */
const SECRET_SHAPES = [
  /kp1[02-9ac-hj-np-z]{8,}/gi,
  /K10[0-9a-f]{16,}::[^\s"',\]}]*/g,
  /[A-Za-z0-9+/]{48,}={0,2}/g
]
/** Shorter strings are not treated as secrets (they would blank out ordinary words). */
const MIN_SECRET_LENGTH = 8

/**
 * A copy of the config that is safe to print: the network token, secret-looking k3s
 * environment values, secret k3s arguments and token-shaped installer arguments are
 * replaced by `<redacted>`.
 */
export function redactConfig (config: Config): Config {
  const section = (s: Config['k3s']): Config['k3s'] => ({
    enabled: s.enabled,
    args: s.args.map((a) => SECRET_ARG.test(a) ? `${a.split('=')[0] ?? ''}=${REDACTED}` : a),
    env: Object.fromEntries(Object.entries(s.env).map(([k, v]) => [k, SECRET_ENV.test(k) ? REDACTED : v]))
  })
  const installer = config.p2p.installer.kind === 'exec'
    ? { ...config.p2p.installer, command: config.p2p.installer.command.map((a) => redactText(a)) }
    : config.p2p.installer
  return {
    p2p: { ...config.p2p, networkToken: config.p2p.networkToken === '' ? '' : REDACTED, installer },
    k3s: section(config.k3s),
    k3sAgent: section(config.k3sAgent)
  }
}

/**
 * The secret strings of a parsed cloud-config, wherever they sit: the value of every
 * key that names a secret (`network_token`, `K3S_TOKEN`, `password`, …) and the value
 * part of every `--token=…` style argument. Bounded: visits at most `limit` nodes
 * (the loader's node budget has already capped the document).
 */
export function collectSecrets (doc: unknown, limit = 200_000): Set<string> {
  const secrets = new Set<string>()
  const stack: Array<{ value: unknown, secretKey: boolean }> = [{ value: doc, secretKey: false }]
  let visited = 0
  while (stack.length > 0 && visited++ < limit) {
    const { value, secretKey } = stack.pop() as { value: unknown, secretKey: boolean }
    if (typeof value === 'string') {
      if (secretKey && value.length >= MIN_SECRET_LENGTH) secrets.add(value)
      for (const m of value.matchAll(SECRET_FLAG)) if ((m[2] ?? '').length >= MIN_SECRET_LENGTH) secrets.add(m[2] ?? '')
      const eq = SECRET_ARG.exec(value)
      if (eq !== null && value.length - eq[0].length >= MIN_SECRET_LENGTH) secrets.add(value.slice(eq[0].length))
    } else if (Array.isArray(value)) {
      for (const item of value) stack.push({ value: item, secretKey })
    } else if (value !== null && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) stack.push({ value: v, secretKey: SECRET_KEY.test(k) || SECRET_ARG.test(`${k}=`) })
    }
  }
  return secrets
}

/**
 * `text` with every secret blanked out: each of `secrets` (see {@link collectSecrets})
 * and anything shaped like a token (see `SECRET_SHAPES`). Every message that echoes a
 * value from a config or a command line goes through this before it is cut to length,
 * so no prefix of a secret survives either.
 */
export function redactText (text: string, secrets: ReadonlySet<string> = new Set()): string {
  let out = text
  // Longest first, so a secret that contains another is blanked whole.
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) {
    if (out.includes(s)) out = out.replaceAll(s, REDACTED)
    const quoted = JSON.stringify(s).slice(1, -1)
    if (quoted !== s && out.includes(quoted)) out = out.replaceAll(quoted, REDACTED)
  }
  out = out.replace(SECRET_FLAG_EQ, (_m, flag: string) => `${flag}${REDACTED}`)
  for (const shape of SECRET_SHAPES) out = out.replace(shape, REDACTED)
  return out
}
