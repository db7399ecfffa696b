// Validation errors (the 400 body of POST /prompt) and execution errors as lines for the nodes
// that caused them, with where a missing model or image file belongs. Pure functions.

import { modelFolderFor } from './nodedefs.js'

/**
 * whereFileGoes says where a file named in a loader's combo must be put, or '' when the input
 * is not a file. folders is GET /dypegraph/folders (may be null when it failed).
 */
export function whereFileGoes(classType, inputName, value, properties, folders) {
  const folder = modelFolderFor(classType, inputName, value, properties)
  if (folder) {
    let subs = (folders && folders.model_folders && folders.model_folders[folder]) || [folder]
    // Name the folder that carries the folder's own name first (diffusion_models, not unet).
    if (subs.includes(folder)) subs = [folder, ...subs.filter((s) => s !== folder)]
    const base = folders && folders.models_dir ? folders.models_dir.replace(/[\\/]+$/, '') + '/' : 'models/'
    const alt = subs.length > 1 ? ` (or ${subs.slice(1).map((s) => base + s + '/').join(', ')})` : ''
    return `missing model file: put ${JSON.stringify(String(value))} in ${base}${subs[0]}/${alt} — the "${folder}" folder — then press ↻ Refresh`
  }
  if (inputName === 'image' && (classType === 'LoadImage' || classType === 'LoadImageMask')) {
    const base = folders && folders.input_dir ? folders.input_dir.replace(/[\\/]+$/, '') + '/' : 'the input folder'
    return `missing image: upload it with the node's upload button or put it in ${base}`
  }
  return ''
}

function errorLine(e) {
  const details = e.details ? `: ${e.details}` : ''
  return `${e.message || e.type}${details}`
}

/**
 * describeValidation turns a POST /prompt error body into {summary, nodes: [{id, classType,
 * lines}]}. nodeInfo(id) returns {title, classType, properties} of the graph's node or null.
 */
export function describeValidation(body, nodeInfo, folders) {
  const err = body && body.error
  let summary = 'the server refused the prompt'
  if (err && typeof err === 'object') summary = err.message || err.type || summary
  else if (typeof err === 'string') summary = err
  const nodes = []
  const nodeErrors = (body && body.node_errors) || {}
  for (const [id, ne] of Object.entries(nodeErrors)) {
    const info = nodeInfo(id) || {}
    const classType = ne.class_type || info.classType || ''
    const lines = []
    for (const e of ne.errors || []) {
      lines.push(errorLine(e))
      if (e.type === 'value_not_in_list' && e.extra_info) {
        const hint = whereFileGoes(classType, e.extra_info.input_name, e.extra_info.received_value, info.properties, folders)
        if (hint) lines.push(hint)
      }
    }
    nodes.push({ id: String(id), classType, title: info.title || classType, lines })
  }
  // A top-level error that names a node (missing_node_type) but has no node_errors entry.
  if (nodes.length === 0 && err && err.extra_info && err.extra_info.node_id !== undefined) {
    const id = String(err.extra_info.node_id)
    const info = nodeInfo(id) || {}
    nodes.push({ id, classType: err.extra_info.class_type || info.classType || '', title: info.title || err.extra_info.node_title || id, lines: [errorLine(err)] })
  }
  if (err && typeof err === 'object' && err.details && nodes.length === 0) summary += `: ${err.details}`
  return { summary, nodes }
}

/** describeExecutionError is the line shown on the node of an execution_error event. */
export function describeExecutionError(data) {
  const type = data.exception_type ? `${data.exception_type}: ` : ''
  return `${type}${data.exception_message || 'the node failed'}`
}
