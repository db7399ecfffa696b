import { describe, expect, it } from 'vitest'
import { evaluate } from '../src/arith.js'

describe('evaluate', () => {
  it('computes arithmetic', () => {
    expect(evaluate('512')).toBe(512)
    expect(evaluate(' 512 * 2 ')).toBe(1024)
    expect(evaluate('(1+2)/4')).toBe(0.75)
    expect(evaluate('-3 - -2')).toBe(-1)
    expect(evaluate('1.5e3')).toBe(1500)
    expect(evaluate('2+3*4')).toBe(14)
  })
  it('refuses anything else', () => {
    for (const bad of ['alert(1)', '1+alert(1)', '', '1+', '(1', '1)', 'globalThis', '0x10']) {
      expect(() => evaluate(bad), bad).toThrow(SyntaxError)
    }
  })
})
