import { describe, expect, it } from 'vitest'
import type { StateEntry } from '../../p2p/types.ts'
import { memorySealKeys } from '../../roles/credentials.ts'
import {
  judgeRotations, MAX_SEALED_PER_ENTRY, parseRotationEntry, ROTATION_PREFIX, rotationEntries, type RotationHeader
} from '../../roles/rotation.ts'
import { seededRandom } from '../../util/random.ts'

const [I, S, A, B] = ['12D3KooWInit', '12D3KooWServer', '12D3KooWAgentA', '12D3KooWAgentB']
const authority = { init: I, servers: new Set([S]) }
const header: RotationHeader = { generation: 1, from: 'aaaa-bbbb-cccc-dddd', to: 'eeee-ffff-gggg-hhhh', at: 1_000_000, until: 1_000_000 + 60_000 }
const entry = (owner: string, key: string, value: unknown, version = 1): StateEntry => ({ owner, key, version, writtenAt: 0, value: value as never })

describe('token rotation records', () => {
  const random = seededRandom(7)
  const keys = new Map([[A, memorySealKeys(random)], [B, memorySealKeys(random)]])
  const recipients = new Map([...keys].map(([id, k]) => [id, k.publicKey]))

  it('seals the new token to each member; each opens only its own copy', () => {
    const [e] = rotationEntries(header, 'kp1new', recipients, random)
    const { header: h, sealed } = parseRotationEntry(e as { key: string, value: never })
    expect(h).toEqual(header)
    expect(keys.get(A)?.open(sealed.get(A) as never)).toBe('kp1new')
    expect(() => keys.get(A)?.open(sealed.get(B) as never)).toThrow()
  })

  it('a member follows a record of the init server or a server, not one of any other token holder', () => {
    const entries = rotationEntries(header, 'kp1new', recipients, random)
    const fromAgent = entries.map((e) => entry(A, e.key, e.value))
    const judgedAgent = judgeRotations(fromAgent, authority, header.from)
    expect(judgedAgent.rotation).toBeUndefined()
    expect(judgedAgent.ignored).toEqual([expect.objectContaining({ by: A, reason: 'not published by a server' })])
    expect(judgeRotations(entries.map((e) => entry(S, e.key, e.value)), authority, header.from).rotation?.by).toBe(S)
    expect(judgeRotations(entries.map((e) => entry(I, e.key, e.value)), authority, header.from).rotation?.by).toBe(I)
    // Before any cluster record is accepted nobody may rotate.
    expect(judgeRotations(entries.map((e) => entry(I, e.key, e.value)), { init: undefined, servers: new Set() }, header.from).rotation).toBeUndefined()
  })

  it('follows only a record that replaces the token it runs with; the highest generation wins, then the lowest publisher', () => {
    const mk = (by: string, h: RotationHeader): StateEntry[] => rotationEntries(h, 'kp1x', recipients, random).map((e) => entry(by, e.key, e.value))
    expect(judgeRotations(mk(I, header), authority, 'zzzz-zzzz-zzzz-zzzz').rotation).toBeUndefined()
    const both = [...mk(S, { ...header, generation: 2 }), ...mk(I, header)]
    expect(judgeRotations(both, authority, header.from).rotation).toMatchObject({ by: S, generation: 2 })
    expect(judgeRotations([...mk(S, header), ...mk(I, header)], authority, header.from).rotation?.by).toBe(I < S ? I : S)
  })

  it('merges the shards of a large site, and ignores a shard whose header disagrees', () => {
    const many = new Map(Array.from({ length: MAX_SEALED_PER_ENTRY + 5 }, (_, i) => [`12D3KooWMember${String(i).padStart(4, '0')}`, recipients.get(A) as string]))
    const shards = rotationEntries(header, 'kp1x', many, random)
    expect(shards.map((s) => s.key)).toEqual([`${ROTATION_PREFIX}0`, `${ROTATION_PREFIX}1`])
    const judged = judgeRotations(shards.map((e) => entry(I, e.key, e.value)), authority, header.from)
    expect(judged.rotation?.sealed.size).toBe(MAX_SEALED_PER_ENTRY + 5)
    const odd = rotationEntries({ ...header, until: header.until + 1 }, 'kp1x', many, random)[1] as { key: string, value: never }
    const mixed = judgeRotations([entry(I, (shards[0] as { key: string }).key, (shards[0] as { value: unknown }).value), entry(I, odd.key, odd.value)], authority, header.from)
    expect(mixed.rotation?.sealed.size).toBe(MAX_SEALED_PER_ENTRY)
    expect(mixed.ignored[0]?.reason).toMatch(/header differs/)
  })

  it.each([
    ['a generation of 0', { generation: 0 }, /generation must be an integer/],
    ['a generation past the bound', { generation: 1e9 }, /generation must be an integer/],
    ['a fingerprint that is not one', { to: 'kp1secret' }, /to must be a token fingerprint/],
    ['the same token twice', { to: header.from }, /same token/],
    ['a grace of one second', { until: header.at + 1_000 }, /grace .* must be from/],
    ['a grace of two years', { until: header.at + 2 * 365 * 86_400_000 }, /grace .* must be from/],
    ['a version 2', { v: 2 }, /version must be 1/],
    ['sealed copies that are not boxes', { sealed: { [A]: 'x' } }, /the copy for/]
  ])('refuses a record with %s, naming what is wrong', (_, change, message) => {
    const [e] = rotationEntries(header, 'kp1x', recipients, random)
    const value = { ...(e?.value as object), ...change }
    expect(() => parseRotationEntry({ key: `${ROTATION_PREFIX}0`, value: value as never })).toThrow(message)
    expect(judgeRotations([entry(I, `${ROTATION_PREFIX}0`, value)], authority, header.from).ignored[0]?.reason).toMatch(message)
  })

  it('refuses too many copies in one entry and a shard number out of range', () => {
    const [e] = rotationEntries(header, 'kp1x', recipients, random)
    const box = Object.values((e?.value as { sealed: Record<string, unknown> }).sealed)[0]
    const sealed = Object.fromEntries(Array.from({ length: MAX_SEALED_PER_ENTRY + 1 }, (_, i) => [`p${i}`, box]))
    expect(() => parseRotationEntry({ key: `${ROTATION_PREFIX}0`, value: { ...(e?.value as object), sealed } as never })).toThrow(/at most 150/)
    expect(() => parseRotationEntry({ key: `${ROTATION_PREFIX}99`, value: e?.value as never })).toThrow(/is not token\/rotation\//)
  })
})
