import { createHash } from 'node:crypto'

/**
 * A fixed-size fingerprint of a list of rows (SHA-256 over each row and a separator,
 * base64): enough to tell whether a list changed since it was last sent, without
 * keeping the list. A site of a thousand members has lists of tens of kilobytes, kept
 * per peer; their fingerprints are 44 bytes.
 */
export function fingerprintRows (rows: Iterable<string>): string {
  const h = createHash('sha256')
  for (const r of rows) h.update(r).update('\n')
  return h.digest('base64')
}
