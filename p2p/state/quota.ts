/**
 * The replica's byte budget when it is full (pure policy; the store applies it).
 *
 * Each owner is held to `maxOwnerBytes` on its own. When an entry would still push the
 * replica past `maxTotalBytes`, room is made max-min fairly: entries are evicted from
 * the owner holding the most bytes (largest entry first), but only from owners that
 * would still hold more than the incoming owner holds after the entry. So an entry is
 * refused (`store-full`) only when its owner would become one of the largest owners
 * of a full replica, and a newcomer's first small entries always fit unless the
 * replica is full of owners that each hold no more than it would. Own entries are
 * never evicted. A re-sent evicted entry is taken back only by trimming an owner that
 * would still be larger, so re-sending only evens out the largest owners' shares and
 * settles once they are level; it never reaches an owner smaller than them.
 */

/** Bytes held by one owner, per key. */
export interface OwnerUsage {
  bytes: number
  /** Wire bytes of each held key. */
  keys: Map<string, number>
}

/** One entry chosen for eviction. */
export interface Eviction { owner: string, key: string, bytes: number }

/**
 * The entries to evict so that `need` more bytes fit for `incoming`, which will hold
 * `incomingAfter` bytes; undefined when they cannot be found without evicting an
 * owner that holds no more than that (the entry is then refused). Owners in `protect`
 * (this node) are never chosen. Pure: `usage` is not changed.
 */
export function planEviction (usage: ReadonlyMap<string, OwnerUsage>, need: number, incoming: string, incomingAfter: number, protect: ReadonlySet<string>): Eviction[] | undefined {
  if (need <= 0) return []
  const left = new Map<string, { bytes: number, keys: Array<[string, number]> }>()
  const out: Eviction[] = []
  let freed = 0
  while (freed < need) {
    let pick: string | undefined
    let pickBytes = -1
    for (const [owner, u] of usage) {
      if (owner === incoming || protect.has(owner)) continue
      const bytes = left.get(owner)?.bytes ?? u.bytes
      if (bytes > pickBytes || (bytes === pickBytes && pick !== undefined && owner < pick)) { pick = owner; pickBytes = bytes }
    }
    if (pick === undefined || pickBytes <= incomingAfter) return undefined
    let state = left.get(pick)
    if (state === undefined) {
      const keys = [...(usage.get(pick) as OwnerUsage).keys].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      state = { bytes: pickBytes, keys }
      left.set(pick, state)
    }
    const next = state.keys.shift()
    if (next === undefined) return undefined
    state.bytes -= next[1]
    freed += next[1]
    out.push({ owner: pick, key: next[0], bytes: next[1] })
  }
  return out
}
