import { describe, expect, it } from 'vitest'
import { hostOverridesOf, mainSite, parseNodeSet, parsePartition, splitAssignment } from '../../netns-lab/sites.ts'

describe('node sets, partitions and per-host overrides of lab up', () => {
  it('reads nodes, ranges and lists', () => {
    expect(parseNodeSet('n4', 7)).toEqual(['n4'])
    expect(parseNodeSet('n5-n7', 7)).toEqual(['n5', 'n6', 'n7'])
    expect(parseNodeSet('n1,n3,n5-7', 7)).toEqual(['n1', 'n3', 'n5', 'n6', 'n7'])
  })

  it.each([
    ['n8', 'out of range'], ['n0', 'out of range'], ['n3-n1', 'out of range'], ['x1', 'invalid'], ['', 'invalid']
  ])('refuses %j (%s), naming what it expected', (spec, what) => {
    expect(() => parseNodeSet(spec, 7, '--site')).toThrow(expect.objectContaining({ name: 'LabInputError', message: expect.stringMatching(new RegExp(`^--site '${spec}' is ${what}; expected nodes n1…n7 as n4, n5-n7 or n1,n3$`)) }))
  })

  it('a partition is two disjoint groups split by /', () => {
    expect(parsePartition('n1-n4/n5-n7', 7)).toEqual([['n1', 'n2', 'n3', 'n4'], ['n5', 'n6', 'n7']])
    expect(() => parsePartition('n1-n4', 7)).toThrow(/expected two node groups split by '\/'/)
    expect(() => parsePartition('n1-n4/n4-n7', 7)).toThrow(/puts n4 on both sides; expected disjoint groups/)
  })

  it('NODES=VALUE', () => {
    expect(splitAssignment('host', 'n4=w.yaml')).toEqual({ nodes: 'n4', value: 'w.yaml' })
    expect(splitAssignment('site', 'n4-n6', true)).toEqual({ nodes: 'n4-n6' })
    expect(() => splitAssignment('host', 'n4')).toThrow(/--host 'n4' is invalid; expected NODES=VALUE, e.g. n4=worker.yaml/)
  })

  it('sites get their token and a strict majority of their size; host files and --token-for win', () => {
    const o = hostOverridesOf({
      nodes: 7,
      sites: [{ nodes: ['n5', 'n6', 'n7'], token: 'site-b' }],
      hosts: [{ nodes: ['n7'], config: { p2p: { minimum_nodes: 1 } } }, { nodes: ['n2'], config: { p2p: { network_token: 'from-file' } } }],
      tokenFor: [{ nodes: ['n6'], token: 'own' }]
    })
    expect(o.get('n5')).toEqual({ token: 'site-b', minimumNodes: 2 })
    expect(o.get('n6')).toEqual({ token: 'own', minimumNodes: 2 })
    expect(o.get('n7')).toMatchObject({ token: 'site-b', minimumNodes: 1 })
    expect(o.get('n2')).toMatchObject({ token: 'from-file' })
    expect(o.has('n1')).toBe(false)
    expect(hostOverridesOf({ nodes: 4, sites: [{ nodes: ['n3', 'n4'], token: 't' }], hosts: [], tokenFor: [], minimumNodes: 2 }).get('n3')?.minimumNodes).toBe(2)
    expect(mainSite(7, [{ nodes: ['n5', 'n6', 'n7'] }])).toEqual(['n1', 'n2', 'n3', 'n4'])
    expect(() => hostOverridesOf({ nodes: 4, sites: [{ nodes: ['n3'], token: 'a' }, { nodes: ['n3', 'n4'], token: 'b' }], hosts: [], tokenFor: [] })).toThrow(/n3 is in site 1 and site 2/)
  })
})
