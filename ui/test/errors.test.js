import { describe, expect, it } from 'vitest'
import { describeExecutionError, describeValidation, whereFileGoes } from '../src/errors.js'

const folders = {
  models_dir: '/srv/models/',
  input_dir: '/srv/input',
  model_folders: { diffusion_models: ['unet', 'diffusion_models'], text_encoders: ['text_encoders', 'clip'], vae: ['vae'] },
}

// The 400 body the server answers for a missing diffusion model (comfyui-protocol §4.6).
const missingUNet = {
  error: { type: 'prompt_outputs_failed_validation', message: 'Prompt outputs failed validation', details: '', extra_info: {} },
  node_errors: {
    16: {
      errors: [{ type: 'value_not_in_list', message: 'Value not in list', details: "unet_name: 'z.safetensors' not in []",
        extra_info: { input_name: 'unet_name', input_config: [[], {}], received_value: 'z.safetensors' } }],
      dependent_outputs: ['9'], class_type: 'UNETLoader',
    },
  },
}

describe('whereFileGoes', () => {
  it('names the model folder of loader inputs, its own name first', () => {
    expect(whereFileGoes('UNETLoader', 'unet_name', 'z.safetensors', {}, folders))
      .toBe('missing model file: put "z.safetensors" in /srv/models/diffusion_models/ (or /srv/models/unet/) — the "diffusion_models" folder — then press ↻ Refresh')
    expect(whereFileGoes('CLIPLoader', 'clip_name', 'q.safetensors', {}, folders)).toContain('/srv/models/text_encoders/ (or /srv/models/clip/)')
    expect(whereFileGoes('VAELoader', 'vae_name', 'ae.safetensors', {}, null)).toContain('in models/vae/ —')
  })

  it('prefers the directory a workflow names for the model', () => {
    const props = { models: [{ name: 'x.safetensors', url: 'https://example.invalid/x', directory: 'loras' }] }
    expect(whereFileGoes('UNETLoader', 'unet_name', 'x.safetensors', props, null)).toContain('the "loras" folder')
  })

  it('points images to the input folder and ignores other combos', () => {
    expect(whereFileGoes('LoadImage', 'image', 'cat.png', {}, folders)).toBe("missing image: upload it with the node's upload button or put it in /srv/input/")
    expect(whereFileGoes('KSampler', 'sampler_name', 'nope', {}, folders)).toBe('')
    expect(whereFileGoes('UNETLoader', 'weight_dtype', 'fp4', {}, folders)).toBe('')
  })
})

describe('describeValidation', () => {
  it('puts each node error and the missing folder on the node', () => {
    const d = describeValidation(missingUNet, (id) => (id === '16' ? { title: 'Load Diffusion Model', classType: 'UNETLoader', properties: {} } : null), folders)
    expect(d.summary).toBe('Prompt outputs failed validation')
    expect(d.nodes).toEqual([{
      id: '16', classType: 'UNETLoader', title: 'Load Diffusion Model',
      lines: ["Value not in list: unet_name: 'z.safetensors' not in []", expect.stringContaining('/srv/models/diffusion_models/')],
    }])
  })

  it('reports top-level errors that name a node, and plain ones', () => {
    const missingType = { error: { type: 'missing_node_type', message: "Node 'Foo' not found. The custom node may not be installed.", details: "Node ID '#4'", extra_info: { node_id: '4', class_type: 'Foo', node_title: 'Foo' } }, node_errors: {} }
    const d = describeValidation(missingType, () => null, null)
    expect(d.nodes).toEqual([{ id: '4', classType: 'Foo', title: 'Foo', lines: ["Node 'Foo' not found. The custom node may not be installed.: Node ID '#4'"] }])
    const noOutputs = { error: { type: 'prompt_no_outputs', message: 'Prompt has no outputs', details: '', extra_info: {} }, node_errors: {} }
    expect(describeValidation(noOutputs, () => null, null)).toEqual({ summary: 'Prompt has no outputs', nodes: [] })
  })
})

describe('describeExecutionError', () => {
  it('names the exception', () => {
    expect(describeExecutionError({ exception_type: 'RuntimeError', exception_message: 'out of memory' })).toBe('RuntimeError: out of memory')
    expect(describeExecutionError({})).toBe('the node failed')
  })
})
