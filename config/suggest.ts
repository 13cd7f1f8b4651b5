/**
 * Optimal-string-alignment distance: insertions, deletions, substitutions and
 * swaps of two neighbouring characters each cost 1 (`minimun` → `minimum` is 1,
 * `minimmu` → `minimum` is 1).
 */
export function editDistance (a: string, b: string): number {
  const rows = a.length + 1
  const cols = b.length + 1
  const d: number[] = new Array<number>(rows * cols).fill(0)
  const at = (i: number, j: number): number => d[i * cols + j] ?? 0
  for (let i = 0; i < rows; i++) d[i * cols] = i
  for (let j = 0; j < cols; j++) d[j] = j
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1)
      d[i * cols + j] = best
    }
  }
  return at(a.length, b.length)
}

/**
 * The candidate closest to `word`, or undefined when none is close enough to be a
 * plausible typo: at most a third of the word's length (and at least 2) edits away,
 * ignoring case and treating `-` and `_` alike. Ties go to the earlier candidate.
 */
export function nearest (word: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string): string => s.toLowerCase().replaceAll('-', '_')
  const w = norm(word)
  const limit = Math.max(2, Math.floor(word.length / 3))
  let best: string | undefined
  let bestDistance = Infinity
  for (const c of candidates) {
    // The distance is at least the difference in length: skip the quadratic work (a key
    // of a megabyte is no typo of anything).
    if (Math.abs(c.length - w.length) > limit) continue
    const distance = editDistance(w, norm(c))
    if (distance < bestDistance) {
      best = c
      bestDistance = distance
    }
  }
  return bestDistance <= limit ? best : undefined
}
