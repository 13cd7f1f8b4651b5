/** A binary heap of simulation events ordered by (time, insertion): equal times keep their order. */
export class EventQueue<E> {
  private readonly heap: Array<Queued<E>> = []
  private seq = 0

  get size (): number { return this.heap.length }

  push (at: number, ev: E): void {
    const h = this.heap
    h.push({ at, seq: this.seq++, ev })
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!less(h[i] as Queued<E>, h[p] as Queued<E>)) break
      ;[h[i], h[p]] = [h[p] as Queued<E>, h[i] as Queued<E>]
      i = p
    }
  }

  pop (): Queued<E> | undefined {
    const h = this.heap
    const top = h[0]
    const last = h.pop()
    if (h.length > 0 && last !== undefined) {
      h[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1; const r = l + 1
        let m = i
        if (l < h.length && less(h[l] as Queued<E>, h[m] as Queued<E>)) m = l
        if (r < h.length && less(h[r] as Queued<E>, h[m] as Queued<E>)) m = r
        if (m === i) break
        ;[h[i], h[m]] = [h[m] as Queued<E>, h[i] as Queued<E>]
        i = m
      }
    }
    return top
  }
}

/** An event and when it happens. */
export interface Queued<E> { at: number, seq: number, ev: E }

const less = <E>(a: Queued<E>, b: Queued<E>): boolean => a.at < b.at || (a.at === b.at && a.seq < b.seq)
