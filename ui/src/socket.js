// The websocket (/ws): status and execution events as JSON, previews as binary frames. It sends
// the feature flags first so previews arrive as type 4 (with the node id), reconnects with the
// same client id, and hands every message to the app.

import { parseFrame } from './preview.js'

/** clientID is this tab's websocket id, kept across reloads of the tab. */
export function clientID() {
  const key = 'dypegraph.clientId'
  let id = sessionStorage.getItem(key)
  if (!id) {
    id = crypto.randomUUID().replaceAll('-', '')
    sessionStorage.setItem(key, id)
  }
  return id
}

export class Socket {
  /**
   * @param {{onMessage: (type: string, data: any) => void, onPreview: (frame: object) => void,
   *   onState: (connected: boolean) => void, onError: (message: string) => void}} handlers
   */
  constructor(handlers) {
    this.handlers = handlers
    this.clientId = clientID()
    this.delay = 500
    this.ws = null
  }

  connect() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:'
    const ws = new WebSocket(`${proto}//${location.host}/ws?clientId=${encodeURIComponent(this.clientId)}`)
    ws.binaryType = 'arraybuffer'
    this.ws = ws
    ws.onopen = () => {
      this.delay = 500
      ws.send(JSON.stringify({ type: 'feature_flags', data: { supports_preview_metadata: true } }))
      this.handlers.onState(true)
    }
    ws.onmessage = (ev) => {
      if (typeof ev.data !== 'string') {
        try {
          this.handlers.onPreview(parseFrame(ev.data))
        } catch (e) {
          this.handlers.onError(`unreadable preview frame: ${e.message}`)
        }
        return
      }
      let msg
      try {
        msg = JSON.parse(ev.data)
      } catch {
        this.handlers.onError('the server sent a message that is not JSON')
        return
      }
      if (msg.type === 'status' && msg.data && msg.data.sid && msg.data.sid !== this.clientId) {
        this.clientId = msg.data.sid
        sessionStorage.setItem('dypegraph.clientId', this.clientId)
      }
      this.handlers.onMessage(msg.type, msg.data || {})
    }
    ws.onclose = () => {
      if (this.ws !== ws) return
      this.handlers.onState(false)
      setTimeout(() => this.connect(), this.delay)
      this.delay = Math.min(this.delay * 2, 10000)
    }
  }
}
