package server

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/dypegraph/dypegraph/nodes"
)

// Config is what New needs. Zero values get the defaults noted on each field.
type Config struct {
	// DataDir holds the SQLite store (queue and history). Default "data".
	DataDir string
	// Folders in ComfyUI's layout. Defaults "models", "input", "output", "temp".
	ModelsDir, InputDir, OutputDir, TempDir string
	// FrontEndRoot, when set, is a folder of static files (a built ComfyUI frontend) served at /.
	FrontEndRoot string

	// Registry is the node registry; default nodes.Default().
	Registry *nodes.Registry

	// AuthToken, when set, is required on every request as "Authorization: Bearer <token>" or
	// ?token=<token>. A request with a valid ?token= also gets an HttpOnly, SameSite=Strict
	// cookie that authorizes the browser's later requests and websocket, so the web UI opened as
	// /?token=<token> works.
	AuthToken string
	// CORSOrigin, when set, answers browsers with CORS headers for that origin ("*" for any)
	// instead of applying the Host/Origin guard (ComfyUI's --enable-cors-header).
	CORSOrigin string

	// MaxUploadSize bounds every request body, uploads included (bytes). Default 100 MiB.
	MaxUploadSize int64
	// MaxHistory caps the stored history entries (the oldest go first). Default 10000.
	MaxHistory int
	// PreviewMethod is the default preview method: none, auto, latent2rgb or taesd. Default
	// "auto" (= latent2rgb). A prompt may override it with extra_data.preview_method.
	PreviewMethod string
	// PreviewSize is the box previews are fitted into. Default 512.
	PreviewSize int

	// WSQueue is each websocket client's send queue length. Progress and previews are dropped
	// when it is half full; a client whose queue is full of messages that must not be dropped
	// is disconnected. Default 256.
	WSQueue int
	// WSWriteTimeout bounds one websocket write. Default 10 s.
	WSWriteTimeout time.Duration
	// WSPingInterval is the keepalive ping period; a client that answers nothing for two
	// periods is dropped. Default 20 s.
	WSPingInterval time.Duration

	// Paused starts the server without running the queue (prompts are accepted and stored);
	// Resume starts it.
	Paused bool
	// Logger receives the server's log; default discards.
	Logger *slog.Logger
}

const (
	defaultMaxUpload   = 100 << 20
	defaultMaxHistory  = 10000
	defaultPreviewSize = 512
	defaultWSQueue     = 256
)

func (c *Config) withDefaults() (Config, error) {
	out := *c
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&out.DataDir, "data")
	def(&out.ModelsDir, "models")
	def(&out.InputDir, "input")
	def(&out.OutputDir, "output")
	def(&out.TempDir, "temp")
	for _, p := range []*string{&out.DataDir, &out.ModelsDir, &out.InputDir, &out.OutputDir, &out.TempDir, &out.FrontEndRoot} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return out, fmt.Errorf("config: folder %q: %w", *p, err)
		}
		*p = abs
	}
	if out.Registry == nil {
		out.Registry = nodes.Default()
	}
	if out.MaxUploadSize <= 0 {
		out.MaxUploadSize = defaultMaxUpload
	}
	if out.MaxHistory <= 0 {
		out.MaxHistory = defaultMaxHistory
	}
	def(&out.PreviewMethod, "auto")
	out.PreviewMethod = strings.ToLower(out.PreviewMethod)
	if _, ok := resolvePreviewMethod(out.PreviewMethod, "none"); !ok || out.PreviewMethod == "default" {
		return out, fmt.Errorf("config: unknown preview method %q (want none, auto, latent2rgb or taesd)", c.PreviewMethod)
	}
	if out.PreviewSize <= 0 {
		out.PreviewSize = defaultPreviewSize
	}
	if out.WSQueue < 8 {
		out.WSQueue = defaultWSQueue
	}
	if out.WSWriteTimeout <= 0 {
		out.WSWriteTimeout = 10 * time.Second
	}
	if out.WSPingInterval <= 0 {
		out.WSPingInterval = 20 * time.Second
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return out, nil
}

func (c *Config) env() nodes.Env {
	return nodes.Env{InputDir: c.InputDir, OutputDir: c.OutputDir, TempDir: c.TempDir, ModelsDir: c.ModelsDir}
}

// resolvePreviewMethod maps a method name to what nodes see: auto → latent2rgb, default → the
// server's default. ok is false for an unknown name.
func resolvePreviewMethod(m, serverDefault string) (string, bool) {
	switch strings.ToLower(m) {
	case "", "default":
		if serverDefault == "default" || serverDefault == "" {
			return "none", true
		}
		return resolvePreviewMethod(serverDefault, "none")
	case "none":
		return "none", true
	case "auto", "latent2rgb":
		return "latent2rgb", true
	case "taesd":
		return "taesd", true
	}
	return "", false
}
