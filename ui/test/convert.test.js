import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { WorkflowError, apiToWorkflow, detectWorkflow, mapWidgetValues, workflowToPrompt } from '../src/convert.js'
import { readPngText } from '../src/png.js'
import { defs, readJSON, repoDir, sharedFile } from './helpers.js'

const example = (name) => readJSON(join(repoDir, 'workflows', name))

// node builds a UI node; links are [id, origin, slot, target, slot, type].
const node = (id, type, extra = {}) => ({ id, type, mode: 0, inputs: [], outputs: [], widgets_values: [], ...extra })

describe('workflowToPrompt', () => {
  it('converts the bundled UI example to the bundled API example', () => {
    // image_invert.ui.json has a reroute, a bypassed node and a note on top of image_invert.json.
    expect(workflowToPrompt(example('image_invert.ui.json'), defs)).toEqual(example('image_invert.json'))
  })

  it('maps widgets by input order and skips control_after_generate values', () => {
    const wf = {
      nodes: [node(3, 'KSampler', { widgets_values: [42, 'randomize', 9, 1, 'euler', 'simple', 1] })],
      links: [],
    }
    expect(workflowToPrompt(wf, defs)['3'].inputs).toEqual({ seed: 42, steps: 9, cfg: 1, sampler_name: 'euler', scheduler: 'simple', denoise: 1 })
    // A file without the control value (an older frontend) keeps its positions.
    wf.nodes[0].widgets_values = [42, 9, 1, 'euler', 'simple', 1]
    expect(workflowToPrompt(wf, defs)['3'].inputs.steps).toBe(9)
  })

  it('skips the upload button value of image combos', () => {
    const wf = { nodes: [node(1, 'LoadImage', { widgets_values: ['cat.png', 'image'] })], links: [] }
    expect(workflowToPrompt(wf, defs)['1'].inputs).toEqual({ image: 'cat.png' })
    wf.nodes[0].widgets_values = ['cat.png']
    expect(workflowToPrompt(wf, defs)['1'].inputs).toEqual({ image: 'cat.png' })
  })

  it('reads object-form widgets_values and wraps list values', () => {
    expect(mapWidgetValues(defs.EmptyImage, { width: 8, height: 9, nope: 1 })).toEqual({ width: 8, height: 9 })
    const wf = { nodes: [node(1, 'PrimitiveString', { widgets_values: [['a', 'b']] })], links: [] }
    expect(workflowToPrompt(wf, defs)['1'].inputs).toEqual({ value: { __value__: ['a', 'b'] } })
  })

  it('inlines primitive nodes, follows reroutes and drops links from muted nodes', () => {
    const wf = {
      nodes: [
        node(1, 'PrimitiveNode', { outputs: [{ name: 'INT', type: 'INT', links: [1], widget: { name: 'width' } }], widgets_values: [320, 'fixed'] }),
        node(2, 'EmptyImage', {
          inputs: [{ name: 'width', type: 'INT', link: 1, widget: { name: 'width' } }],
          outputs: [{ name: 'IMAGE', type: 'IMAGE', links: [2] }],
          widgets_values: [64, 48, 1, 0],
        }),
        node(3, 'Reroute', { inputs: [{ name: '', type: '*', link: 2 }], outputs: [{ name: '', type: 'IMAGE', links: [3] }] }),
        node(4, 'SaveImage', { inputs: [{ name: 'images', type: 'IMAGE', link: 3 }], widgets_values: ['x'] }),
        node(5, 'EmptyImage', { mode: 2, outputs: [{ name: 'IMAGE', type: 'IMAGE', links: [4] }], widgets_values: [1, 1, 1, 0] }),
        node(6, 'ImageInvert', { inputs: [{ name: 'image', type: 'IMAGE', link: 4 }] }),
        node(7, 'Note', { widgets_values: ['hello'] }),
      ],
      links: [[1, 1, 0, 2, 0, 'INT'], [2, 2, 0, 3, 0, 'IMAGE'], [3, 3, 0, 4, 0, 'IMAGE'], [4, 5, 0, 6, 0, 'IMAGE']],
    }
    const p = workflowToPrompt(wf, defs)
    expect(Object.keys(p)).toEqual(['2', '4', '6'])
    expect(p['2'].inputs).toEqual({ width: 320, height: 48, batch_size: 1, color: 0 })
    expect(p['4'].inputs).toEqual({ images: ['2', 0], filename_prefix: 'x' })
    expect(p['6'].inputs).toEqual({})
    expect(p['2']._meta.title).toBe('Empty Image')
  })

  it('reads version 1 links and refuses subgraphs', () => {
    const wf = {
      version: 1,
      nodes: [node(1, 'EmptyImage', { outputs: [{ name: 'IMAGE', type: 'IMAGE', links: [7] }], widgets_values: [2, 2, 1, 0] }),
        node(2, 'ImageInvert', { inputs: [{ name: 'image', type: 'IMAGE', link: 7 }] })],
      links: [{ id: 7, origin_id: 1, origin_slot: 0, target_id: 2, target_slot: 0, type: 'IMAGE' }],
    }
    expect(workflowToPrompt(wf, defs)['2'].inputs).toEqual({ image: ['1', 0] })
    const sg = { nodes: [node(9, 'ab-cd')], links: [], definitions: { subgraphs: [{ id: 'ab-cd' }] } }
    expect(() => workflowToPrompt(sg, defs)).toThrow(WorkflowError)
    expect(() => workflowToPrompt(sg, defs)).toThrow(/subgraph/)
  })

  it('keeps unknown node types so the server can report them', () => {
    const p = workflowToPrompt({ nodes: [node(1, 'NotInstalled', { widgets_values: [1] })], links: [] }, defs)
    expect(p['1']).toEqual({ inputs: {}, class_type: 'NotInstalled', _meta: { title: 'NotInstalled' } })
  })

  const zimage = sharedFile('workflows', 'comfyui_examples_z_image_turbo.png')
  it.skipIf(!zimage)('converts the official Z-Image PNG workflow to the prompt embedded beside it', async () => {
    const texts = await readPngText(readFileSync(zimage))
    const want = JSON.parse(texts.prompt)
    const got = workflowToPrompt(JSON.parse(texts.workflow), defs)
    expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort())
    for (const id of Object.keys(want)) {
      expect(got[id].class_type, id).toBe(want[id].class_type)
      expect(got[id].inputs, `node ${id} (${want[id].class_type})`).toEqual(want[id].inputs)
    }
  })
})

describe('apiToWorkflow', () => {
  it('round-trips the bundled API example', () => {
    const api = example('image_invert.json')
    const ui = apiToWorkflow(api, defs)
    expect(ui.nodes.map((n) => n.id)).toEqual([1, 2, 3, 4])
    expect(ui.links).toHaveLength(3)
    // Laid out left to right by depth.
    expect(ui.nodes.map((n) => n.pos[0])).toEqual([0, 360, 720, 1080])
    expect(workflowToPrompt(ui, defs)).toEqual(api)
  })

  it('puts control and upload values where the editor expects them and renumbers odd ids', () => {
    const api = {
      '57:3': { class_type: 'KSampler', inputs: { seed: 7, steps: 4, cfg: 1, sampler_name: 'euler', scheduler: 'simple', denoise: 1, model: ['9', 0] } },
      9: { class_type: 'UNETLoader', inputs: { unet_name: 'z.safetensors', weight_dtype: 'default' } },
      2: { class_type: 'LoadImage', inputs: { image: 'cat.png' } },
    }
    const ui = apiToWorkflow(api, defs)
    const ks = ui.nodes.find((n) => n.type === 'KSampler')
    expect(ks.id).toBe(10)
    expect(ks.widgets_values).toEqual([7, 'fixed', 4, 1, 'euler', 'simple', 1])
    expect(ui.nodes.find((n) => n.type === 'LoadImage').widgets_values).toEqual(['cat.png', 'image'])
    const back = workflowToPrompt(ui, defs)
    expect(back['10'].inputs).toEqual({ model: ['9', 0], seed: 7, steps: 4, cfg: 1, sampler_name: 'euler', scheduler: 'simple', denoise: 1 })
    expect(back['2'].inputs).toEqual({ image: 'cat.png' })
  })

  it('refuses an empty prompt', () => {
    expect(() => apiToWorkflow({}, defs)).toThrow(/no nodes/)
  })
})

describe('detectWorkflow', () => {
  it('recognises UI workflows, API prompts and request bodies', () => {
    expect(detectWorkflow({ nodes: [] }).kind).toBe('ui')
    expect(detectWorkflow({ 1: { class_type: 'X', inputs: {} } }).kind).toBe('api')
    expect(detectWorkflow({ prompt: { 1: { class_type: 'X' } } }).kind).toBe('api')
    const body = { prompt: { 1: { class_type: 'X' } }, extra_data: { extra_pnginfo: { workflow: { nodes: [1] } } } }
    expect(detectWorkflow(body)).toEqual({ kind: 'ui', workflow: { nodes: [1] } })
  })

  it('says why other JSON is not a workflow', () => {
    expect(() => detectWorkflow([])).toThrow(/expected a JSON object/)
    expect(() => detectWorkflow({ a: 1 })).toThrow(/neither a ComfyUI workflow/)
  })
})
