import { readFileSync } from 'node:fs'
import { deflateSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { PngError, isPng, readPngText, workflowFromPng } from '../src/png.js'
import { chunk, concat, enc, latin1, png, sharedFile } from './helpers.js'

const text = (key, value) => chunk('tEXt', concat(latin1(key), Uint8Array.of(0), enc(value)))
const itxt = (key, value, compressed) => chunk('iTXt', concat(latin1(key), Uint8Array.of(0, compressed ? 1 : 0, 0),
  enc('en'), Uint8Array.of(0), enc('Prompt'), Uint8Array.of(0), compressed ? deflateSync(enc(value)) : enc(value)))
const ztxt = (key, value) => chunk('zTXt', concat(latin1(key), Uint8Array.of(0, 0), deflateSync(latin1(value))))

describe('readPngText', () => {
  it('reads tEXt, iTXt (plain and compressed) and zTXt chunks', async () => {
    const file = png(text('prompt', '{"1":{}}'), itxt('workflow', '{"nodes":["ünïcode"]}', false),
      itxt('comment', 'deflated', true), ztxt('author', 'zé'))
    expect(isPng(file)).toBe(true)
    expect(await readPngText(file)).toEqual({
      prompt: '{"1":{}}', workflow: '{"nodes":["ünïcode"]}', comment: 'deflated', author: 'zé',
    })
  })

  it('keeps the first chunk of a keyword and reads UTF-8 or Latin-1 tEXt', async () => {
    const file = png(text('a', 'first'), text('a', 'second'), chunk('tEXt', concat(latin1('b'), Uint8Array.of(0), latin1('caf\xe9'))))
    expect(await readPngText(file.buffer)).toEqual({ a: 'first', b: 'café' })
  })

  it('stops at IEND and ignores chunks after it', async () => {
    const file = concat(png(text('a', '1')), text('late', 'x'))
    expect(await readPngText(file)).toEqual({ a: '1' })
  })

  it('refuses data that is not a PNG', async () => {
    await expect(readPngText(enc('{"nodes": []}'))).rejects.toThrow(PngError)
    await expect(readPngText(enc('{"nodes": []}'))).rejects.toThrow('not a PNG file')
  })

  it('refuses a truncated chunk', async () => {
    const file = png(text('prompt', 'x'.repeat(100)))
    await expect(readPngText(file.subarray(0, 60))).rejects.toThrow(/runs past the end/)
  })
})

describe('workflowFromPng', () => {
  it('prefers the UI workflow and falls back to the prompt', async () => {
    expect(await workflowFromPng(png(text('prompt', '{"1":{"class_type":"X"}}'), text('workflow', '{"nodes":[]}')))).toEqual({ nodes: [] })
    expect(await workflowFromPng(png(text('prompt', '{"1":{"class_type":"X"}}')))).toEqual({ 1: { class_type: 'X' } })
  })

  it('says what is missing or broken', async () => {
    await expect(workflowFromPng(png(text('Software', 'x')))).rejects.toThrow(/no embedded workflow/)
    await expect(workflowFromPng(png(text('workflow', '{oops')))).rejects.toThrow(/"workflow" chunk is not valid JSON/)
  })

  const example = sharedFile('workflows', 'comfyui_examples_z_image_turbo.png')
  it.skipIf(!example)('reads the official Z-Image example PNG', async () => {
    const texts = await readPngText(readFileSync(example))
    expect(Object.keys(texts)).toEqual(expect.arrayContaining(['prompt', 'workflow']))
    const wf = await workflowFromPng(readFileSync(example))
    expect(Array.isArray(wf.nodes)).toBe(true)
    expect(wf.nodes.some((n) => n.type === 'KSampler')).toBe(true)
  })
})
