// Node definitions from /object_info: which inputs are sockets, which are widgets, and the order
// of the widget values in a UI workflow's widgets_values (the editor's layout, which the API
// conversion and the canvas nodes share). Pure functions: no DOM, no litegraph.

/** Primitive widget types. A combo is a list of strings or ["COMBO", {options}]. */
const PRIMITIVES = new Set(['INT', 'FLOAT', 'STRING', 'BOOLEAN'])

/** Values of the frontend-only control_after_generate widget. */
export const CONTROL_VALUES = ['fixed', 'increment', 'decrement', 'randomize']

/** Node types that exist only in the editor and never reach the API prompt. */
export const VIRTUAL_TYPES = new Set(['Note', 'MarkdownNote', 'Reroute', 'PrimitiveNode'])

/**
 * parseInput reads one /object_info input entry ([type, options?]).
 * @returns {{name: string, type: string, options: object, combo: string[]|null,
 *   widget: boolean, optional: boolean, control: boolean, upload: boolean}}
 */
export function parseInput(name, entry, optional = false) {
  const raw = Array.isArray(entry) ? entry : [entry]
  let type = raw[0]
  const options = (raw[1] && typeof raw[1] === 'object' && !Array.isArray(raw[1])) ? raw[1] : {}
  let combo = null
  if (Array.isArray(type)) {
    combo = type.map(String)
    type = 'COMBO'
  } else if (type === 'COMBO') {
    combo = Array.isArray(options.options) ? options.options.map(String) : []
  }
  type = String(type)
  const widget = (combo !== null || PRIMITIVES.has(type)) && !options.forceInput
  return {
    name,
    type,
    options,
    combo,
    widget,
    optional,
    // ComfyUI's frontend adds the control widget for control_after_generate and, for older
    // definitions, after INT inputs named seed or noise_seed.
    control: widget && (Boolean(options.control_after_generate) ||
      (type === 'INT' && (name === 'seed' || name === 'noise_seed'))),
    upload: widget && Boolean(options.image_upload || options.video_upload || options.audio_upload),
  }
}

/**
 * nodeInputs lists a definition's visible inputs (required, then optional) in input_order.
 */
export function nodeInputs(def) {
  const out = []
  if (!def || !def.input) return out
  for (const section of ['required', 'optional']) {
    const entries = def.input[section]
    if (!entries) continue
    const order = (def.input_order && Array.isArray(def.input_order[section]))
      ? def.input_order[section] : Object.keys(entries)
    for (const name of order) {
      if (!(name in entries)) continue
      out.push(parseInput(name, entries[name], section === 'optional'))
    }
  }
  return out
}

/**
 * widgetLayout is the order of the entries of widgets_values for a node of this definition:
 * each widget input's value, followed by the control_after_generate value of seed-like inputs
 * and the upload button value of image_upload combos (both frontend-only).
 * @returns {{kind: 'value'|'control'|'upload', input: object}[]}
 */
export function widgetLayout(def) {
  const out = []
  for (const input of nodeInputs(def)) {
    if (!input.widget) continue
    out.push({ kind: 'value', input })
    if (input.control) out.push({ kind: 'control', input })
    if (input.upload) out.push({ kind: 'upload', input })
  }
  return out
}

/** outputs lists a definition's outputs as {name, type, isList}. */
export function nodeOutputs(def) {
  const types = (def && Array.isArray(def.output)) ? def.output : []
  return types.map((t, i) => ({
    type: Array.isArray(t) ? 'COMBO' : String(t),
    name: (def.output_name && def.output_name[i]) || (Array.isArray(t) ? 'COMBO' : String(t)),
    isList: Boolean(def.output_is_list && def.output_is_list[i]),
  }))
}

/** defaultValue is the value a new widget starts with. */
export function defaultValue(input) {
  const o = input.options
  if (o.default !== undefined) return o.default
  switch (input.type) {
    case 'INT':
    case 'FLOAT':
      return typeof o.min === 'number' && o.min > 0 ? o.min : 0
    case 'STRING':
      return ''
    case 'BOOLEAN':
      return false
  }
  if (input.combo) return input.combo.length ? input.combo[0] : ''
  return null
}

/**
 * typesCompatible is ComfyUI's socket type rule: equal, "*" on either side, or comma-separated
 * sets that intersect.
 */
export function typesCompatible(a, b) {
  if (a === undefined || b === undefined || a === null || b === null) return true
  a = String(a)
  b = String(b)
  if (a === '*' || b === '*' || a === '' || b === '' || a === b) return true
  const sa = new Set(a.split(','))
  return b.split(',').some((t) => sa.has(t))
}

/**
 * Model folders of the loader inputs (input name → folder of /models/{folder}), the same folders
 * ComfyUI's folder_paths uses. A node's properties.models[].directory overrides this.
 */
export const MODEL_INPUT_FOLDERS = {
  unet_name: 'diffusion_models',
  clip_name: 'text_encoders',
  clip_name1: 'text_encoders',
  clip_name2: 'text_encoders',
  clip_name3: 'text_encoders',
  clip_name4: 'text_encoders',
  vae_name: 'vae',
  ckpt_name: 'checkpoints',
  lora_name: 'loras',
  control_net_name: 'controlnet',
  style_model_name: 'style_models',
  upscale_model: 'upscale_models',
  model_name: 'upscale_models',
  gligen_name: 'gligen',
  hypernetwork_name: 'hypernetworks',
  taesd_name: 'vae_approx',
}

/** Classes whose clip_name is a CLIP vision model rather than a text encoder. */
const CLIP_VISION_CLASSES = new Set(['CLIPVisionLoader'])

/**
 * modelFolderFor names the models sub-folder a loader's combo input reads, or null when the input
 * is not a model file. value is the missing file name, used to match properties.models.
 */
export function modelFolderFor(classType, inputName, value, properties) {
  const models = properties && Array.isArray(properties.models) ? properties.models : []
  for (const m of models) {
    if (m && m.name === value && typeof m.directory === 'string' && m.directory) return m.directory
  }
  if (inputName === 'clip_name' && CLIP_VISION_CLASSES.has(classType)) return 'clip_vision'
  if (inputName === 'model_name' && classType !== 'UpscaleModelLoader') return null
  return MODEL_INPUT_FOLDERS[inputName] || null
}

/** precisionOf picks the decimals a FLOAT widget shows from its round or step option. */
export function precisionOf(options) {
  const r = typeof options.round === 'number' && options.round > 0 ? options.round
    : (typeof options.step === 'number' && options.step > 0 ? options.step : 0.01)
  const s = String(r)
  if (s.includes('e-')) return Number(s.split('e-')[1])
  const dot = s.indexOf('.')
  return dot < 0 ? 0 : s.length - dot - 1
}
