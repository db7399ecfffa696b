// The server's HTTP API, same origin only (relative URLs under /api, as the ComfyUI frontend
// calls them). Errors become ApiError with a message a person can act on.

/** ApiError is a failed request; body is the parsed JSON answer when there was one. */
export class ApiError extends Error {
  constructor(message, status, body) {
    super(message)
    this.status = status
    this.body = body
  }
}

function errorText(data) {
  if (!data) return ''
  if (typeof data === 'string') return data.trim().slice(0, 300)
  const e = data.error
  if (typeof e === 'string') return e
  if (e && typeof e === 'object') return [e.message, e.details].filter(Boolean).join(': ')
  return ''
}

async function request(method, path, body, raw) {
  const init = { method, credentials: 'same-origin', headers: {} }
  if (raw !== undefined) {
    init.body = raw
  } else if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json'
    init.body = JSON.stringify(body)
  }
  let res
  try {
    res = await fetch(path, init)
  } catch (e) {
    throw new ApiError(`cannot reach the dypegraph server (${e.message}); is it still running?`, 0, null)
  }
  const text = await res.text()
  let data = null
  if (text) {
    try {
      data = JSON.parse(text)
    } catch {
      data = text
    }
  }
  if (!res.ok) {
    const detail = errorText(data)
    let hint = ''
    if (res.status === 401) hint = ' (the server was started with --auth-token)'
    if (res.status === 403) hint = ' (refused by the server\'s origin check)'
    throw new ApiError(`${method} ${path} failed: ${res.status} ${res.statusText}${detail ? ' — ' + detail : ''}${hint}`, res.status, data)
  }
  return data
}

const enc = encodeURIComponent

export const api = {
  objectInfo: () => request('GET', '/api/object_info'),
  queuePrompt: (body) => request('POST', '/api/prompt', body),
  jobs: (params) => request('GET', '/api/jobs?' + new URLSearchParams(params)),
  job: (id) => request('GET', `/api/jobs/${enc(id)}`),
  cancelJob: (id) => request('POST', `/api/jobs/${enc(id)}/cancel`, {}),
  interrupt: (promptId) => request('POST', '/api/interrupt', promptId ? { prompt_id: promptId } : {}),
  clearQueue: () => request('POST', '/api/queue', { clear: true }),
  clearHistory: () => request('POST', '/api/history', { clear: true }),
  workflows: () => request('GET', '/api/dypegraph/workflows'),
  workflow: (name) => request('GET', `/api/dypegraph/workflows/${enc(name)}`),
  folders: () => request('GET', '/api/dypegraph/folders'),
  uploadImage: (file) => {
    const form = new FormData()
    form.append('image', file, file.name)
    return request('POST', '/api/upload/image', undefined, form)
  },
}

/** viewURL is the /view address of an output file ({filename, subfolder, type}). */
export function viewURL(file, preview) {
  const q = new URLSearchParams({ filename: file.filename, subfolder: file.subfolder || '', type: file.type || 'output' })
  if (preview) q.set('preview', preview)
  return '/api/view?' + q
}
