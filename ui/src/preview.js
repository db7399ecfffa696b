// Binary websocket frames (comfyui-protocol §3.4): big-endian uint32 event type first.
//   1 PREVIEW_IMAGE:               [u32 1][u32 image_type (1 JPEG, 2 PNG)][image bytes]
//   3 TEXT:                        [u32 3][u32 node_id_len][node_id][text]
//   4 PREVIEW_IMAGE_WITH_METADATA: [u32 4][u32 json_len][JSON][image bytes]

export const PREVIEW_IMAGE = 1
export const TEXT = 3
export const PREVIEW_IMAGE_WITH_METADATA = 4

/** FrameError is a binary frame that cannot be read. */
export class FrameError extends Error {}

/**
 * parseFrame reads one binary frame.
 * @param {ArrayBuffer|Uint8Array} data
 * @returns {{event: 1|4, mime: string, image: Uint8Array, meta: object|null} |
 *           {event: 3, nodeId: string, text: string} | {event: number, unknown: true}}
 */
export function parseFrame(data) {
  const b = data instanceof Uint8Array ? data : new Uint8Array(data)
  if (b.length < 4) throw new FrameError(`binary frame of ${b.length} bytes is too short`)
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength)
  const event = view.getUint32(0)
  switch (event) {
    case PREVIEW_IMAGE: {
      if (b.length < 8) throw new FrameError('preview frame without an image type')
      const t = view.getUint32(4)
      const mime = t === 2 ? 'image/png' : t === 1 ? 'image/jpeg' : null
      if (!mime) throw new FrameError(`preview frame with unknown image type ${t}`)
      return { event, mime, image: b.subarray(8), meta: null }
    }
    case PREVIEW_IMAGE_WITH_METADATA: {
      if (b.length < 8) throw new FrameError('preview frame without metadata length')
      const n = view.getUint32(4)
      if (8 + n > b.length) throw new FrameError(`preview metadata length ${n} runs past the frame (${b.length} bytes)`)
      let meta
      try {
        meta = JSON.parse(new TextDecoder('utf-8').decode(b.subarray(8, 8 + n)))
      } catch (e) {
        throw new FrameError(`preview metadata is not JSON: ${e.message}`)
      }
      if (!meta || typeof meta !== 'object') throw new FrameError('preview metadata is not a JSON object')
      const mime = typeof meta.image_type === 'string' && meta.image_type.startsWith('image/') ? meta.image_type : 'image/jpeg'
      return { event, mime, image: b.subarray(8 + n), meta }
    }
    case TEXT: {
      if (b.length < 8) throw new FrameError('text frame without node id length')
      const n = view.getUint32(4)
      if (8 + n > b.length) throw new FrameError(`text frame node id length ${n} runs past the frame`)
      const dec = new TextDecoder('utf-8')
      return { event, nodeId: dec.decode(b.subarray(8, 8 + n)), text: dec.decode(b.subarray(8 + n)) }
    }
  }
  return { event, unknown: true }
}

/**
 * previewNode names the node a preview belongs to: the metadata's display node (or node) for
 * type 4; for type 1, the node that is executing (fallback).
 */
export function previewNode(frame, executingNode) {
  if (frame.meta) {
    const id = frame.meta.display_node_id ?? frame.meta.node_id ?? frame.meta.real_node_id
    if (id !== undefined && id !== null) return String(id)
  }
  return executingNode === undefined || executingNode === null ? null : String(executingNode)
}
