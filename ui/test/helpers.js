// Test helpers: build PNG files chunk by chunk (with real CRCs) and read repository files.
import { readFileSync, existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const uiDir = join(dirname(fileURLToPath(import.meta.url)), '..')
export const repoDir = join(uiDir, '..')

export function readJSON(path) {
  return JSON.parse(readFileSync(path, 'utf8'))
}

export const defs = readJSON(join(uiDir, 'test', 'fixtures', 'object_info.json'))

/** sharedFile is a path in the shared/ folder beside the repository, or null when absent. */
export function sharedFile(...parts) {
  const p = join(repoDir, '..', 'shared', ...parts)
  return existsSync(p) ? p : null
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    t[n] = c >>> 0
  }
  return t
})()

function crc32(bytes) {
  let c = 0xffffffff
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

export function chunk(type, data) {
  const body = new Uint8Array(4 + data.length)
  body.set(new TextEncoder().encode(type), 0)
  body.set(data, 4)
  const out = new Uint8Array(12 + data.length)
  const v = new DataView(out.buffer)
  v.setUint32(0, data.length)
  out.set(body, 4)
  v.setUint32(8 + data.length, crc32(body))
  return out
}

export function concat(...parts) {
  const n = parts.reduce((a, p) => a + p.length, 0)
  const out = new Uint8Array(n)
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

export const enc = (s) => new TextEncoder().encode(s)
export const latin1 = (s) => Uint8Array.from(s, (c) => c.charCodeAt(0))

/** png builds a 1×1 PNG with the given extra chunks before IDAT. */
export function png(...extra) {
  const sig = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
  const ihdr = new Uint8Array(13)
  const v = new DataView(ihdr.buffer)
  v.setUint32(0, 1)
  v.setUint32(4, 1)
  ihdr[8] = 8
  ihdr[9] = 0
  return concat(sig, chunk('IHDR', ihdr), ...extra, chunk('IDAT', Uint8Array.from([0x78, 0x9c, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01])), chunk('IEND', new Uint8Array(0)))
}
