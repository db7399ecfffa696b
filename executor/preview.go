package executor

import (
	"fmt"
	"image"
)

// Preview formats a node may ask for.
const (
	PreviewJPEG = "JPEG"
	PreviewPNG  = "PNG"
)

// Preview methods (ComfyUI's --preview-method and extra_data.preview_method, with "auto" and
// "default" already resolved by the caller).
const (
	PreviewNone       = "none"
	PreviewLatent2RGB = "latent2rgb"
	PreviewTAESD      = "taesd"
)

// Preview is an image a running node wants shown while it works: a sampler's current estimate
// at each step (ComfyUI's latent preview) or a full image streamed by a
// SaveImageWebsocket-style node.
type Preview struct {
	PromptID string
	NodeID   string
	// Format is PreviewJPEG or PreviewPNG.
	Format string
	Image  image.Image
	// FullSize sends the image as it is; otherwise the sink fits it into its preview size
	// (ComfyUI's --preview-size, aspect kept, smaller images scaled up).
	FullSize bool
}

// PreviewSink is an optional interface of the Sink given to Run. When the sink implements it,
// running nodes can send previews through their Runtime (see Previewer); otherwise previews are
// dropped and PreviewMethod reports PreviewNone.
type PreviewSink interface {
	// PreviewMethod is the preview method for the running prompt: PreviewNone,
	// PreviewLatent2RGB or PreviewTAESD.
	PreviewMethod() string
	// SendPreview delivers one preview, in order with the events sent to Send. It runs on the
	// executing goroutine and must not block for long.
	SendPreview(Preview)
}

// Previewer is the optional interface of the nodes.Runtime that the executor gives to nodes.
// Package nodes cannot import this package, so a node declares the same method set locally and
// type-asserts its Runtime:
//
//	type previewer interface {
//		PreviewMethod() string
//		Preview(format string, img image.Image, fullSize bool) error
//	}
//	if p, ok := rt.(previewer); ok && p.PreviewMethod() != "none" {
//		if err := p.Preview("JPEG", img, false); err != nil {
//			return nil, err // the prompt was interrupted
//		}
//	}
//
// A sampler sends its preview just before the matching Runtime.Progress call, as ComfyUI does.
// The executor holds the preview until that call and hands it to the PreviewSink between
// progress_state and progress, where ComfyUI sends its metadata (type 4) frame (the server
// sends legacy frames after progress, as ComfyUI does). A preview with no Progress call after
// it is sent when the next preview comes or the node returns, and dropped when the prompt is
// interrupted first. A node must not change the image until then.
type Previewer interface {
	PreviewMethod() string
	Preview(format string, img image.Image, fullSize bool) error
}

var _ Previewer = (*runtimeImpl)(nil)

// PreviewMethod reports the preview method the prompt asked for; PreviewNone when nobody
// listens for previews, so nodes can skip computing them.
func (rt *runtimeImpl) PreviewMethod() string {
	ps, ok := rt.run.sink.(PreviewSink)
	if !ok || ps == nil {
		return PreviewNone
	}
	m := ps.PreviewMethod()
	if m == "" {
		return PreviewNone
	}
	return m
}

// Preview sends img as a preview of the running node. It returns the context's error when the
// prompt was interrupted (like Progress), and an error for an unknown format or a nil image.
func (rt *runtimeImpl) Preview(format string, img image.Image, fullSize bool) error {
	if err := rt.ctx.Err(); err != nil {
		return err
	}
	if format != PreviewJPEG && format != PreviewPNG {
		return fmt.Errorf("preview of node %s: unknown format %q (want %q or %q)", rt.id, format, PreviewJPEG, PreviewPNG)
	}
	if img == nil || img.Bounds().Empty() {
		return fmt.Errorf("preview of node %s: empty image", rt.id)
	}
	if ps, ok := rt.run.sink.(PreviewSink); ok && ps != nil {
		rt.run.pmu.Lock()
		defer rt.run.pmu.Unlock()
		rt.flushPreview()
		rt.pending = &Preview{PromptID: rt.run.req.PromptID, NodeID: rt.id, Format: format, Image: img, FullSize: fullSize}
	}
	return nil
}

// flushPreview sends the held preview, unless the prompt was interrupted meanwhile. The caller
// holds run.pmu.
func (rt *runtimeImpl) flushPreview() {
	pv := rt.pending
	rt.pending = nil
	if pv == nil || rt.ctx.Err() != nil {
		return
	}
	if ps, ok := rt.run.sink.(PreviewSink); ok && ps != nil {
		ps.SendPreview(*pv)
	}
}
