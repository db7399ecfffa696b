// PNG text chunks: ComfyUI (and dypegraph's SaveImage) embed the API prompt and the UI workflow
// as "prompt" and "workflow" text chunks. readPngText reads tEXt, iTXt and zTXt chunks.

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]

/** PngError is a file that is not a readable PNG; its message is for the user. */
export class PngError extends Error {}

/** isPng tells whether bytes start with the PNG signature. */
export function isPng(bytes) {
  const b = toBytes(bytes)
  return b.length >= 8 && SIGNATURE.every((v, i) => b[i] === v)
}

function toBytes(data) {
  if (data instanceof Uint8Array) return data
  if (data instanceof ArrayBuffer) return new Uint8Array(data)
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  throw new PngError('not binary data')
}

function decodeText(bytes, utf8) {
  if (!utf8) {
    // tEXt is Latin-1 by the spec, but writers put UTF-8 JSON there: prefer UTF-8 when valid.
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
    } catch {
      return new TextDecoder('latin1').decode(bytes)
    }
  }
  return new TextDecoder('utf-8').decode(bytes)
}

async function inflate(bytes) {
  if (typeof DecompressionStream === 'undefined') throw new PngError('this browser cannot decompress zTXt chunks')
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'))
  return new Uint8Array(await new Response(stream).arrayBuffer())
}

/**
 * readPngText returns the text chunks of a PNG as {keyword: text}. The first chunk of a keyword
 * wins. Throws PngError when the data is not a PNG or a chunk runs past the end of the file.
 * @param {ArrayBuffer|Uint8Array} data
 * @returns {Promise<Record<string, string>>}
 */
export async function readPngText(data) {
  const b = toBytes(data)
  if (!isPng(b)) throw new PngError('not a PNG file')
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength)
  const out = {}
  let pos = 8
  while (pos + 8 <= b.length) {
    const len = view.getUint32(pos)
    const type = String.fromCharCode(b[pos + 4], b[pos + 5], b[pos + 6], b[pos + 7])
    const start = pos + 8
    const end = start + len
    if (end + 4 > b.length) throw new PngError(`PNG chunk ${type} runs past the end of the file (truncated?)`)
    const chunk = b.subarray(start, end)
    if (type === 'tEXt' || type === 'iTXt' || type === 'zTXt') {
      const nul = chunk.indexOf(0)
      if (nul > 0) {
        const key = new TextDecoder('latin1').decode(chunk.subarray(0, nul))
        let text
        if (type === 'tEXt') {
          text = decodeText(chunk.subarray(nul + 1), false)
        } else if (type === 'zTXt') {
          text = decodeText(await inflate(chunk.subarray(nul + 2)), false)
        } else {
          const compressed = chunk[nul + 1] === 1
          const lang = chunk.indexOf(0, nul + 3)
          const translated = lang < 0 ? -1 : chunk.indexOf(0, lang + 1)
          if (translated >= 0) {
            const body = chunk.subarray(translated + 1)
            text = decodeText(compressed ? await inflate(body) : body, true)
          }
        }
        if (text !== undefined && !(key in out)) out[key] = text
      }
    }
    if (type === 'IEND') break
    pos = end + 4
  }
  return out
}

/**
 * workflowFromPng picks the embedded workflow: the UI "workflow" chunk (it keeps the layout),
 * else the API "prompt" chunk. Returns the parsed JSON, or throws PngError saying what is missing.
 */
export async function workflowFromPng(data) {
  const texts = await readPngText(data)
  for (const key of ['workflow', 'prompt']) {
    if (texts[key] === undefined) continue
    try {
      return JSON.parse(texts[key])
    } catch (e) {
      throw new PngError(`the PNG's "${key}" chunk is not valid JSON: ${e.message}`)
    }
  }
  throw new PngError('this PNG has no embedded workflow (no "workflow" or "prompt" text chunk)')
}
