package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/dypegraph/dypegraph/server"
)

func init() {
	commands["serve"] = command{summary: "run the ComfyUI-compatible HTTP and websocket server with a durable queue", run: runServe}
}

// serveOptions are the flags of `dypegraph serve`.
type serveOptions struct {
	listen        string
	port          int
	dataDir       string
	dirs          dirFlags
	frontEndRoot  string
	authToken     string
	cors          string
	maxUploadMB   float64
	maxHistory    int
	previewMethod string
	previewSize   int
	logLevel      string
	grace         time.Duration
}

func (o *serveOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.listen, "listen", "127.0.0.1", "address to listen on (0.0.0.0 or :: for every interface; use --auth-token then)")
	fs.IntVar(&o.port, "port", 8188, "port to listen on (0 picks a free one)")
	fs.StringVar(&o.dataDir, "data-dir", "data", "folder of the queue and history database")
	o.dirs.register(fs, true)
	fs.StringVar(&o.frontEndRoot, "front-end-root", "", "folder of a built ComfyUI web frontend to serve at /")
	fs.StringVar(&o.authToken, "auth-token", "", "require `TOKEN` on every request (Authorization: Bearer TOKEN or ?token=TOKEN; open the web UI as /?token=TOKEN); default $DYPEGRAPH_AUTH_TOKEN")
	fs.StringVar(&o.cors, "enable-cors-header", "", "answer browsers with CORS headers for `ORIGIN` (\"*\" for any) instead of the Host/Origin guard")
	fs.Float64Var(&o.maxUploadMB, "max-upload-size", 100, "largest request body, uploads included, in MB")
	fs.IntVar(&o.maxHistory, "max-history", 10000, "history entries kept (the oldest go first)")
	fs.StringVar(&o.previewMethod, "preview-method", "auto", "sampler previews: none, auto, latent2rgb or taesd (a prompt's extra_data.preview_method overrides it)")
	fs.IntVar(&o.previewSize, "preview-size", 512, "previews are fitted into this many pixels square")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.DurationVar(&o.grace, "shutdown-timeout", 30*time.Second, "how long a stop waits for requests and the running prompt")
}

func (o *serveOptions) config(log *slog.Logger) (server.Config, error) {
	if o.port < 0 || o.port > 65535 {
		return server.Config{}, fmt.Errorf("--port %d is out of range", o.port)
	}
	if o.maxUploadMB <= 0 {
		return server.Config{}, fmt.Errorf("--max-upload-size must be positive")
	}
	if o.maxHistory <= 0 {
		return server.Config{}, fmt.Errorf("--max-history must be positive")
	}
	if o.previewSize <= 0 || o.previewSize > 8192 {
		return server.Config{}, fmt.Errorf("--preview-size must be between 1 and 8192")
	}
	token := o.authToken
	if token == "" {
		token = os.Getenv("DYPEGRAPH_AUTH_TOKEN")
	}
	return server.Config{
		DataDir: o.dataDir, ModelsDir: o.dirs.models, InputDir: o.dirs.input, OutputDir: o.dirs.output, TempDir: o.dirs.temp,
		FrontEndRoot: o.frontEndRoot, AuthToken: token, CORSOrigin: o.cors,
		MaxUploadSize: int64(o.maxUploadMB * 1024 * 1024), MaxHistory: o.maxHistory,
		PreviewMethod: o.previewMethod, PreviewSize: o.previewSize, Logger: log,
	}, nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

func runServe(args []string, stdout, stderr io.Writer) int {
	var o serveOptions
	fs := newFlagSet("serve", "serve [--listen ADDR] [--port N] [--data-dir DIR] [--models-dir DIR] [--output-dir DIR] [--input-dir DIR] [--temp-dir DIR] [--auth-token T] [flags]", stderr)
	o.register(fs)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "dypegraph serve: unexpected arguments %q\n", fs.Args())
		fs.Usage()
		return 2
	}
	level, err := parseLevel(o.logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "dypegraph serve: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg, err := o.config(log)
	if err != nil {
		fmt.Fprintf(stderr, "dypegraph serve: %v\n", err)
		return 2
	}
	ip := net.ParseIP(o.listen)
	if cfg.AuthToken == "" && (ip == nil || !ip.IsLoopback()) && o.listen != "localhost" {
		log.Warn("listening beyond this machine without --auth-token: anyone who can reach the port can queue prompts and read outputs", "listen", o.listen)
	}
	srv, err := server.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "dypegraph serve: %v\n", err)
		return 1
	}
	ctx, stop := signalContext()
	defer stop()
	addr := net.JoinHostPort(o.listen, strconv.Itoa(o.port))
	err = srv.ListenAndServe(ctx, addr, o.grace, func(a net.Addr) {
		fmt.Fprintf(stdout, "dypegraph serve: listening on http://%s\n", a)
	})
	if err != nil {
		fmt.Fprintf(stderr, "dypegraph serve: %v\n", err)
		return 1
	}
	log.Info("server stopped")
	return 0
}
