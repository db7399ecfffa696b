import { describe, expect, it } from 'vitest'
import { FrameError, parseFrame, previewNode } from '../src/preview.js'
import { concat, enc } from './helpers.js'

const u32 = (...vals) => {
  const b = new Uint8Array(4 * vals.length)
  const v = new DataView(b.buffer)
  vals.forEach((x, i) => v.setUint32(4 * i, x))
  return b
}
const JPEG = Uint8Array.of(0xff, 0xd8, 0xff, 0xe0, 1, 2, 3)
const PNG = Uint8Array.of(0x89, 0x50, 0x4e, 0x47)

describe('parseFrame', () => {
  it('reads a legacy type 1 preview (JPEG and PNG)', () => {
    const f = parseFrame(concat(u32(1, 1), JPEG).buffer)
    expect(f.event).toBe(1)
    expect(f.mime).toBe('image/jpeg')
    expect([...f.image]).toEqual([...JPEG])
    expect(f.meta).toBeNull()
    expect(parseFrame(concat(u32(1, 2), PNG)).mime).toBe('image/png')
  })

  it('reads a type 4 preview with metadata', () => {
    const meta = { node_id: '3', prompt_id: 'p', display_node_id: '3', parent_node_id: null, real_node_id: '3', image_type: 'image/png' }
    const json = enc(JSON.stringify(meta))
    const f = parseFrame(concat(u32(4, json.length), json, PNG))
    expect(f.event).toBe(4)
    expect(f.meta).toEqual(meta)
    expect(f.mime).toBe('image/png')
    expect([...f.image]).toEqual([...PNG])
  })

  it('reads a text frame', () => {
    const id = enc('12')
    expect(parseFrame(concat(u32(3, id.length), id, enc('tile 2/4')))).toEqual({ event: 3, nodeId: '12', text: 'tile 2/4' })
  })

  it('tolerates unknown event types', () => {
    expect(parseFrame(u32(9, 0))).toEqual({ event: 9, unknown: true })
  })

  it('refuses malformed frames', () => {
    expect(() => parseFrame(Uint8Array.of(0, 0))).toThrow(FrameError)
    expect(() => parseFrame(u32(1))).toThrow(/image type/)
    expect(() => parseFrame(u32(1, 7))).toThrow(/unknown image type 7/)
    expect(() => parseFrame(concat(u32(4, 100), enc('{}')))).toThrow(/runs past the frame/)
    expect(() => parseFrame(concat(u32(4, 3), enc('{x}')))).toThrow(/not JSON/)
    expect(() => parseFrame(concat(u32(4, 4), enc('null')))).toThrow(/not a JSON object/)
  })
})

describe('previewNode', () => {
  it('uses the metadata, else the executing node', () => {
    expect(previewNode({ meta: { node_id: '5', display_node_id: '7' } }, '1')).toBe('7')
    expect(previewNode({ meta: { node_id: 5 } }, '1')).toBe('5')
    expect(previewNode({ meta: null }, 3)).toBe('3')
    expect(previewNode({ meta: null }, null)).toBeNull()
  })
})
