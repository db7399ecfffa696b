// Workflow formats: UI (the editor's graph, versions 0.4 and 1) → API prompt, like the ComfyUI
// frontend's graphToPrompt, and API prompt → UI workflow with an automatic layout. Pure
// functions over JSON and the /object_info definitions.

import {
  CONTROL_VALUES, VIRTUAL_TYPES, defaultValue, nodeInputs, nodeOutputs, typesCompatible, widgetLayout,
} from './nodedefs.js'

const MODE_NEVER = 2
const MODE_BYPASS = 4

/** WorkflowError is a workflow the UI cannot convert; its message is for the user. */
export class WorkflowError extends Error {}

function wrapList(v) {
  return Array.isArray(v) ? { __value__: v } : v
}

function isLink(v) {
  return Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'number'
}

/** compareIDs sorts node ids numerically when both are numbers, else as strings. */
export function compareIDs(a, b) {
  const na = Number(a)
  const nb = Number(b)
  if (String(a) !== '' && String(b) !== '' && Number.isFinite(na) && Number.isFinite(nb)) return na - nb
  return String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0
}

/** readLinks indexes a UI workflow's links (arrays in 0.4, objects in 1) by id. */
export function readLinks(workflow) {
  const links = new Map()
  for (const l of workflow.links || []) {
    if (!l) continue
    if (Array.isArray(l)) {
      if (l.length < 5) continue
      links.set(String(l[0]), { id: l[0], origin: String(l[1]), slot: Number(l[2]), target: String(l[3]), targetSlot: Number(l[4]), type: l[5] })
    } else if (typeof l === 'object') {
      links.set(String(l.id), { id: l.id, origin: String(l.origin_id), slot: Number(l.origin_slot), target: String(l.target_id), targetSlot: Number(l.target_slot), type: l.type })
    }
  }
  return links
}

/**
 * mapWidgetValues assigns a node's widgets_values to its widget inputs by input order, skipping
 * the control_after_generate value after seed-like inputs and the upload button value after
 * image_upload combos.
 */
export function mapWidgetValues(def, values) {
  const out = {}
  if (values && !Array.isArray(values) && typeof values === 'object') {
    for (const input of nodeInputs(def)) {
      if (input.widget && input.name in values) out[input.name] = values[input.name]
    }
    return out
  }
  if (!Array.isArray(values)) return out
  const widgets = nodeInputs(def).filter((i) => i.widget)
  let pos = 0
  widgets.forEach((input, wi) => {
    if (pos >= values.length) return
    out[input.name] = values[pos++]
    const remaining = widgets.length - wi - 1
    if (input.control && pos < values.length && CONTROL_VALUES.includes(values[pos])) pos++
    if (input.upload && values.length - pos > remaining) pos++
  })
  return out
}

/**
 * workflowToPrompt converts a UI workflow to an API prompt. defs is /object_info.
 * Muted (mode 2) and bypassed (mode 4) nodes are not emitted; links are followed through
 * reroutes and bypassed nodes; a PrimitiveNode's value is inlined; links from muted nodes are
 * dropped. Subgraphs are refused with a WorkflowError.
 * @returns {Record<string, {inputs: object, class_type: string, _meta: {title: string}}>}
 */
export function workflowToPrompt(workflow, defs) {
  if (!workflow || !Array.isArray(workflow.nodes)) throw new WorkflowError('not a UI workflow: "nodes" is missing')
  const subgraphs = new Set(((workflow.definitions && workflow.definitions.subgraphs) || []).map((s) => String(s && s.id)))
  const links = readLinks(workflow)
  const nodes = new Map()
  for (const n of workflow.nodes) {
    if (!n || n.id === undefined || n.id === null) continue
    if (subgraphs.has(String(n.type))) {
      throw new WorkflowError(`node ${n.id} is a subgraph; subgraphs are not supported yet — unpack it in ComfyUI (right click → Unpack Subgraph) and save again`)
    }
    nodes.set(String(n.id), n)
  }

  const resolve = (linkID, depth) => {
    if (depth > 1000 || linkID === null || linkID === undefined) return undefined
    const l = links.get(String(linkID))
    if (!l) return undefined
    const origin = nodes.get(l.origin)
    if (!origin) return undefined
    if (origin.type === 'Reroute') {
      const inp = (origin.inputs || []).find((i) => i && i.link !== null && i.link !== undefined)
      return inp ? resolve(inp.link, depth + 1) : undefined
    }
    if (origin.type === 'PrimitiveNode') {
      const vals = origin.widgets_values
      return Array.isArray(vals) && vals.length > 0 ? { value: wrapList(vals[0]) } : undefined
    }
    if (origin.mode === MODE_BYPASS) {
      const ins = origin.inputs || []
      const same = ins[l.slot]
      if (same && same.link !== null && same.link !== undefined && typesCompatible(same.type, l.type)) return resolve(same.link, depth + 1)
      for (const i of ins) {
        if (i && i.link !== null && i.link !== undefined && typesCompatible(i.type, l.type)) return resolve(i.link, depth + 1)
      }
      return undefined
    }
    if (origin.mode === MODE_NEVER || VIRTUAL_TYPES.has(origin.type)) return undefined
    return { value: [String(origin.id), l.slot] }
  }

  const prompt = {}
  const ids = [...nodes.keys()].sort(compareIDs)
  for (const id of ids) {
    const n = nodes.get(id)
    if (VIRTUAL_TYPES.has(n.type) || n.mode === MODE_NEVER || n.mode === MODE_BYPASS) continue
    const def = defs[n.type]
    const inputs = {}
    if (def) {
      const vals = mapWidgetValues(def, n.widgets_values)
      for (const k of Object.keys(vals)) inputs[k] = wrapList(vals[k])
    }
    for (const inp of n.inputs || []) {
      if (!inp || inp.link === null || inp.link === undefined) continue
      const r = resolve(inp.link, 0)
      if (r === undefined) delete inputs[inp.name]
      else inputs[inp.name] = r.value
    }
    const ordered = {}
    if (def) {
      for (const input of nodeInputs(def)) if (input.name in inputs) ordered[input.name] = inputs[input.name]
    }
    for (const k of Object.keys(inputs)) if (!(k in ordered)) ordered[k] = inputs[k]
    const title = n.title || (def && def.display_name) || n.type
    prompt[id] = { inputs: ordered, class_type: n.type, _meta: { title } }
  }
  return prompt
}

/**
 * apiToWorkflow builds a UI workflow (version 0.4) from an API prompt: nodes with their widget
 * values in the editor's layout, links for every [id, slot] input, and a left-to-right layout by
 * depth. Node ids that are not integers are renumbered.
 */
export function apiToWorkflow(prompt, defs) {
  if (!prompt || typeof prompt !== 'object') throw new WorkflowError('not an API prompt')
  const srcIDs = Object.keys(prompt).filter((k) => prompt[k] && typeof prompt[k] === 'object').sort(compareIDs)
  if (srcIDs.length === 0) throw new WorkflowError('the prompt has no nodes')
  const idMap = new Map()
  let next = 1
  for (const id of srcIDs) if (/^[1-9][0-9]*$/.test(id)) next = Math.max(next, Number(id) + 1)
  for (const id of srcIDs) idMap.set(id, /^[1-9][0-9]*$/.test(id) ? Number(id) : next++)

  // Depth = longest chain of links from a node without linked inputs.
  const depth = new Map()
  const depthOf = (id, seen) => {
    if (depth.has(id)) return depth.get(id)
    if (seen.has(id)) return 0
    seen.add(id)
    let d = 0
    const inputs = prompt[id].inputs || {}
    for (const v of Object.values(inputs)) {
      if (isLink(v) && prompt[v[0]]) d = Math.max(d, depthOf(v[0], seen) + 1)
    }
    seen.delete(id)
    depth.set(id, d)
    return d
  }
  for (const id of srcIDs) depthOf(id, new Set())

  const nodes = []
  const byID = new Map()
  const columns = new Map()
  for (const id of srcIDs) {
    const src = prompt[id]
    const def = defs[src.class_type]
    const given = src.inputs || {}
    const inputs = []
    const outputs = []
    const widgetsValues = []
    if (def) {
      for (const input of nodeInputs(def)) {
        const slot = { name: input.name, type: input.type, link: null }
        if (input.widget) slot.widget = { name: input.name }
        inputs.push(slot)
      }
      for (const w of widgetLayout(def)) {
        if (w.kind === 'control') widgetsValues.push('fixed')
        else if (w.kind === 'upload') widgetsValues.push('image')
        else {
          let v = given[w.input.name]
          if (v && typeof v === 'object' && !Array.isArray(v) && '__value__' in v) v = v.__value__
          widgetsValues.push(v === undefined || isLink(v) ? defaultValue(w.input) : v)
        }
      }
      for (const o of nodeOutputs(def)) outputs.push({ name: o.name, type: o.type, links: [] })
    } else {
      for (const [name, v] of Object.entries(given)) if (isLink(v)) inputs.push({ name, type: '*', link: null })
    }
    const d = depth.get(id) || 0
    const col = columns.get(d) || []
    const height = 60 + 24 * Math.max(inputs.filter((i) => !i.widget).length, outputs.length) + 24 * widgetsValues.length
    const y = col.reduce((acc, h) => acc + h + 40, 0)
    col.push(height)
    columns.set(d, col)
    const node = {
      id: idMap.get(id),
      type: src.class_type,
      pos: [d * 360, y],
      size: [300, height],
      flags: {},
      order: nodes.length,
      mode: 0,
      inputs,
      outputs,
      properties: { 'Node name for S&R': src.class_type },
      widgets_values: widgetsValues,
    }
    if (src._meta && typeof src._meta.title === 'string' && src._meta.title) node.title = src._meta.title
    nodes.push(node)
    byID.set(id, node)
  }

  const links = []
  let linkID = 0
  for (const id of srcIDs) {
    const target = byID.get(id)
    const given = prompt[id].inputs || {}
    for (const [name, v] of Object.entries(given)) {
      if (!isLink(v)) continue
      const origin = byID.get(v[0])
      if (!origin) continue
      let slotIndex = target.inputs.findIndex((i) => i.name === name)
      if (slotIndex < 0) {
        target.inputs.push({ name, type: '*', link: null })
        slotIndex = target.inputs.length - 1
      }
      while (origin.outputs.length <= v[1]) origin.outputs.push({ name: '*', type: '*', links: [] })
      const out = origin.outputs[v[1]]
      const type = out.type !== '*' ? out.type : target.inputs[slotIndex].type
      linkID++
      links.push([linkID, origin.id, v[1], target.id, slotIndex, type])
      target.inputs[slotIndex].link = linkID
      out.links.push(linkID)
    }
  }
  return {
    last_node_id: Math.max(...nodes.map((n) => n.id)),
    last_link_id: linkID,
    nodes,
    links,
    groups: [],
    config: {},
    extra: { ds: { scale: 1, offset: [0, 0] } },
    version: 0.4,
  }
}

/**
 * detectWorkflow tells what a parsed JSON document is: {kind: 'ui', workflow}, {kind: 'api',
 * prompt} (also from a POST /prompt body or a queue item), or throws a WorkflowError saying why
 * it is neither.
 */
export function detectWorkflow(doc) {
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new WorkflowError('the file is not a workflow (expected a JSON object)')
  if (Array.isArray(doc.nodes)) return { kind: 'ui', workflow: doc }
  if (doc.extra_pnginfo && doc.extra_pnginfo.workflow && Array.isArray(doc.extra_pnginfo.workflow.nodes)) {
    return { kind: 'ui', workflow: doc.extra_pnginfo.workflow }
  }
  if (doc.workflow && Array.isArray(doc.workflow.nodes)) return { kind: 'ui', workflow: doc.workflow }
  if (doc.prompt && typeof doc.prompt === 'object' && !Array.isArray(doc.prompt)) {
    if (doc.extra_data && doc.extra_data.extra_pnginfo && doc.extra_data.extra_pnginfo.workflow &&
      Array.isArray(doc.extra_data.extra_pnginfo.workflow.nodes)) {
      return { kind: 'ui', workflow: doc.extra_data.extra_pnginfo.workflow }
    }
    return detectWorkflow(doc.prompt)
  }
  const values = Object.values(doc)
  if (values.length > 0 && values.every((v) => v && typeof v === 'object' && typeof v.class_type === 'string')) {
    return { kind: 'api', prompt: doc }
  }
  throw new WorkflowError('the file is neither a ComfyUI workflow (with "nodes") nor an API prompt (nodes with "class_type")')
}
