package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dypegraph/dypegraph/executor"
	"github.com/dypegraph/dypegraph/internal/ojson"
	"github.com/dypegraph/dypegraph/nodes"
)

// Server is a running dypegraph server: store, queue worker, websocket hub and HTTP routes.
type Server struct {
	cfg      Config
	env      nodes.Env
	log      *slog.Logger
	st       *store
	hub      *hub
	exec     *executor.Executor
	handler  http.Handler
	stageDir string

	// qmu guards the in-memory queue (a mirror of the store's queue rows) and the flags.
	qmu         sync.Mutex
	pending     pendingHeap
	byID        map[string]*queueItem // pending prompts by id
	running     *queueItem
	paused      bool
	freePending bool
	lastNode    atomic.Pointer[lastNode]

	wake       chan struct{}
	baseCtx    context.Context
	stop       context.CancelCauseFunc
	workerDone chan struct{}
	closing    atomic.Bool
	closeOnce  sync.Once
	closeErr   error
	uploadMu   sync.Mutex
	// settingsMu serialises the settings file's read-modify-write; userMu the user file writes.
	settingsMu sync.Mutex
	userMu     sync.Mutex
	// logs keeps the recent log lines for /internal/logs.
	logs *logRing
}

// New opens the store in cfg.DataDir (applying the crash-recovery rule to prompts that were
// running when the previous process died), wipes the temp folder, and starts the queue worker.
// Serve its Handler; call Shutdown to stop.
func New(cfg Config) (*Server, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	for _, d := range []string{c.InputDir, c.OutputDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create folder %s: %w", d, err)
		}
	}
	ctx := context.Background()
	// The store takes the data-dir lock first: a second server on the same data dir must fail
	// before it touches anything (such as the first one's temp folder).
	st, err := openStore(ctx, c.DataDir)
	if err != nil {
		return nil, err
	}
	if err := wipeTemp(c); err != nil {
		st.close()
		return nil, err
	}
	logs := newLogRing()
	s := &Server{cfg: c, env: c.env(), log: withLogRing(c.Logger, logs), logs: logs, st: st, byID: map[string]*queueItem{},
		paused: c.Paused, wake: make(chan struct{}, 1), workerDone: make(chan struct{})}
	s.exec = executor.New(c.Registry, s.env)
	s.hub = newHub(s.log, c.WSQueue, c.WSWriteTimeout, c.WSPingInterval)
	logs.mu.Lock()
	logs.send = s.sendLogs
	logs.mu.Unlock()
	s.stageDir = filepath.Join(c.DataDir, "uploads")
	if err := os.RemoveAll(s.stageDir); err != nil {
		st.close()
		return nil, fmt.Errorf("clean upload staging folder: %w", err)
	}
	if err := os.MkdirAll(s.stageDir, 0o700); err != nil {
		st.close()
		return nil, fmt.Errorf("create upload staging folder: %w", err)
	}
	requeued, failed, err := st.recoverRunning(ctx, c.MaxHistory, crashEntry)
	if err != nil {
		st.close()
		return nil, err
	}
	for _, id := range requeued {
		s.log.Warn("prompt was running when the server stopped: recorded as interrupted and queued again", "prompt_id", id)
	}
	for _, id := range failed {
		s.log.Error("prompt was running during two unexpected stops: recorded as failed", "prompt_id", id)
	}
	items, err := st.loadQueue(ctx)
	if err != nil {
		st.close()
		return nil, err
	}
	for _, row := range items {
		it, err := itemFromStored(row)
		if err != nil {
			st.close()
			return nil, fmt.Errorf("load the queue: %w", err)
		}
		s.pending = append(s.pending, it)
		it.index = len(s.pending) - 1
		s.byID[it.promptID] = it
	}
	if len(items) > 0 {
		s.log.Info("queue restored", "pending", len(items))
	}
	s.baseCtx, s.stop = context.WithCancelCause(context.Background())
	s.handler = s.routes()
	go s.worker()
	return s, nil
}

// Handler is the HTTP handler of every route.
func (s *Server) Handler() http.Handler { return s.handler }

// Shutdown stops the server: no new prompts start, the running one is interrupted and put back
// in the queue (it runs again on the next start), websocket clients get a going-away close, and
// the store is closed. It waits for the worker until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		s.stop(errShutdown)
		var errs []error
		select {
		case <-s.workerDone:
			// The worker is gone, so nothing runs: release the models the cache holds.
			s.exec.ClearCache()
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("shutdown: the running prompt did not stop in time: %w", ctx.Err()))
		}
		s.hub.closeAll()
		if err := s.st.close(); err != nil {
			errs = append(errs, fmt.Errorf("shutdown: close store: %w", err))
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// ListenAndServe serves on addr until ctx is cancelled, then shuts down gracefully (waiting up
// to grace for requests and the running prompt). ready, when set, is called with the bound
// address once the listener is open.
func (s *Server) ListenAndServe(ctx context.Context, addr string, grace time.Duration, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = s.Shutdown(context.Background())
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	hs := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	herr := hs.Shutdown(sctx)
	if serveErr == nil {
		<-errc
	}
	serr := s.Shutdown(sctx)
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return errors.Join(serveErr, herr, serr)
}

// wipeTemp empties the temp folder at startup like ComfyUI, refusing folders whose wiping
// would destroy something else (the filesystem root, the home or working directory, or a folder
// that holds the other folders).
func wipeTemp(c Config) error {
	t := filepath.Clean(c.TempDir)
	bad := []string{string(filepath.Separator)}
	if h, err := os.UserHomeDir(); err == nil {
		bad = append(bad, filepath.Clean(h))
	}
	if wd, err := os.Getwd(); err == nil {
		bad = append(bad, filepath.Clean(wd))
	}
	for _, b := range bad {
		if t == b {
			return fmt.Errorf("refusing to use %s as the temp folder: it is wiped at startup", t)
		}
	}
	for _, other := range []string{c.DataDir, c.ModelsDir, c.InputDir, c.OutputDir, c.FrontEndRoot} {
		if other == "" {
			continue
		}
		o := filepath.Clean(other)
		if o == t || strings.HasPrefix(o+string(filepath.Separator), t+string(filepath.Separator)) {
			return fmt.Errorf("refusing to use %s as the temp folder: it is wiped at startup and holds %s", t, o)
		}
	}
	if err := os.RemoveAll(t); err != nil {
		return fmt.Errorf("wipe temp folder %s: %w", t, err)
	}
	if err := os.MkdirAll(t, 0o755); err != nil {
		return fmt.Errorf("create temp folder %s: %w", t, err)
	}
	return nil
}

// ---- helpers shared by the handlers

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := ojson.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = ojson.Marshal(ojson.NewObject().Set("error", "encode response: "+err.Error()))
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// httpError answers with a plain-text error message.
func httpError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
}

func serverError(w http.ResponseWriter, log *slog.Logger, err error) {
	log.Error("request failed", "err", err)
	httpError(w, http.StatusInternalServerError, err.Error())
}

// readBody reads the (size-limited) request body.
func readBody(r *http.Request) ([]byte, int, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("the request body is larger than the %d byte limit", mbe.Limit)
		}
		return nil, http.StatusBadRequest, fmt.Errorf("read request body: %w", err)
	}
	return b, 0, nil
}

// readJSONBody decodes the body; false when it is not JSON (nothing written).
func readJSONBody(w http.ResponseWriter, r *http.Request) (any, bool) {
	b, _, err := readBody(r)
	if err != nil {
		return nil, false
	}
	v, err := ojson.Decode(b)
	if err != nil {
		return nil, false
	}
	return v, true
}

// readJSONObject decodes a JSON object body or answers 400.
func readJSONObject(w http.ResponseWriter, r *http.Request) (*ojson.Object, bool) {
	b, status, err := readBody(r)
	if err != nil {
		httpError(w, status, err.Error())
		return nil, false
	}
	v, err := ojson.Decode(b)
	if err != nil {
		httpError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return nil, false
	}
	obj, ok := v.(*ojson.Object)
	if !ok {
		httpError(w, http.StatusBadRequest, "the body must be a JSON object, got "+ojson.Kind(v))
		return nil, false
	}
	return obj, true
}
