// The canvas editor: litegraph node types built from /object_info, the editor-only nodes (Note,
// Reroute, PrimitiveNode), loading and saving workflows, and the execution decorations drawn on
// nodes (running outline, progress bar, previews and output images, error messages).

import { LGraph, LGraphCanvas, LGraphNode, LiteGraph } from '@comfyorg/litegraph'
import '@comfyorg/litegraph/style.css'
import { evaluate } from './arith.js'
import { CONTROL_VALUES, defaultValue, nodeInputs, nodeOutputs, parseInput, precisionOf, widgetLayout } from './nodedefs.js'

/** Link and slot colours per type (ComfyUI's palette, so graphs look familiar). */
export const TYPE_COLORS = {
  MODEL: '#B39DDB',
  CLIP: '#FFD500',
  VAE: '#FF6E6E',
  CONDITIONING: '#FFA931',
  LATENT: '#FF9CF9',
  IMAGE: '#64B5F6',
  MASK: '#81C784',
  CLIP_VISION: '#A8DADC',
  CLIP_VISION_OUTPUT: '#ad7452',
  CONTROL_NET: '#00D78D',
  STYLE_MODEL: '#C2FFAE',
  UPSCALE_MODEL: '#9C27B0',
  INT: '#29699C',
  FLOAT: '#8BC34A',
  STRING: '#A1887F',
  BOOLEAN: '#E91E63',
  NOISE: '#B0B0B0',
  SAMPLER: '#ECB4B4',
  SIGMAS: '#CDFFCD',
  GUIDER: '#66FFFF',
}

const IMAGE_MARGIN = 6
const MIN_IMAGE_AREA = 200

/** addValueWidget adds the canvas widget of one /object_info widget input. */
function addValueWidget(node, input, onChange) {
  const o = input.options
  const value = defaultValue(input)
  const cb = (v) => onChange(node, input.name, v)
  let w
  if (input.combo) {
    w = node.addWidget('combo', input.name, value, cb, { values: input.combo.slice() })
  } else if (input.type === 'INT') {
    w = node.addWidget('number', input.name, value, cb, {
      min: o.min ?? -Number.MAX_SAFE_INTEGER, max: o.max ?? Number.MAX_SAFE_INTEGER,
      step2: o.step ?? 1, precision: 0, round: 1,
    })
  } else if (input.type === 'FLOAT') {
    const precision = precisionOf(o)
    w = node.addWidget('number', input.name, value, cb, {
      min: o.min ?? -Infinity, max: o.max ?? Infinity, step2: o.step ?? 10 ** -precision, precision,
      round: o.round ?? 10 ** -precision,
    })
  } else if (input.type === 'BOOLEAN') {
    w = node.addWidget('toggle', input.name, value, cb, { on: o.label_on ?? 'true', off: o.label_off ?? 'false' })
  } else {
    w = node.addWidget('text', input.name, value, cb, { multiline: Boolean(o.multiline) })
  }
  if (o.tooltip) w.tooltip = o.tooltip
  w.inputSpec = input
  return w
}

/**
 * setupComfyNode adds a definition's widgets in the editor's layout (value, control_after_generate,
 * upload button) and the sockets: link inputs, and a socket for every widget input so a primitive
 * or another node can drive it.
 */
function setupComfyNode(node, def, hooks) {
  const controls = []
  for (const w of widgetLayout(def)) {
    if (w.kind === 'value') {
      addValueWidget(node, w.input, hooks.onWidgetChange)
    } else if (w.kind === 'control') {
      const target = node.widgets[node.widgets.length - 1]
      const c = node.addWidget('combo', 'control_after_generate', 'randomize', () => {}, { values: CONTROL_VALUES })
      c.controlTarget = target
      c.tooltip = 'what happens to the seed after each queued run'
      controls.push(c)
    } else if (w.kind === 'upload') {
      const target = node.widgets[node.widgets.length - 1]
      const b = node.addWidget('button', 'upload', 'image', () => hooks.onUpload(node, target), {})
      b.label = 'choose file to upload'
      b.isUpload = true
    }
  }
  for (const input of nodeInputs(def)) {
    if (!input.widget) node.addInput(input.name, input.type, input.optional ? { shape: LiteGraph.CIRCLE_SHAPE } : {})
  }
  for (const input of nodeInputs(def)) {
    if (input.widget) node.addInput(input.name, input.type, { widget: { name: input.name } })
  }
  for (const out of nodeOutputs(def)) {
    node.addOutput(out.name, out.type, out.isList ? { shape: LiteGraph.GRID_SHAPE } : {})
  }
  const size = node.computeSize()
  size[0] = Math.max(size[0], def.output_node ? 260 : 220)
  if (def.output_node) size[1] += MIN_IMAGE_AREA
  node.size = size
}

/**
 * applyWidgetValues sets widget values from widgets_values by the same rules as the API
 * conversion (convert.js), so a file without control values keeps its positions.
 */
export function applyWidgetValues(node, values) {
  if (!node.widgets || values === undefined || values === null) return
  // litegraph's configure assigned the values by position, which is off by one for files
  // without control values: start again from the defaults.
  for (const w of node.widgets) {
    if (w.inputSpec) w.value = defaultValue(w.inputSpec)
    else if (w.controlTarget) w.value = CONTROL_VALUES.includes(w.value) ? w.value : 'randomize'
    else if (w.isUpload) w.value = 'image'
  }
  if (!Array.isArray(values)) {
    for (const w of node.widgets) if (w.inputSpec && w.name in values) w.value = values[w.name]
    return
  }
  const valueWidgets = node.widgets.filter((w) => w.inputSpec)
  let pos = 0
  valueWidgets.forEach((w, wi) => {
    if (pos >= values.length) return
    w.value = values[pos++]
    const i = node.widgets.indexOf(w)
    const next = node.widgets[i + 1]
    const remaining = valueWidgets.length - wi - 1
    if (next && next.controlTarget === w && pos < values.length && CONTROL_VALUES.includes(values[pos])) next.value = values[pos++]
    if (w.inputSpec.upload && values.length - pos > remaining) pos++
  })
}

/** drawImages draws a node's images (outputs or the live preview) below its widgets. */
function drawImages(node, ctx) {
  const imgs = node.previewImage ? [node.previewImage] : node.imgs
  if (!imgs || imgs.length === 0 || node.flags.collapsed) return
  let top = LiteGraph.NODE_SLOT_HEIGHT * Math.max(node.inputs.filter((i) => !i.widget).length, node.outputs.length, 1)
  for (const w of node.widgets || []) {
    const y = (w.y ?? 0) + (w.computedHeight ?? LiteGraph.NODE_WIDGET_HEIGHT)
    top = Math.max(top, y)
  }
  top += IMAGE_MARGIN
  if (node.size[1] - top < MIN_IMAGE_AREA && !node.grewForImages) {
    // Make room once for the images; the user may resize the node afterwards.
    node.grewForImages = true
    node.size[1] = top + MIN_IMAGE_AREA + IMAGE_MARGIN
    node.setDirtyCanvas(true, true)
  }
  const w = node.size[0] - 2 * IMAGE_MARGIN
  const h = node.size[1] - top - IMAGE_MARGIN
  if (h < 24) return
  const n = imgs.length
  const cols = Math.ceil(Math.sqrt(n))
  const rows = Math.ceil(n / cols)
  const cw = w / cols
  const ch = h / rows
  node.imageRects = []
  imgs.forEach((img, i) => {
    if (!img.complete || !img.naturalWidth) return
    const s = Math.min(cw / img.naturalWidth, ch / img.naturalHeight)
    const dw = img.naturalWidth * s
    const dh = img.naturalHeight * s
    const x = IMAGE_MARGIN + (i % cols) * cw + (cw - dw) / 2
    const y = top + Math.floor(i / cols) * ch + (ch - dh) / 2
    ctx.drawImage(img, x, y, dw, dh)
    node.imageRects.push([x, y, dw, dh, i])
  })
  if (node.previewImage && node.previewLabel) {
    ctx.fillStyle = '#000a'
    ctx.fillRect(IMAGE_MARGIN, top, 90, 18)
    ctx.fillStyle = '#fff'
    ctx.font = '12px sans-serif'
    ctx.textAlign = 'left'
    ctx.fillText(node.previewLabel, IMAGE_MARGIN + 4, top + 13)
  }
}

/** drawMode tints bypassed (purple) and muted (grey) nodes, as the ComfyUI editor does. */
function drawMode(node, ctx) {
  if (node.mode !== 2 && node.mode !== 4) return
  const th = LiteGraph.NODE_TITLE_HEIGHT
  ctx.fillStyle = node.mode === 4 ? '#ff00ff40' : '#80808060'
  ctx.fillRect(0, -th, node.size[0], node.flags.collapsed ? th : node.size[1] + th)
}

/** drawErrors writes a node's validation or execution errors under it. */
function drawErrors(node, ctx) {
  if (!node.errorLines || node.errorLines.length === 0) return
  ctx.font = '12px sans-serif'
  ctx.textAlign = 'left'
  let y = node.size[1] + 18
  for (const line of node.errorLines.slice(0, 3)) {
    const max = Math.max(20, Math.floor(node.size[0] / 6.5))
    const text = line.length > max ? line.slice(0, max - 1) + '…' : line
    const width = ctx.measureText(text).width
    ctx.fillStyle = '#300d'
    ctx.fillRect(-2, y - 13, width + 8, 17)
    ctx.fillStyle = '#ff8080'
    ctx.fillText(text, 2, y)
    y += 18
  }
}

/** decorate adds the execution state drawing and image clicks to a node instance. */
function decorate(node, hooks) {
  node.strokeStyles.running = function () {
    if (hooks.isExecuting(this)) return { color: '#00e070', lineWidth: 3, padding: 8 }
    return undefined
  }
  const prevDraw = node.onDrawForeground
  node.onDrawForeground = function (ctx, canvas, el) {
    prevDraw?.call(this, ctx, canvas, el)
    drawImages(this, ctx)
    drawMode(this, ctx)
    drawErrors(this, ctx)
  }
  node.onDblClick = function (e, pos) {
    for (const [x, y, w, h, i] of this.imageRects || []) {
      if (pos[0] >= x && pos[0] <= x + w && pos[1] >= y && pos[1] <= y + h) {
        hooks.onImageClick(this, i)
        return
      }
    }
  }
}

/** registerNodeTypes registers a litegraph class per /object_info definition. */
export function registerNodeTypes(defs, hooks) {
  for (const [name, def] of Object.entries(defs)) {
    class ComfyNode extends LGraphNode {
      static title = def.display_name || name
      static comfyClass = name
      static nodeData = def
      constructor(title) {
        super(title ?? ComfyNode.title)
        this.comfyClass = name
        this.serialize_widgets = true
        setupComfyNode(this, def, hooks)
        decorate(this, hooks)
      }

      configure(info) {
        super.configure(info)
        // Widget values by the conversion's rules, and sockets that an older file lacks.
        applyWidgetValues(this, info.widgets_values)
        for (const input of nodeInputs(def)) {
          if (!this.inputs.some((i) => i.name === input.name)) {
            this.addInput(input.name, input.type, input.widget ? { widget: { name: input.name } } : {})
          }
        }
      }
    }
    LiteGraph.registerNodeType(name, ComfyNode)
    ComfyNode.category = def.category || 'other'
    ComfyNode.description = def.description
  }
  registerEditorNodes(defs, hooks)
}

/** The editor-only nodes that shared workflows contain. */
function registerEditorNodes(defs, hooks) {
  class NoteNode extends LGraphNode {
    static title = 'Note'
    constructor(title) {
      super(title ?? 'Note')
      this.isVirtualNode = true
      this.serialize_widgets = true
      this.color = '#432'
      this.bgcolor = '#653'
      this.addWidget('text', 'text', '', () => {}, { multiline: true })
      this.size = [300, 100]
    }
  }
  LiteGraph.registerNodeType('Note', NoteNode)
  NoteNode.category = 'utils'
  class MarkdownNoteNode extends NoteNode {
    static title = 'Markdown Note'
  }
  LiteGraph.registerNodeType('MarkdownNote', MarkdownNoteNode)
  MarkdownNoteNode.category = 'utils'

  class RerouteNode extends LGraphNode {
    static title = 'Reroute'
    constructor(title) {
      super(title ?? 'Reroute')
      this.isVirtualNode = true
      this.addInput('', '*')
      this.addOutput('', '*')
      this.size = [75, 26]
      this.collapsable = false
    }
  }
  RerouteNode.title_mode = LiteGraph.NO_TITLE
  LiteGraph.registerNodeType('Reroute', RerouteNode)
  RerouteNode.category = 'utils'

  class PrimitiveNode extends LGraphNode {
    static title = 'Primitive'
    constructor(title) {
      super(title ?? 'Primitive')
      this.isVirtualNode = true
      this.serialize_widgets = true
      this.addOutput('connect to widget input', '*')
      decorate(this, hooks)
    }

    configure(info) {
      super.configure(info)
      this.pendingValues = info.widgets_values
    }

    onSerialize(o) {
      if ((!this.widgets || this.widgets.length === 0) && this.pendingValues) o.widgets_values = this.pendingValues
    }

    onConnectionsChange() {
      // Built when the graph's links are known (after loading, or when the user connects it).
      queueMicrotask(() => this.buildWidget())
    }

    /** buildWidget creates the widget of the first widget input this node drives. */
    buildWidget() {
      if (this.widgets && this.widgets.length) return
      const out = this.outputs[0]
      if (!this.graph || !out || !out.links || out.links.length === 0) return
      const link = this.graph._links.get(out.links[0])
      const target = link && this.graph.getNodeById(link.target_id)
      const slot = target && target.inputs[link.target_slot]
      const def = target && defs[target.comfyClass || target.type]
      if (!slot || !def) return
      const wname = (slot.widget && slot.widget.name) || slot.name
      const entry = (def.input.required && def.input.required[wname]) || (def.input.optional && def.input.optional[wname])
      if (!entry) return
      const input = parseInput(wname, entry)
      if (!input.widget) return
      out.type = input.type
      out.name = input.type
      out.widget = { name: wname }
      addValueWidget(this, input, hooks.onWidgetChange)
      if (input.control) {
        const c = this.addWidget('combo', 'control_after_generate', 'fixed', () => {}, { values: CONTROL_VALUES })
        c.controlTarget = this.widgets[0]
      }
      applyWidgetValues(this, this.pendingValues)
      this.pendingValues = undefined
      this.size = [Math.max(this.size[0], 220), this.computeSize()[1]]
      this.setDirtyCanvas(true, true)
    }
  }
  LiteGraph.registerNodeType('PrimitiveNode', PrimitiveNode)
  PrimitiveNode.category = 'utils'
}

/**
 * safeNumberPrompts: litegraph's number widget passes what the user types to eval (for "512*2"),
 * which the page's Content-Security-Policy forbids. Number prompts get the typed text evaluated
 * by arith.js instead and hand the widget a number (eval returns a non-string unchanged, so no
 * code is compiled); text that is not arithmetic becomes NaN, which the widget ignores.
 */
function safeNumberPrompts() {
  const prompt = LGraphCanvas.prototype.prompt
  if (prompt.safeNumbers) return
  LGraphCanvas.prototype.prompt = function (title, value, callback, event, multiline) {
    let cb = callback
    if (typeof value === 'number' && typeof callback === 'function') {
      cb = (text) => {
        let n
        try {
          n = evaluate(text)
        } catch {
          n = NaN
        }
        callback(n)
      }
    }
    return prompt.call(this, title, value, cb, event, multiline)
  }
  LGraphCanvas.prototype.prompt.safeNumbers = true
}

/** createEditor sets up litegraph's look and a canvas on el. */
export function createEditor(el) {
  safeNumberPrompts()
  LiteGraph.release_link_on_empty_shows_menu = true
  LiteGraph.alt_drag_do_clone_nodes = true
  LiteGraph.saveViewportWithGraph = true
  Object.assign(LGraphCanvas.link_type_colors, TYPE_COLORS)
  const graph = new LGraph()
  const canvas = new LGraphCanvas(el, graph)
  Object.assign(canvas.default_connection_color_byType, TYPE_COLORS)
  canvas.render_canvas_border = false
  canvas.show_info = false
  canvas.low_quality_zoom_threshold = 0.45
  canvas.allow_searchbox = true
  return { graph, canvas }
}

/** fitView zooms and pans so that every node is visible. */
export function fitView(canvas) {
  const nodes = canvas.graph._nodes
  if (!nodes.length) return
  let x0 = Infinity
  let y0 = Infinity
  let x1 = -Infinity
  let y1 = -Infinity
  for (const n of nodes) {
    x0 = Math.min(x0, n.pos[0])
    y0 = Math.min(y0, n.pos[1] - LiteGraph.NODE_TITLE_HEIGHT)
    x1 = Math.max(x1, n.pos[0] + n.size[0])
    y1 = Math.max(y1, n.pos[1] + n.size[1])
  }
  canvas.ds.fitToBounds([x0 - 40, y0 - 40, x1 - x0 + 80, y1 - y0 + 80], { zoom: 1 })
  // Readable text matters more than seeing everything: below this zoom, show the top left part.
  const minScale = 0.6
  if (canvas.ds.scale > 1.2) canvas.ds.scale = 1.2
  if (canvas.ds.scale < minScale) {
    canvas.ds.scale = minScale
    canvas.ds.offset[0] = -x0 + 30 / minScale
    canvas.ds.offset[1] = -y0 + 30 / minScale
  }
  canvas.setDirty(true, true)
}

/**
 * loadWorkflow replaces the graph with a UI workflow. It returns the node types the server does
 * not know (those nodes are kept, marked with errors, and saved unchanged).
 */
export function loadWorkflow(graph, canvas, workflow, relayout = false) {
  const data = structuredClone(workflow)
  graph.clear()
  graph.configure(data)
  if (relayout) stackColumns(graph)
  for (const n of graph._nodes) n.onConnectionsChange?.()
  const missing = new Set()
  for (const n of graph._nodes) {
    if (!LiteGraph.registered_node_types[n.type]) {
      missing.add(n.type)
      n.has_errors = true
      n.errorLines = [`node type ${n.type} is not available on this server`]
    }
  }
  fitView(canvas)
  return [...missing]
}

/**
 * stackColumns re-stacks the nodes of each column (same x) by their real heights, after an API
 * prompt was laid out with estimated sizes.
 */
export function stackColumns(graph, gap = 50) {
  const columns = new Map()
  for (const n of graph._nodes) {
    const col = columns.get(n.pos[0]) || []
    col.push(n)
    columns.set(n.pos[0], col)
  }
  for (const col of columns.values()) {
    col.sort((a, b) => a.pos[1] - b.pos[1])
    let y = 0
    for (const n of col) {
      n.pos = [n.pos[0], y]
      y += n.size[1] + LiteGraph.NODE_TITLE_HEIGHT + gap
    }
  }
}

/** serializeWorkflow returns the graph as a UI workflow (version 0.4) with the viewport. */
export function serializeWorkflow(graph, canvas) {
  const wf = graph.serialize({ sortNodes: true })
  wf.extra = { ...(wf.extra || {}), ds: { scale: canvas.ds.scale, offset: [canvas.ds.offset[0], canvas.ds.offset[1]] } }
  // Drop undefined fields so the JSON matches what the editor writes.
  return JSON.parse(JSON.stringify(wf))
}

/** nodeByID finds a node from an API id ("12"). */
export function nodeByID(graph, id) {
  if (id === null || id === undefined) return null
  const s = String(id)
  return graph.getNodeById(/^-?[0-9]+$/.test(s) ? Number(s) : s)
}

/** updateComboLists refreshes the choices of combo widgets (model and image lists) from defs. */
export function updateComboLists(graph, defs) {
  for (const node of graph._nodes) {
    const def = defs[node.comfyClass || node.type]
    if (!def || !node.widgets) continue
    for (const w of node.widgets) {
      if (!w.inputSpec || !w.inputSpec.combo) continue
      const fresh = nodeInputs(def).find((i) => i.name === w.name)
      if (fresh && fresh.combo) {
        w.options.values = fresh.combo.slice()
        w.inputSpec = fresh
      }
    }
  }
  graph.setDirtyCanvas(true, true)
}

/**
 * applyControlAfterGenerate updates seed widgets after a queued run, like the editor:
 * increment, decrement or randomize within the input's range.
 */
export function applyControlAfterGenerate(graph) {
  for (const node of graph._nodes) {
    if (node.mode === 2 || node.mode === 4) continue
    for (const c of node.widgets || []) {
      const w = c.controlTarget
      if (!w || c.value === 'fixed') continue
      const min = Math.max(Number(w.options.min ?? 0), -Number.MAX_SAFE_INTEGER)
      const max = Math.min(Number(w.options.max ?? Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER)
      let v = Number(w.value)
      if (c.value === 'increment') v = Math.min(v + 1, max)
      else if (c.value === 'decrement') v = Math.max(v - 1, min)
      else if (c.value === 'randomize') v = min + Math.floor(Math.random() * (max - min + 1))
      w.value = v
    }
  }
  graph.setDirtyCanvas(true, true)
}

export { LiteGraph }
