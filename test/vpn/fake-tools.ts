import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * Tiny stand-ins for `ip`, `wg`, `wireguard-go` and an `nsenter`-like prefix,
 * written as shell scripts into a temp dir. Each appends its argv (tab-separated) to
 * `argv.log` and keeps the interface's state in files, so the driver can be run
 * end to end without root or a kernel.
 */
export interface FakeTools {
  dir: string
  ip: string
  wg: string
  wireguardGo: string
  /** A prefix program that logs and then runs the rest of its argv. */
  prefix: string
  /** Recorded commands, oldest first, each as its argv (argv[0] = program base name). */
  commands(): Promise<string[][]>
  /** The raw log, for secret scans. */
  rawLog(): Promise<string>
  /** Mode bits (octal text) of every private-key file `wg set` was given, and its path. */
  keyFiles(): Promise<Array<{ mode: string, path: string }>>
  /** Environment lines recorded by the fake wireguard-go. */
  goEnv(): Promise<string[]>
  /** Records a handshake (unix seconds) for a configured peer, as the kernel would. */
  handshake(name: string, publicKey: string, unixSeconds: number): Promise<void>
  /** Sets the peer lines `wg show <if> dump` prints (`wg set ... peer` keeps them up to date). */
  setDumpPeers(name: string, lines: string[]): Promise<void>
  cleanup(): Promise<void>
}

const LOG = `{ printf '%s' "$(basename "$0")"; for a in "$@"; do printf '\\t%s' "$a"; done; printf '\\n'; } >> "$D/argv.log"`

const IP = `#!/bin/sh
D=__DIR__
${LOG}
case "$*" in
  "-d -j -4 address show dev "*)
    n=$7
    if [ -f "$D/link-$n" ]; then
      mtu=$(cat "$D/mtu-$n" 2>/dev/null || echo 1420)
      flags='"POINTOPOINT","NOARP"'
      [ -f "$D/up-$n" ] && flags="$flags,\\"UP\\""
      addrs=''
      if [ -f "$D/addr-$n" ]; then a=$(cat "$D/addr-$n"); addrs="{\\"family\\":\\"inet\\",\\"local\\":\\"\${a%/*}\\",\\"prefixlen\\":\${a#*/}}"; fi
      echo "[{\\"ifname\\":\\"$n\\",\\"mtu\\":$mtu,\\"flags\\":[$flags],\\"linkinfo\\":{\\"info_kind\\":\\"tun\\"},\\"addr_info\\":[$addrs]}]"
    else
      echo "Device \\"$n\\" does not exist." >&2; exit 1
    fi ;;
  "link add dev "*" type wireguard") echo "Error: Unknown device type." >&2; exit 2 ;;
  "link set dev "*) echo "$6" > "$D/mtu-$4"; touch "$D/up-$4" ;;
  "address add "*) echo "$3" > "$D/addr-$5" ;;
  "address del "*) rm -f "$D/addr-$5" ;;
  "link del dev "*)
    n=$4
    [ -f "$D/link-$n" ] || { echo "Cannot find device \\"$n\\"" >&2; exit 1; }
    rm -f "$D/link-$n" "$D/addr-$n" "$D/mtu-$n" "$D/up-$n" "$D/pub-$n" "$D/port-$n" "$D/peers-$n"
    [ -f "$D/pid-$n" ] && kill "$(cat "$D/pid-$n")" ;;
  *) echo "fake ip: unexpected: $*" >&2; exit 99 ;;
esac
`

const WG = `#!/bin/sh
D=__DIR__
${LOG}
case "$1 $3" in
  "show dump")
    n=$2
    [ -f "$D/link-$n" ] || { echo "Unable to access interface: No such device" >&2; exit 1; }
    printf '%s\\t%s\\t%s\\toff\\n' "(private)" "$(cat "$D/pub-$n" 2>/dev/null || echo '(none)')" "$(cat "$D/port-$n" 2>/dev/null || echo 0)"
    [ -f "$D/peers-$n" ] && cat "$D/peers-$n"
    exit 0 ;;
  "set listen-port")
    n=$2
    echo "$4" > "$D/port-$n"
    printf '%s\\t%s\\n' "$(stat -c %a "$6")" "$6" >> "$D/keyfiles.log"
    /usr/bin/wg pubkey < "$6" > "$D/pub-$n" || exit 1 ;;
  "set peer")
    n=$2; f="$D/peers-$n"
    [ -f "$D/link-$n" ] || exit 1
    touch "$f"; shift 2
    while [ $# -gt 0 ]; do
      [ "$1" = peer ] || { echo "fake wg: unexpected: $1" >&2; exit 99; }
      k=$2; shift 2
      old=$(awk -F'\t' -v k="$k" '$1 == k' "$f")
      awk -F'\t' -v k="$k" '$1 != k' "$f" > "$f.new"; mv "$f.new" "$f"
      [ "$1" = remove ] && { shift; continue; }
      ep=$(printf '%s' "$old" | cut -f3); ips=$(printf '%s' "$old" | cut -f4); hs=$(printf '%s' "$old" | cut -f5)
      rx=$(printf '%s' "$old" | cut -f6); tx=$(printf '%s' "$old" | cut -f7); ka=$(printf '%s' "$old" | cut -f8)
      while [ $# -gt 0 ] && [ "$1" != peer ]; do
        case "$1" in
          endpoint) ep=$2 ;;
          persistent-keepalive) ka=$2 ;;
          allowed-ips) ips=$2 ;;
          *) echo "fake wg: unexpected: $1" >&2; exit 99 ;;
        esac
        shift 2
      done
      printf '%s\t(none)\t%s\t%s\t%s\t%s\t%s\t%s\n' "$k" "\${ep:-(none)}" "\${ips:-(none)}" "\${hs:-0}" "\${rx:-0}" "\${tx:-0}" "\${ka:-off}" >> "$f"
    done ;;
  *) echo "fake wg: unexpected: $*" >&2; exit 99 ;;
esac
`

const WIREGUARD_GO = `#!/bin/sh
D=__DIR__
${LOG}
echo "WG_PROCESS_FOREGROUND=$WG_PROCESS_FOREGROUND" >> "$D/env.log"
[ -f "$D/go-fails" ] && { echo "fake wireguard-go: refusing" >&2; exit 1; }
n=$1
echo $$ > "$D/pid-$n"
rm -f "$D/peers-$n"
touch "$D/link-$n"
trap 'rm -f "$D/link-$n" "$D/pid-$n" "$D/peers-$n"; kill $child 2>/dev/null; exit 0' TERM INT
sleep 300 & child=$!
wait $child
`

const PREFIX = `#!/bin/sh
D=__DIR__
${LOG}
while [ "\${1#--}" != "$1" ]; do shift; done
exec "$@"
`

/** Writes the fake programs into a fresh temp dir. */
export async function createFakeTools (): Promise<FakeTools> {
  const dir = await mkdtemp(join(tmpdir(), 'kairos-fake-wg-'))
  const write = async (name: string, body: string): Promise<string> => {
    const file = join(dir, name)
    await writeFile(file, body.replaceAll('__DIR__', `'${dir}'`))
    await chmod(file, 0o755)
    return file
  }
  const read = async (name: string): Promise<string> => {
    try { return await readFile(join(dir, name), 'utf8') } catch { return '' }
  }
  return {
    dir,
    ip: await write('ip', IP),
    wg: await write('wg', WG),
    wireguardGo: await write('wireguard-go', WIREGUARD_GO),
    prefix: await write('pfx', PREFIX),
    commands: async () => (await read('argv.log')).split('\n').filter((l) => l !== '').map((l) => l.split('\t')),
    rawLog: async () => await read('argv.log'),
    keyFiles: async () => (await read('keyfiles.log')).split('\n').filter((l) => l !== '').map((l) => {
      const [mode, path] = l.split('\t')
      return { mode: mode ?? '', path: path ?? '' }
    }),
    goEnv: async () => (await read('env.log')).split('\n').filter((l) => l !== ''),
    handshake: async (name, publicKey, unixSeconds) => {
      const file = join(dir, `peers-${name}`)
      const lines = (await read(`peers-${name}`)).split('\n').filter((l) => l !== '')
      if (!lines.some((l) => l.startsWith(publicKey + '\t'))) throw new Error(`fake wg: no peer ${publicKey} on ${name}`)
      await writeFile(file, lines.map((l) => {
        const f = l.split('\t')
        if (f[0] === publicKey) f[4] = String(unixSeconds)
        return f.join('\t') + '\n'
      }).join(''))
    },
    setDumpPeers: async (name, lines) => { await writeFile(join(dir, `peers-${name}`), lines.map((l) => l + '\n').join('')) },
    cleanup: async () => { await rm(dir, { recursive: true, force: true }) }
  }
}
