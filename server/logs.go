package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/dypegraph/dypegraph/internal/ojson"
)

// ComfyUI's /internal/logs routes (api_server/routes/internal/internal_routes.py): the
// frontend's terminal panel reads the recent log and may subscribe its websocket to new lines
// ("logs" events). dypegraph keeps the last logRingSize lines its server logged (Info and
// above), whatever Config.Logger does with them.

// logRingSize is how many log lines are kept (ComfyUI keeps 300).
const logRingSize = 300

// Terminal size reported with the log (ComfyUI's fallback when stdout is not a terminal).
const (
	logCols = 80
	logRows = 24
)

type logEntry struct {
	t, m string
}

func (e logEntry) object() *ojson.Object { return ojson.NewObject().Set("t", e.t).Set("m", e.m) }

// logRing keeps the recent log lines and forwards new ones to subscribed websocket clients.
type logRing struct {
	mu       sync.Mutex
	entries  []logEntry // oldest first, at most logRingSize
	pending  []logEntry // not yet sent to subscribers
	subs     map[string]bool
	flushing bool
	// send delivers a "logs" event to one client and reports whether that client is connected;
	// set by the server.
	send func(sid string, entries []logEntry) bool
}

func newLogRing() *logRing { return &logRing{subs: map[string]bool{}} }

// Write records one formatted log line (slog's text handler writes one record per call).
func (l *logRing) Write(p []byte) (int, error) {
	e := logEntry{t: time.Now().Format("2006-01-02T15:04:05.000000"), m: string(p)}
	l.mu.Lock()
	if len(l.entries) == logRingSize {
		copy(l.entries, l.entries[1:])
		l.entries = l.entries[:logRingSize-1]
	}
	l.entries = append(l.entries, e)
	start := false
	if len(l.subs) > 0 && l.send != nil {
		l.pending = append(l.pending, e)
		if len(l.pending) > logRingSize {
			l.pending = l.pending[len(l.pending)-logRingSize:]
		}
		start = !l.flushing
		l.flushing = true
	}
	l.mu.Unlock()
	if start {
		// Sent from a goroutine of its own: the hub logs too, and must never wait on itself.
		go l.flush()
	}
	return len(p), nil
}

// flush sends pending lines to the subscribers until none are left, then ends.
func (l *logRing) flush() {
	for {
		l.mu.Lock()
		batch := l.pending
		l.pending = nil
		var subs []string
		for sid := range l.subs {
			subs = append(subs, sid)
		}
		if len(batch) == 0 || len(subs) == 0 {
			l.pending = nil
			l.flushing = false
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		for _, sid := range subs {
			if !l.send(sid, batch) {
				// Like ComfyUI: a subscriber whose socket is gone is unsubscribed.
				l.subscribe(sid, false)
			}
		}
	}
}

func (l *logRing) subscribe(sid string, on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if on {
		l.subs[sid] = true
	} else {
		delete(l.subs, sid)
	}
}

func (l *logRing) snapshot() []logEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]logEntry(nil), l.entries...)
}

// teeHandler sends every record to two handlers.
type teeHandler struct{ a, b slog.Handler }

func (t teeHandler) Enabled(ctx context.Context, lv slog.Level) bool {
	return t.a.Enabled(ctx, lv) || t.b.Enabled(ctx, lv)
}

func (t teeHandler) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	if t.a.Enabled(ctx, r.Level) {
		errs = append(errs, t.a.Handle(ctx, r.Clone()))
	}
	if t.b.Enabled(ctx, r.Level) {
		errs = append(errs, t.b.Handle(ctx, r))
	}
	return errors.Join(errs...)
}

func (t teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return teeHandler{t.a.WithAttrs(as), t.b.WithAttrs(as)}
}

func (t teeHandler) WithGroup(name string) slog.Handler {
	return teeHandler{t.a.WithGroup(name), t.b.WithGroup(name)}
}

// withLogRing returns a logger that writes to base and to ring.
func withLogRing(base *slog.Logger, ring *logRing) *slog.Logger {
	return slog.New(teeHandler{base.Handler(), slog.NewTextHandler(ring, &slog.HandlerOptions{Level: slog.LevelInfo})})
}

func entriesJSON(es []logEntry) []any {
	out := make([]any, len(es))
	for i, e := range es {
		out[i] = e.object()
	}
	return out
}

// handleLogs is GET /internal/logs: the recent log as one string of "time - line" entries.
func (s *Server) handleLogs(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	for _, e := range s.logs.snapshot() {
		b.WriteString(e.t + " - " + e.m)
	}
	writeJSON(w, http.StatusOK, b.String())
}

// handleLogsRaw is GET /internal/logs/raw: {"entries": [{"t", "m"}], "size": {"cols", "rows"}}.
func (s *Server) handleLogsRaw(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, ojson.NewObject().Set("entries", entriesJSON(s.logs.snapshot())).
		Set("size", ojson.NewObject().Set("cols", logCols).Set("rows", logRows)))
}

// handleLogsSubscribe is PATCH /internal/logs/subscribe {"clientId", "enabled"}: the websocket
// client with that id gets each new log line as {"type": "logs", "data": {"entries", "size":
// null}} until it unsubscribes or disconnects.
func (s *Server) handleLogsSubscribe(w http.ResponseWriter, r *http.Request) {
	body, ok := readJSONObject(w, r)
	if !ok {
		return
	}
	idv, _ := body.Get("clientId")
	id, okID := idv.(string)
	enabled, okEnabled := body.Get("enabled")
	on, isBool := enabled.(bool)
	if !okID || id == "" || !okEnabled || !isBool {
		httpError(w, http.StatusBadRequest, `send {"clientId": "<websocket client id>", "enabled": true|false}`)
		return
	}
	s.logs.subscribe(id, on)
	w.WriteHeader(http.StatusOK)
}

// sendLogs delivers a "logs" event to sid (dropped like progress when its queue is busy);
// false when no such client is connected.
func (s *Server) sendLogs(sid string, entries []logEntry) bool {
	if !s.hub.has(sid) {
		return false
	}
	s.hub.sendTo(sid, jsonMsg("logs", ojson.NewObject().Set("entries", entriesJSON(entries)).Set("size", nil), false))
	return true
}
