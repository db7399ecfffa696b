// The canvas nodes (litegraph, which runs without a DOM for graphs) serialize to workflows that
// convert to the same API prompts as the files they were loaded from.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { LGraph, LiteGraph } from '@comfyorg/litegraph'
import { beforeAll, describe, expect, it } from 'vitest'
import { workflowToPrompt } from '../src/convert.js'
import { applyControlAfterGenerate, loadWorkflow, registerNodeTypes, serializeWorkflow } from '../src/graph.js'
import { readPngText } from '../src/png.js'
import { defs, readJSON, repoDir, sharedFile } from './helpers.js'

const hooks = { onWidgetChange() {}, onUpload() {}, onImageClick() {}, isExecuting: () => false }
const fakeCanvas = (graph) => ({ graph, ds: { scale: 1, offset: [0, 0], fitToBounds() {} }, setDirty() {} })
const example = (name) => readJSON(join(repoDir, 'workflows', name))
const flush = () => new Promise((r) => setTimeout(r, 0))

function load(workflow) {
  const graph = new LGraph()
  const canvas = fakeCanvas(graph)
  const missing = loadWorkflow(graph, canvas, workflow)
  return { graph, canvas, missing }
}

beforeAll(() => registerNodeTypes(defs, hooks))

describe('canvas nodes', () => {
  it('lay out widgets like the ComfyUI editor', () => {
    const ks = LiteGraph.createNode('KSampler')
    expect(ks.widgets.map((w) => w.name)).toEqual(['seed', 'control_after_generate', 'steps', 'cfg', 'sampler_name', 'scheduler', 'denoise'])
    expect(ks.inputs.filter((i) => !i.widget).map((i) => [i.name, i.type])).toEqual([['model', 'MODEL'], ['positive', 'CONDITIONING'], ['negative', 'CONDITIONING'], ['latent_image', 'LATENT']])
    expect(ks.outputs.map((o) => o.type)).toEqual(['LATENT'])
    expect(ks.widgets.find((w) => w.name === 'steps').value).toBe(20)
    const li = LiteGraph.createNode('LoadImage')
    expect(li.widgets.map((w) => [w.name, w.value])).toEqual([['image', ''], ['upload', 'image']])
    expect(li.serialize().widgets_values).toEqual(['', 'image'])
  })

  it('round-trip the bundled UI example through the graph', () => {
    const { graph, missing } = load(example('image_invert.ui.json'))
    expect(missing).toEqual([])
    const wf = serializeWorkflow(graph, fakeCanvas(graph))
    expect(wf.nodes).toHaveLength(7)
    expect(workflowToPrompt(wf, defs)).toEqual(example('image_invert.json'))
  })

  it('send edited widget values and follow newly drawn links', () => {
    const { graph } = load(example('image_invert.ui.json'))
    const canvasNode = graph.getNodeById(1)
    canvasNode.widgets.find((w) => w.name === 'width').value = 300
    const invert = graph.getNodeById(2)
    const save = graph.getNodeById(4)
    invert.connect(0, save, 0) // skip the reroute, bypass and scale
    const p = workflowToPrompt(serializeWorkflow(graph, fakeCanvas(graph)), defs)
    expect(p['1'].inputs.width).toBe(300)
    expect(p['4'].inputs.images).toEqual(['2', 0])
  })

  it('keep control values in place and apply them after queueing', () => {
    const wf = {
      nodes: [{ id: 3, type: 'KSampler', pos: [0, 0], size: [300, 200], mode: 0, inputs: [], outputs: [], widgets_values: [5, 'increment', 9, 1, 'euler', 'simple', 1] }],
      links: [],
      version: 0.4,
    }
    const { graph } = load(wf)
    expect(workflowToPrompt(serializeWorkflow(graph, fakeCanvas(graph)), defs)['3'].inputs.seed).toBe(5)
    applyControlAfterGenerate(graph)
    const after = serializeWorkflow(graph, fakeCanvas(graph))
    expect(after.nodes[0].widgets_values.slice(0, 3)).toEqual([6, 'increment', 9])
    // An older file without the control value keeps its positions.
    const old = load({ ...wf, nodes: [{ ...wf.nodes[0], widgets_values: [5, 9, 1, 'euler', 'simple', 1] }] })
    const ks = old.graph.getNodeById(3)
    expect(ks.widgets.find((w) => w.name === 'steps').value).toBe(9)
    expect(ks.widgets.find((w) => w.name === 'control_after_generate').value).toBe('randomize')
  })

  it('build primitive nodes from the widget they drive', async () => {
    const wf = {
      nodes: [
        { id: 1, type: 'PrimitiveNode', pos: [0, 0], size: [200, 80], mode: 0, inputs: [], outputs: [{ name: 'INT', type: 'INT', links: [1], widget: { name: 'width' } }], widgets_values: [320, 'fixed'] },
        { id: 2, type: 'EmptyImage', pos: [300, 0], size: [300, 130], mode: 0, inputs: [{ name: 'width', type: 'INT', link: 1, widget: { name: 'width' } }], outputs: [{ name: 'IMAGE', type: 'IMAGE', links: [2] }], widgets_values: [64, 48, 1, 0] },
        { id: 3, type: 'SaveImage', pos: [700, 0], size: [300, 300], mode: 0, inputs: [{ name: 'images', type: 'IMAGE', link: 2 }], outputs: [], widgets_values: ['p'] },
      ],
      links: [[1, 1, 0, 2, 0, 'INT'], [2, 2, 0, 3, 0, 'IMAGE']],
      version: 0.4,
    }
    const { graph } = load(wf)
    await flush()
    const prim = graph.getNodeById(1)
    expect(prim.widgets.map((w) => [w.name, w.value])).toEqual([['width', 320]])
    prim.widgets[0].value = 512
    const p = workflowToPrompt(serializeWorkflow(graph, fakeCanvas(graph)), defs)
    expect(p['2'].inputs).toEqual({ width: 512, height: 48, batch_size: 1, color: 0 })
    expect(Object.keys(p)).toEqual(['2', '3'])
  })

  it('keep unknown node types and report them', () => {
    const { graph, missing } = load({ nodes: [{ id: 1, type: 'NotInstalled', pos: [0, 0], size: [100, 50], mode: 0, widgets_values: [1] }], links: [], version: 0.4 })
    expect(missing).toEqual(['NotInstalled'])
    expect(serializeWorkflow(graph, fakeCanvas(graph)).nodes[0].widgets_values).toEqual([1])
  })

  const zimage = sharedFile('workflows', 'comfyui_examples_z_image_turbo.png')
  it.skipIf(!zimage)('queue the official Z-Image PNG workflow as the prompt embedded beside it', async () => {
    const texts = await readPngText(readFileSync(zimage))
    const { graph } = load(JSON.parse(texts.workflow))
    await flush()
    const got = workflowToPrompt(serializeWorkflow(graph, fakeCanvas(graph)), defs)
    const want = JSON.parse(texts.prompt)
    expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort())
    for (const id of Object.keys(want)) expect(got[id].inputs, id).toEqual(want[id].inputs)
  })
})
