package server

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/jpeg"
	"image/png"
	"sync"

	"golang.org/x/image/draw"

	"github.com/dypegraph/dypegraph/executor"
	"github.com/dypegraph/dypegraph/internal/ojson"
)

// Binary frame event types (§3.4): all integers big-endian uint32.
const (
	binPreviewImage             = 1
	binPreviewImageWithMetadata = 4
	imageTypeJPEG               = 1
	imageTypePNG                = 2
)

// promptSink routes one prompt's executor events to the websocket clients (ComfyUI's rules,
// §3.1): with a client_id everything goes to that client; without one only progress and
// previews are broadcast, and execution_interrupted.
type promptSink struct {
	s      *Server
	it     *queueItem
	method string
	// mu guards held, a legacy (type 1) preview frame waiting for the progress event of its
	// step: the executor hands the preview over between progress_state and progress, which is
	// where ComfyUI sends the type 4 frame, but ComfyUI sends the legacy frame after progress.
	mu   sync.Mutex
	held []byte
}

var _ executor.PreviewSink = (*promptSink)(nil)

func (p *promptSink) Send(e executor.Event) {
	if e.Type == "executing" && e.Data != nil {
		if node, ok := e.Data.Get("node"); ok {
			id, _ := node.(string)
			p.s.setLastNode(p.it.promptID, id)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.Type != "progress" {
		// A preview with no progress after it (the node returned) goes before what follows.
		p.sendHeld()
	}
	client := p.it.clientID
	switch e.Type {
	case "progress", "progress_state":
		m := jsonMsg(e.Type, e.Data, false)
		if client == "" {
			p.s.hub.broadcast(m)
		} else {
			p.s.hub.sendTo(client, m)
		}
	case "execution_interrupted":
		m := jsonMsg(e.Type, e.Data, true)
		if client == "" {
			p.s.hub.broadcast(m)
		} else {
			p.s.hub.sendTo(client, m)
		}
	default:
		if client != "" {
			p.s.hub.sendTo(client, jsonMsg(e.Type, e.Data, true))
		}
	}
	if e.Type == "progress" {
		p.sendHeld()
	}
}

// sendHeld sends the held legacy preview frame, if any, to the prompt's client, or to everyone
// for a prompt without client. The caller holds p.mu.
func (p *promptSink) sendHeld() {
	if p.held == nil {
		return
	}
	m := outMsg{binary: true, data: p.held}
	p.held = nil
	if p.it.clientID == "" {
		p.s.hub.broadcast(m)
	} else {
		p.s.hub.sendTo(p.it.clientID, m)
	}
}

// flush sends what is still held; the server calls it when the prompt's run has ended.
func (p *promptSink) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sendHeld()
}

func (p *promptSink) PreviewMethod() string { return p.method }

// SendPreview encodes the preview and sends it as type 4 (with metadata) to a client that
// negotiated supports_preview_metadata, at once; otherwise, and for a prompt without client (a
// broadcast), as type 1 after the step's progress event, ComfyUI's order for those clients.
// Previews may be dropped for slow clients.
func (p *promptSink) SendPreview(pv executor.Preview) {
	img := pv.Image
	if !pv.FullSize {
		img = fitImage(img, p.s.cfg.PreviewSize)
	}
	var buf bytes.Buffer
	imageType, mime := uint32(imageTypeJPEG), "image/jpeg"
	var err error
	if pv.Format == executor.PreviewPNG {
		imageType, mime = imageTypePNG, "image/png"
		enc := png.Encoder{CompressionLevel: png.BestSpeed}
		err = enc.Encode(&buf, img)
	} else {
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95})
	}
	if err != nil {
		p.s.log.Warn("preview not sent: encode failed", "prompt_id", pv.PromptID, "node", pv.NodeID, "err", err)
		return
	}
	encoded := buf.Bytes()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sendHeld() // an earlier preview whose progress never came
	if client := p.it.clientID; client != "" && p.s.hub.previewMeta(client) {
		meta := ojson.NewObject().Set("node_id", pv.NodeID).Set("prompt_id", pv.PromptID).
			Set("display_node_id", pv.NodeID).Set("parent_node_id", nil).Set("real_node_id", pv.NodeID).
			Set("image_type", mime)
		p.s.hub.sendTo(client, outMsg{binary: true, data: previewWithMetadataFrame(meta, encoded)})
		return
	}
	// Broadcast previews (no client) use the legacy frame too, as ComfyUI does for sid None.
	p.held = previewFrame(imageType, encoded)
}

// previewFrame is [u32 1][u32 image_type][image bytes].
func previewFrame(imageType uint32, img []byte) []byte {
	b := make([]byte, 8+len(img))
	binary.BigEndian.PutUint32(b[0:4], binPreviewImage)
	binary.BigEndian.PutUint32(b[4:8], imageType)
	copy(b[8:], img)
	return b
}

// previewWithMetadataFrame is [u32 4][u32 json_len][JSON][image bytes].
func previewWithMetadataFrame(meta *ojson.Object, img []byte) []byte {
	js, err := ojson.Marshal(meta)
	if err != nil {
		js = []byte("{}")
	}
	b := make([]byte, 8+len(js)+len(img))
	binary.BigEndian.PutUint32(b[0:4], binPreviewImageWithMetadata)
	binary.BigEndian.PutUint32(b[4:8], uint32(len(js)))
	copy(b[8:], js)
	copy(b[8+len(js):], img)
	return b
}

// fitImage scales img to fit a size×size box keeping its aspect (bilinear), scaling smaller
// images up too, like PIL's ImageOps.contain.
func fitImage(img image.Image, size int) image.Image {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 || size <= 0 {
		return img
	}
	var nw, nh int
	if w >= h {
		nw, nh = size, max(1, int(float64(h)*float64(size)/float64(w)+0.5))
	} else {
		nw, nh = max(1, int(float64(w)*float64(size)/float64(h)+0.5)), size
	}
	if nw == w && nh == h {
		return img
	}
	dst := image.NewRGBA(image.Rect(0, 0, nw, nh))
	draw.BiLinear.Scale(dst, dst.Bounds(), img, b, draw.Src, nil)
	return dst
}
