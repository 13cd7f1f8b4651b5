import { describe, expect, it } from 'vitest'
import { load } from 'js-yaml'
import { isTemplate, maskTemplates } from '../../config/template.ts'

describe('maskTemplates', () => {
  it('leaves text without templates untouched', () => {
    const m = maskTemplates('a: 1\n')
    expect(m).toMatchObject({ text: 'a: 1\n', count: 0 })
  })

  it('makes unquoted expressions parse and restores them', () => {
    const m = maskTemplates('hostname: {{ .Name }}\nfqdn: "{{ "x" }}.local"\n')
    expect(m.count).toBe(2)
    expect(m.restore(load(m.text))).toEqual({ hostname: '{{ .Name }}', fqdn: '{{ "x" }}.local' })
  })

  it('comments out lines that hold only actions and keeps the line count', () => {
    const text = 'a:\n{{- range .Items }}\n  - {{ . }}\n{{- end }}\nb: 1\n'
    const m = maskTemplates(text)
    expect(m.text.split('\n')).toHaveLength(text.split('\n').length)
    expect(m.restore(load(m.text))).toEqual({ a: ['{{ . }}'], b: 1 })
  })

  it('does not collide with text that looks like a placeholder', () => {
    const m = maskTemplates('a: __kp2p_tmpl_0__\nb: {{ .X }}\n')
    expect(m.restore(load(m.text))).toEqual({ a: '__kp2p_tmpl_0__', b: '{{ .X }}' })
  })

  it('restores templated keys', () => {
    const m = maskTemplates('{{ .Key }}: 1\n')
    expect(m.restore(load(m.text))).toEqual({ '{{ .Key }}': 1 })
  })
})

describe('isTemplate', () => {
  it('spots expressions only in strings', () => {
    expect(isTemplate('node-{{ .ID }}')).toBe(true)
    expect(isTemplate('node-{ID}')).toBe(false)
    expect(isTemplate(3)).toBe(false)
  })
})
