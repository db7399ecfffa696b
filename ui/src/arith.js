// A small arithmetic evaluator for number widgets. litegraph's number widget passes what the
// user types ("512*2", "(1+2)/3") to eval; the page runs under a Content-Security-Policy without
// 'unsafe-eval', so graph.js evaluates number prompts here first: numbers, + - * / and
// parentheses only, anything else throws.

/** evaluate computes an arithmetic expression or throws a SyntaxError. */
export function evaluate(text) {
  const s = String(text)
  let i = 0
  const skip = () => {
    while (i < s.length && /\s/.test(s[i])) i++
  }
  const fail = () => {
    throw new SyntaxError(`not an arithmetic expression: ${JSON.stringify(s)}`)
  }
  const number = () => {
    skip()
    const m = /^(\d+\.?\d*|\.\d+)(e[+-]?\d+)?/i.exec(s.slice(i))
    if (!m) fail()
    i += m[0].length
    return Number(m[0])
  }
  const factor = () => {
    skip()
    if (s[i] === '-') {
      i++
      return -factor()
    }
    if (s[i] === '+') {
      i++
      return factor()
    }
    if (s[i] === '(') {
      i++
      const v = sum()
      skip()
      if (s[i] !== ')') fail()
      i++
      return v
    }
    return number()
  }
  const product = () => {
    let v = factor()
    for (;;) {
      skip()
      if (s[i] === '*') {
        i++
        v *= factor()
      } else if (s[i] === '/') {
        i++
        v /= factor()
      } else return v
    }
  }
  const sum = () => {
    let v = product()
    for (;;) {
      skip()
      if (s[i] === '+') {
        i++
        v += product()
      } else if (s[i] === '-') {
        i++
        v -= product()
      } else return v
    }
  }
  const v = sum()
  skip()
  if (i !== s.length) fail()
  return v
}
