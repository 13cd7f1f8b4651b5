import { describe, expect, it } from 'vitest'
import { seededRandom } from '../../util/random.ts'
import { BECH32_ALPHABET, bech32mChecksum, bech32Index } from '../../token/bech32m.ts'
import { generateToken, parseToken, TokenError, TokenVersionError } from '../../token/index.ts'
import { base64, edgevpnConfig, edgevpnToken, edgevpnYaml } from './edgevpn.ts'

const token = generateToken(seededRandom(11))

/** A token with a valid checksum over any version and body. */
function craft (version: number, body: string): string {
  const data = [version, ...[...body].map(bech32Index)]
  const all = [...data, ...bech32mChecksum('kp', data)]
  return 'kp1' + all.map((v) => BECH32_ALPHABET[v]).join('')
}

function failure (input: string): { name: string, message: string } {
  try {
    parseToken(input)
  } catch (err) {
    expect(err).toBeInstanceOf(TokenError)
    expect((err as TokenError).exitCode).toBe(2)
    return { name: (err as Error).name, message: (err as Error).message }
  }
  throw new Error(`parseToken accepted ${JSON.stringify(input)}`)
}

const yaml = edgevpnYaml(edgevpnConfig(seededRandom(5)))
const without = (line: RegExp): string => yaml.split('\n').filter((l) => !line.test(l)).join('\n')

// Each bad input, the error name it must give and what its message must say.
const cases: Array<[string, string, string, RegExp]> = [
  ['empty', '', 'TokenEmptyError', /^network token is empty; expected a token from 'kairos-p2p token generate' or a Kairos\/edgevpn network token$/],
  ['only whitespace', ' \n\t', 'TokenEmptyError', /is empty/],
  ['prefix only', 'kp1', 'TokenTooShortError', /^network token has 3 characters, too few for a kairos-p2p token \(version 1 has 62\) — truncated\?$/],
  ['truncated by one', token.slice(0, -1), 'TokenTooShortError', /^network token has 61 characters; a version 1 token has 62 — truncated\?$/],
  ['truncated by half', token.slice(0, 31), 'TokenTooShortError', /has 31 characters; a version 1 token has 62 — truncated/],
  ['one character appended', token + 'q', 'TokenTooLongError', /^network token has 63 characters; a version 1 token has 62 — is something pasted after it\?$/],
  ['way too long', token + 'q'.repeat(40), 'TokenTooLongError', /has 102 characters; a kairos-p2p token has at most 90/],
  ['two tokens pasted together', token + generateToken(seededRandom(12)), 'TokenCharacterError', /character '1' at position 65/],
  ['one character changed', token.slice(0, 20) + (token[20] === 'q' ? 'p' : 'q') + token.slice(21), 'TokenChecksumError', /^network token checksum mismatch — probably a typo; copy the token again from its source$/],
  ['version character changed', 'kp1q' + token.slice(4), 'TokenChecksumError', /checksum mismatch — probably a typo/],
  ['unknown version with a valid checksum', craft(2, token.slice(4, -6)), 'TokenVersionError', /^network token has version 2; this build of kairos-p2p reads version 1 \(upgrade kairos-p2p to use this token\)$/],
  ['future version with another length', craft(3, 'qqqq'), 'TokenVersionError', /has version 3/],
  ['version 1 with a valid checksum but a short body', craft(1, 'qqqq'), 'TokenTooShortError', /has 14 characters; a version 1 token has 62/],
  ['character outside the alphabet (b)', token.slice(0, 10) + 'b' + token.slice(11), 'TokenCharacterError', /^network token has character 'b' at position 11, which no token contains; expected one of qpzry9x8gf2tvdw0s3jn54khce6mua7l$/],
  ['character outside the alphabet (o)', token.slice(0, 5) + 'o' + token.slice(6), 'TokenCharacterError', /character 'o' at position 6/],
  ['punctuation', token.slice(0, 5) + '-' + token.slice(6), 'TokenCharacterError', /character '-' at position 6/],
  ['inner space', token.slice(0, 30) + ' ' + token.slice(30), 'TokenCharacterError', /character U\+0020 at position 31/],
  ['mixed case', token.slice(0, 40) + token.slice(40).toUpperCase(), 'TokenCharacterError', /mixes upper and lower case \(position \d+\); a token is all lowercase or all uppercase/],
  ['damaged prefix', 'kq1' + token.slice(3), 'TokenFormatError', /^network token does not start with 'kp1' as kairos-p2p tokens do, and at 62 characters it is too short for a Kairos\/edgevpn token — is the start mistyped\?$/],
  ['missing separator', 'kpq' + token.slice(3), 'TokenFormatError', /does not start with 'kp1'/],
  ['a short word', 'secret', 'TokenFormatError', /does not start with 'kp1'/],
  ['not base64', 'this is not a token!', 'KairosTokenBase64Error', /^network token is not a kairos-p2p token \(those start with 'kp1'\) and not base64 as a Kairos\/edgevpn token is: unexpected character U\+0020 at position 5$/],
  ['base64 cut short', edgevpnToken(seededRandom(3)).slice(0, -3), 'KairosTokenBase64Error', /characters is not a multiple of 4 — truncated\?/],
  ['base64 with padding inside', 'b3Rw=' + edgevpnToken(seededRandom(3)), 'KairosTokenBase64Error', /padding '=' at position 5 is not at the end/],
  ['base64 of binary', Buffer.from(seededRandom(4).bytes(120)).toString('base64'), 'KairosTokenYamlError', /^Kairos\/edgevpn network token is base64 but does not decode to YAML: the decoded bytes are not UTF-8 text$/],
  ['base64 of broken YAML', base64('otp: [unclosed\nroom: x\n'.repeat(5)), 'KairosTokenYamlError', /does not decode to YAML: /],
  ['base64 of a plain sentence', base64('the quick brown fox jumps over the lazy dog, again and again and again and again'), 'KairosTokenYamlError', /decodes to a plain string; expected a mapping with otp, room, rendezvous and mdns/],
  ['base64 of a YAML list', base64('- otp\n- room\n- rendezvous\n- mdns\n- and some more items to make it long enough\n'), 'KairosTokenYamlError', /decodes to a list/],
  ['Kairos YAML missing otp.crypto.key', base64(without(/^ {4}key: /).replace(/^( {2}dht:\n {4}interval: \d+\n)/m, '$1    key: KEEPDHT\n')), 'KairosTokenError', /^Kairos\/edgevpn network token: missing key otp\.crypto\.key \(expected a non-empty string\)$/],
  ['Kairos YAML missing otp entirely', base64(yaml.split('\n').slice(9).join('\n')), 'KairosTokenError', /missing key otp\.dht\.key/],
  ['Kairos YAML missing room', base64(without(/^room:/)), 'KairosTokenError', /missing key room \(expected a non-empty string\)/],
  ['Kairos YAML missing rendezvous', base64(without(/^rendezvous:/)), 'KairosTokenError', /missing key rendezvous/],
  ['Kairos YAML missing mdns', base64(without(/^mdns:/)), 'KairosTokenError', /missing key mdns/],
  ['Kairos YAML with an empty room', base64(yaml.replace(/^room: .*$/m, 'room: ""')), 'KairosTokenError', /room is empty; expected a non-empty string/],
  ['Kairos YAML with otp as a string', base64(yaml.split('\n').slice(9).join('\n') + 'otp: everything\n'), 'KairosTokenError', /otp must be a mapping \(it holds dht\.key\), got a plain string/],
  ['Kairos YAML with a mapping as room', base64(yaml.replace(/^room: .*$/m, 'room: {a: b}')), 'KairosTokenError', /room must be a string, got a mapping/],
  ['Kairos YAML with a bad interval', base64(yaml.replace(/interval: 9000/, 'interval: soon')), 'KairosTokenError', /otp\.dht\.interval must be a non-negative integer, got 'soon'/],
  ['Kairos YAML with a bad max_message_size', base64(yaml.replace(/max_message_size: \d+/, 'max_message_size: -1')), 'KairosTokenError', /max_message_size must be a non-negative integer, got '-1'/]
]

describe('parseToken bad input', () => {
  for (const [what, input, name, message] of cases) {
    it(`${what} → ${name}`, () => {
      const got = failure(input)
      expect(got.name).toBe(name)
      expect(got.message).toMatch(message)
    })
  }

  it('never repeats the token in a message', () => {
    for (const [, input] of cases) {
      const { message } = failure(input)
      const body = input.trim()
      if (body.length >= 16) {
        for (let i = 0; i + 16 <= body.length; i += 8) expect(message).not.toContain(body.slice(i, i + 16))
      }
    }
  })

  it('TokenVersionError carries the version', () => {
    try { parseToken(craft(7, 'qqqq')) } catch (err) {
      expect(err).toBeInstanceOf(TokenVersionError)
      expect((err as TokenVersionError).version).toBe(7)
      return
    }
    throw new Error('no error')
  })

  it('rejects a value that is not a string', () => {
    expect(failure(42 as unknown as string).name).toBe('TokenFormatError')
  })
})
