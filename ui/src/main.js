// dypegraph's web UI: wires the canvas editor, the server API, the websocket and the panels.

import './style.css'
import { ApiError, api, viewURL } from './api.js'
import { WorkflowError, apiToWorkflow, detectWorkflow, workflowToPrompt } from './convert.js'
import { describeExecutionError, describeValidation } from './errors.js'
import {
  applyControlAfterGenerate, createEditor, loadWorkflow, nodeByID, registerNodeTypes, serializeWorkflow, updateComboLists,
} from './graph.js'
import { PngError, isPng, workflowFromPng } from './png.js'
import { PREVIEW_IMAGE, PREVIEW_IMAGE_WITH_METADATA, previewNode } from './preview.js'
import { Socket } from './socket.js'

const $ = (id) => document.getElementById(id)
const STORAGE_KEY = 'dypegraph.workflow'

const state = {
  defs: {},
  folders: null,
  graph: null,
  canvas: null,
  socket: null,
  myPrompts: new Set(JSON.parse(sessionStorage.getItem('dypegraph.prompts') || '[]')), // prompt ids queued from this tab
  running: null, // prompt id that is executing (one of ours)
  executing: null, // node id that is executing
  previewURLs: new Map(), // node id → blob URL of its latest preview
  liveURL: null,
}

// ---- small UI helpers

function toast(message, kind = 'info', ms = 6000) {
  const el = document.createElement('div')
  el.className = `toast ${kind}`
  el.textContent = message
  $('toasts').append(el)
  setTimeout(() => el.remove(), kind === 'error' ? Math.max(ms, 12000) : ms)
}

function fail(e, what) {
  console.warn(what, e)
  toast(`${what}: ${e && e.message ? e.message : e}`, 'error')
}

function redraw() {
  state.canvas.setDirty(true, true)
}

function el(tag, attrs = {}, ...children) {
  const n = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'onclick') n.addEventListener('click', v)
    else if (k === 'className') n.className = v
    else n.setAttribute(k, v)
  }
  for (const c of children) n.append(c)
  return n
}

// ---- opening and saving workflows

function openDocument(doc, source) {
  const found = detectWorkflow(doc)
  const workflow = found.kind === 'ui' ? found.workflow : apiToWorkflow(found.prompt, state.defs)
  clearRunState()
  clearErrors()
  const missing = loadWorkflow(state.graph, state.canvas, workflow, found.kind === 'api')
  if (missing.length) {
    toast(`${source}: this server has no node type ${missing.join(', ')}; those nodes are marked and will fail validation`, 'error')
  } else {
    toast(`opened ${source}${found.kind === 'api' ? ' (API format, laid out automatically)' : ''}`, 'ok', 3000)
  }
  saveLocal()
}

async function openFile(file) {
  try {
    const bytes = new Uint8Array(await file.arrayBuffer())
    let doc
    if (isPng(bytes)) {
      doc = await workflowFromPng(bytes)
    } else if (file.type.startsWith('image/')) {
      throw new WorkflowError('only PNG images carry a workflow (in their "workflow"/"prompt" text chunks)')
    } else {
      try {
        doc = JSON.parse(new TextDecoder().decode(bytes))
      } catch (e) {
        throw new WorkflowError(`not valid JSON (${e.message})`)
      }
    }
    openDocument(doc, file.name)
  } catch (e) {
    if (e instanceof WorkflowError || e instanceof PngError) toast(`cannot open ${file.name}: ${e.message}`, 'error')
    else fail(e, `cannot open ${file.name}`)
  }
}

function saveFile() {
  const wf = serializeWorkflow(state.graph, state.canvas)
  const blob = new Blob([JSON.stringify(wf, null, 2)], { type: 'application/json' })
  const a = el('a', { href: URL.createObjectURL(blob), download: 'workflow.json' })
  document.body.append(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(a.href), 1000)
}

function saveLocal() {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(serializeWorkflow(state.graph, state.canvas)))
  } catch {
    // storage full or disabled: the graph just is not restored on reload
  }
}

async function loadExamplesMenu() {
  const menu = $('examples-menu')
  menu.replaceChildren()
  try {
    const { workflows } = await api.workflows()
    for (const w of workflows) {
      const li = el('li', {}, w.name.replace(/\.json$/, ''), el('small', {}, w.format === 'ui' ? 'editor' : 'API'))
      li.addEventListener('click', async () => {
        menu.hidden = true
        try {
          openDocument(await api.workflow(w.name), w.name)
        } catch (e) {
          fail(e, `cannot open example ${w.name}`)
        }
      })
      menu.append(li)
    }
    if (!workflows.length) menu.append(el('li', {}, 'no bundled examples'))
  } catch (e) {
    menu.append(el('li', {}, `examples unavailable: ${e.message}`))
  }
}

// ---- errors on nodes

function clearErrors() {
  for (const n of state.graph._nodes) {
    if (n.errorLines || n.has_errors) {
      n.errorLines = undefined
      n.has_errors = !state.defs[n.type] && !['Note', 'MarkdownNote', 'Reroute', 'PrimitiveNode'].includes(n.type)
    }
  }
  $('errors').hidden = true
  redraw()
}

function showErrors(summary, items) {
  const list = $('errors-list')
  list.replaceChildren()
  $('errors-summary').textContent = summary
  for (const it of items) {
    const node = nodeByID(state.graph, it.id)
    if (node) {
      node.has_errors = true
      node.errorLines = it.lines
    }
    const li = el('li', {}, el('b', {}, `#${it.id} ${it.title}`), ...it.lines.map((l) => el('div', {}, l)))
    li.addEventListener('click', () => {
      if (node) {
        state.canvas.centerOnNode(node)
        state.canvas.selectNode(node)
        redraw()
      }
    })
    list.append(li)
  }
  $('errors').hidden = false
  redraw()
}

function nodeInfo(id) {
  const n = nodeByID(state.graph, id)
  return n ? { title: n.title, classType: n.comfyClass || n.type, properties: n.properties } : null
}

// ---- queueing

async function queue() {
  clearErrors()
  const workflow = serializeWorkflow(state.graph, state.canvas)
  let prompt
  try {
    prompt = workflowToPrompt(workflow, state.defs)
  } catch (e) {
    if (e instanceof WorkflowError) return toast(`cannot queue: ${e.message}`, 'error')
    throw e
  }
  if (Object.keys(prompt).length === 0) return toast('the graph is empty: add nodes or open a workflow first', 'error')
  const body = { prompt, client_id: state.socket.clientId, extra_data: { extra_pnginfo: { workflow } } }
  try {
    const res = await api.queuePrompt(body)
    state.myPrompts.add(res.prompt_id)
    sessionStorage.setItem('dypegraph.prompts', JSON.stringify([...state.myPrompts].slice(-100)))
    if (res.node_errors && Object.keys(res.node_errors).length) {
      const d = describeValidation({ error: { message: 'Queued, but some outputs failed validation and will not run' }, node_errors: res.node_errors }, nodeInfo, state.folders)
      showErrors(d.summary, d.nodes)
    }
    applyControlAfterGenerate(state.graph)
    saveLocal()
    refreshJobs()
  } catch (e) {
    if (e instanceof ApiError && e.status === 400 && e.body && typeof e.body === 'object') {
      const d = describeValidation(e.body, nodeInfo, state.folders)
      showErrors(d.summary, d.nodes)
      if (!d.nodes.length) toast(d.summary, 'error')
    } else {
      fail(e, 'cannot queue the prompt')
    }
  }
}

// ---- execution state from the websocket

function clearRunState() {
  state.executing = null
  for (const n of state.graph._nodes) {
    n.progress = undefined
    n.previewImage = undefined
  }
  for (const url of state.previewURLs.values()) URL.revokeObjectURL(url)
  state.previewURLs.clear()
  $('progress').hidden = true
  redraw()
}

function setProgress(node, value, max) {
  const label = node ? node.title : 'running'
  $('progress').hidden = false
  $('progress-label').textContent = `${label} ${value}/${max}`
  $('progress-bar').style.width = `${max > 0 ? (100 * value) / max : 0}%`
}

function isMine(data) {
  return data && data.prompt_id !== undefined ? state.myPrompts.has(data.prompt_id) : state.running !== null
}

function loadImage(src) {
  const img = new Image()
  img.onload = redraw
  img.src = src
  return img
}

function showOutputs(nodeId, output) {
  const images = (output && output.images) || []
  if (!images.length) return
  const node = nodeByID(state.graph, nodeId)
  if (node) {
    node.imgs = images.map((f) => loadImage(viewURL(f)))
    node.imageFiles = images
    node.previewImage = undefined
  }
  const gallery = $('gallery')
  for (const f of images) {
    const img = el('img', { src: viewURL(f, 'webp;80'), alt: f.filename, title: f.filename, loading: 'lazy' })
    img.addEventListener('click', () => openLightbox(f))
    gallery.prepend(img)
  }
  while (gallery.children.length > 60) gallery.lastChild.remove()
  redraw()
}

function onMessage(type, data) {
  switch (type) {
    case 'status': {
      const remaining = data.status && data.status.exec_info ? data.status.exec_info.queue_remaining : undefined
      if (remaining !== undefined) $('queue-status').textContent = `queue: ${remaining}`
      refreshJobs()
      break
    }
    case 'execution_start':
      if (!isMine(data)) break
      clearRunState()
      state.running = data.prompt_id
      break
    case 'executing': {
      if (!isMine(data)) break
      const prev = nodeByID(state.graph, state.executing)
      if (prev) prev.progress = undefined
      const id = data.display_node ?? data.node
      if (id === null || id === undefined) {
        state.executing = null
        if (data.prompt_id === state.running) state.running = null
        $('progress').hidden = true
      } else {
        state.executing = String(id)
      }
      redraw()
      break
    }
    case 'progress': {
      if (!isMine(data)) break
      const node = nodeByID(state.graph, data.node ?? state.executing)
      if (node) node.progress = data.max > 0 ? data.value / data.max : 0
      setProgress(node, data.value, data.max)
      redraw()
      break
    }
    case 'executed':
      if (!isMine(data)) break
      showOutputs(data.display_node ?? data.node, data.output)
      break
    case 'execution_cached':
      break
    case 'execution_success':
      if (!isMine(data)) break
      $('progress').hidden = true
      break
    case 'execution_error': {
      if (!isMine(data)) break
      const node = nodeByID(state.graph, data.node_id)
      const line = describeExecutionError(data)
      showErrors(`${data.node_type || 'a node'} failed while running`, [{ id: String(data.node_id), title: node ? node.title : data.node_type, lines: [line] }])
      clearRunState()
      break
    }
    case 'execution_interrupted':
      if (!isMine(data)) break
      toast('the prompt was interrupted')
      clearRunState()
      break
  }
}

function onPreview(frame) {
  if (frame.event !== PREVIEW_IMAGE && frame.event !== PREVIEW_IMAGE_WITH_METADATA) return
  if (frame.meta ? !state.myPrompts.has(frame.meta.prompt_id) : state.running === null) return
  const id = previewNode(frame, state.executing)
  const url = URL.createObjectURL(new Blob([frame.image], { type: frame.mime }))
  // Live panel
  const live = $('live-img')
  if (state.liveURL) URL.revokeObjectURL(state.liveURL)
  state.liveURL = url
  live.src = url
  live.hidden = false
  $('live-empty').hidden = true
  // On the node
  const node = nodeByID(state.graph, id)
  if (node) {
    const old = state.previewURLs.get(id)
    const img = loadImage(url)
    img.onload = () => {
      if (old && old !== state.liveURL) URL.revokeObjectURL(old)
      redraw()
    }
    state.previewURLs.set(id, url)
    node.previewImage = img
    node.previewLabel = 'preview'
  }
}

// ---- queue and history panels

let jobsTimer = null
function refreshJobs() {
  clearTimeout(jobsTimer)
  jobsTimer = setTimeout(loadJobs, 150)
}

function jobRow(job, actions) {
  const li = el('li', {}, el('span', { className: `state ${job.status}` }, job.status.replace('_', ' ')))
  if (job.preview_output) {
    const img = el('img', { src: viewURL(job.preview_output, 'webp;60'), alt: '', title: 'open image' })
    img.addEventListener('click', () => openLightbox(job.preview_output))
    li.append(img)
  }
  const when = job.create_time ? new Date(job.create_time).toLocaleTimeString() : ''
  const id = el('span', { className: 'id', title: `${job.id} — click to open its workflow and outputs` }, `${when} ${job.id.slice(0, 8)}`)
  id.addEventListener('click', () => openJob(job.id))
  li.append(id, ...actions)
  return li
}

async function loadJobs() {
  try {
    const [active, done] = await Promise.all([
      api.jobs({ status: 'in_progress,pending', sort_order: 'asc', limit: 50 }),
      api.jobs({ status: 'completed,failed,cancelled', sort_order: 'desc', limit: 30 }),
    ])
    const q = $('queue-list')
    q.replaceChildren()
    for (const job of active.jobs) {
      const cancel = el('button', { title: job.status === 'in_progress' ? 'interrupt this prompt' : 'remove from the queue' }, 'cancel')
      cancel.addEventListener('click', async () => {
        try {
          await api.cancelJob(job.id)
          refreshJobs()
        } catch (e) {
          fail(e, 'cannot cancel')
        }
      })
      q.append(jobRow(job, [cancel]))
    }
    if (!active.jobs.length) q.append(el('li', { className: 'empty' }, 'nothing queued'))
    const h = $('history-list')
    h.replaceChildren()
    for (const job of done.jobs) h.append(jobRow(job, []))
    if (!done.jobs.length) h.append(el('li', { className: 'empty' }, 'no finished prompts yet'))
  } catch (e) {
    $('queue-list').replaceChildren(el('li', { className: 'empty' }, `cannot load the queue: ${e.message}`))
  }
}

async function openJob(id) {
  try {
    const job = await api.job(id)
    const wf = job.workflow && job.workflow.extra_data && job.workflow.extra_data.extra_pnginfo && job.workflow.extra_data.extra_pnginfo.workflow
    const doc = wf && Array.isArray(wf.nodes) ? wf : job.workflow && job.workflow.prompt
    if (!doc) return toast('this job has no workflow to open', 'error')
    openDocument(doc, `job ${id.slice(0, 8)}`)
    for (const [nodeId, out] of Object.entries(job.outputs || {})) showOutputs(nodeId, out)
    if (job.execution_error) {
      const e = job.execution_error
      showErrors(`${e.node_type || 'a node'} failed`, [{ id: String(e.node_id), title: e.node_type, lines: [describeExecutionError(e)] }])
    }
  } catch (e) {
    fail(e, 'cannot open the job')
  }
}

// ---- lightbox

function openLightbox(file) {
  const url = viewURL(file)
  $('lightbox-img').src = url
  $('lightbox-open').href = url
  $('lightbox-name').textContent = [file.subfolder, file.filename].filter(Boolean).join('/')
  $('lightbox').hidden = false
}

// ---- uploads (LoadImage's button)

function uploadInto(node, widget) {
  const input = el('input', { type: 'file', accept: 'image/*' })
  input.addEventListener('change', async () => {
    const file = input.files && input.files[0]
    if (!file) return
    try {
      const res = await api.uploadImage(file)
      const name = res.subfolder ? `${res.subfolder}/${res.name}` : res.name
      if (!widget.options.values.includes(name)) widget.options.values.push(name)
      widget.value = name
      redraw()
      toast(`uploaded ${name}`, 'ok', 3000)
    } catch (e) {
      fail(e, 'upload failed')
    }
  })
  input.click()
}

// ---- start

async function refreshDefs(first) {
  const defs = await api.objectInfo()
  state.defs = defs
  if (first) {
    registerNodeTypes(defs, {
      onWidgetChange: () => saveLocal(),
      onUpload: uploadInto,
      onImageClick: (node, i) => {
        const f = node.imageFiles && node.imageFiles[i]
        if (f) openLightbox(f)
      },
      isExecuting: (node) => state.executing !== null && String(node.id) === state.executing,
    })
  } else {
    updateComboLists(state.graph, defs)
  }
  try {
    state.folders = await api.folders()
  } catch {
    state.folders = null // the hints fall back to folder names
  }
}

function resizeCanvas() {
  const c = $('graph-canvas')
  const r = c.parentElement.getBoundingClientRect()
  state.canvas.resize(Math.floor(r.width), Math.floor(r.height))
}

function isTyping(e) {
  const t = e.target
  return t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.isContentEditable)
}

function bindUI() {
  $('btn-open').addEventListener('click', () => $('file-input').click())
  $('file-input').addEventListener('change', (e) => {
    const f = e.target.files && e.target.files[0]
    if (f) openFile(f)
    e.target.value = ''
  })
  $('btn-save').addEventListener('click', saveFile)
  $('btn-new').addEventListener('click', () => {
    state.graph.clear()
    clearErrors()
    saveLocal()
    redraw()
  })
  $('btn-refresh').addEventListener('click', async () => {
    try {
      await refreshDefs(false)
      toast('node definitions, model and image lists reloaded', 'ok', 2500)
    } catch (e) {
      fail(e, 'cannot reload')
    }
  })
  $('btn-queue').addEventListener('click', () => queue().catch((e) => fail(e, 'cannot queue')))
  $('btn-interrupt').addEventListener('click', () => api.interrupt().catch((e) => fail(e, 'cannot interrupt')))
  $('btn-clear-queue').addEventListener('click', () => api.clearQueue().then(refreshJobs, (e) => fail(e, 'cannot clear the queue')))
  $('btn-clear-history').addEventListener('click', () => api.clearHistory().then(refreshJobs, (e) => fail(e, 'cannot clear the history')))
  $('btn-errors-close').addEventListener('click', () => clearErrors())
  const menu = $('examples-menu')
  $('btn-examples').addEventListener('click', (e) => {
    e.stopPropagation()
    menu.hidden = !menu.hidden
    $('btn-examples').setAttribute('aria-expanded', String(!menu.hidden))
  })
  document.addEventListener('click', () => { menu.hidden = true })
  $('lightbox').addEventListener('click', (e) => {
    if (e.target.id === 'lightbox' || e.target.id === 'lightbox-close' || e.target.id === 'lightbox-img') $('lightbox').hidden = true
  })
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault()
      queue().catch((err) => fail(err, 'cannot queue'))
    } else if (e.key === 'Escape') {
      $('lightbox').hidden = true
    } else if ((e.ctrlKey || e.metaKey) && (e.key === 'b' || e.key === 'm') && !isTyping(e)) {
      // ComfyUI's shortcuts: Ctrl+B bypasses, Ctrl+M mutes the selected nodes (again: back on).
      e.preventDefault()
      const mode = e.key === 'b' ? 4 : 2
      for (const n of Object.values(state.canvas.selected_nodes || {})) n.mode = n.mode === mode ? 0 : mode
      redraw()
    }
  })
  // Drag and drop of workflow files anywhere on the page.
  let depth = 0
  document.addEventListener('dragenter', (e) => {
    if (e.dataTransfer && [...e.dataTransfer.types].includes('Files')) {
      depth++
      $('drop-hint').hidden = false
    }
  })
  document.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1)
    if (depth === 0) $('drop-hint').hidden = true
  })
  document.addEventListener('dragover', (e) => e.preventDefault())
  document.addEventListener('drop', (e) => {
    e.preventDefault()
    depth = 0
    $('drop-hint').hidden = true
    const f = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0]
    if (f) openFile(f)
  })
  window.addEventListener('resize', resizeCanvas)
  window.addEventListener('beforeunload', saveLocal)
  setInterval(saveLocal, 15000)
}

async function main() {
  const { graph, canvas } = createEditor($('graph-canvas'))
  state.graph = graph
  state.canvas = canvas
  window.dypegraph = state // for the browser console and end-to-end tests
  bindUI()
  resizeCanvas()
  try {
    await refreshDefs(true)
  } catch (e) {
    toast(`cannot load the node definitions (GET /api/object_info): ${e.message}`, 'error', 60000)
    return
  }
  const saved = localStorage.getItem(STORAGE_KEY)
  let restored = false
  if (saved) {
    try {
      loadWorkflow(graph, canvas, JSON.parse(saved))
      restored = true
    } catch (e) {
      console.warn('could not restore the last graph', e)
    }
  }
  if (!restored) {
    try {
      const { workflows } = await api.workflows()
      const first = workflows.find((w) => w.format === 'ui') || workflows[0]
      if (first) openDocument(await api.workflow(first.name), first.name)
    } catch (e) {
      fail(e, 'cannot open the default example')
    }
  }
  state.socket = new Socket({
    onMessage,
    onPreview,
    onState: (on) => $('ws-status').classList.toggle('on', on),
    onError: (m) => console.warn(m),
  })
  state.socket.connect()
  loadExamplesMenu()
  loadJobs()
}

main()
