/**
 * Go-template expressions in a cloud-config.
 *
 * Kairos renders a cloud-config as a Go template (with sprig functions and machine
 * facts such as `.MachineID`) before it reads the YAML. kairos-p2p cannot render it
 * (the facts belong to the target machine), so the loader masks the expressions
 * instead, in two steps, before YAML parsing:
 *
 * 1. A line that holds nothing but template actions (`{{- if … }}`, `{{ end }}`,
 *    `{{ range … }}`) is turned into a YAML comment. Both branches of an `if` are
 *    therefore read; a key defined in both is reported as a duplicate.
 * 2. Every other `{{ … }}` on one line is replaced by a plain placeholder word, which
 *    is valid YAML quoted or unquoted (`hostname: node-{{ trunc 4 .MachineID }}` and
 *    `hostname: {{ .Name }}` both parse).
 *
 * After parsing, placeholders inside strings (keys and values) are put back, so the
 * parsed value is the original text: `"node-{{ trunc 4 .MachineID }}"`. A templated
 * value of a typed kairos-p2p key (a number, a boolean) is then reported as an
 * unrendered template. Expressions spanning several lines are not masked. Line
 * numbers are unchanged by masking, so YAML errors still point at the right line.
 */

const EXPRESSION = /\{\{[^\n]*?\}\}/g
const ACTION_LINE = /^\s*(\{\{[^\n]*?\}\}\s*)+$/

/** The masked text and the way back from placeholders to the original expressions. */
export interface MaskedTemplate {
  /** YAML text with every single-line template expression masked. */
  text: string
  /** How many expressions were masked. */
  count: number
  /** Deep copy of a parsed value with placeholders in strings replaced by the original expressions. */
  restore: (value: unknown) => unknown
}

/** Masks Go-template expressions so the text parses as YAML (see the module comment). */
export function maskTemplates (text: string): MaskedTemplate {
  const expressions: string[] = []
  if (!text.includes('{{')) return { text, count: 0, restore: (v) => v }
  let prefix = '__kp2p_tmpl_'
  while (text.includes(prefix)) prefix = `_${prefix}`
  const placeholder = new RegExp(`${prefix}(\\d+)__`, 'g')

  const lines = text.split('\n').map((line) => {
    if (ACTION_LINE.test(line)) {
      const indent = /^\s*/.exec(line)?.[0] ?? ''
      expressions.push(line.trim())
      return `${indent}# ${prefix}${expressions.length - 1}__`
    }
    return line.replace(EXPRESSION, (expr) => {
      expressions.push(expr)
      return `${prefix}${expressions.length - 1}__`
    })
  })

  const unmask = (s: string): string => s.replace(placeholder, (m, i: string) => expressions[Number(i)] ?? m)
  const restore = (value: unknown): unknown => {
    if (typeof value === 'string') return unmask(value)
    if (Array.isArray(value)) return value.map(restore)
    if (value !== null && typeof value === 'object') {
      const out: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(value)) out[unmask(k)] = restore(v)
      return out
    }
    return value
  }
  return { text: lines.join('\n'), count: expressions.length, restore }
}

/** True when a string still holds a Go-template expression. */
export function isTemplate (value: unknown): boolean {
  return typeof value === 'string' && /\{\{.*\}\}/.test(value)
}
