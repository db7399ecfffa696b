package server

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// 100 websocket clients, one of which never reads: execution and the other clients must not
// wait for it (its previews are dropped or it is disconnected; nothing blocks on its socket,
// whose write timeout is far longer than the test's bound).
func TestHundredClientsOneNeverReads(t *testing.T) {
	f := newFixture(t, withRegistry(testRegistry(newBlockNode())), func(c *Config) {
		c.WSQueue = 64
		c.WSWriteTimeout = time.Minute
		c.PreviewSize = 256
	})
	const readers = 99
	stuck := f.dial("?clientId=stuck")
	stuck.mustRead(5 * time.Second) // registered; it never reads again
	type result struct {
		progress int
		err      error
	}
	results := make(chan result, readers)
	ready := sync.WaitGroup{}
	ready.Add(readers)
	var bigID string
	start := make(chan string)
	for i := 0; i < readers; i++ {
		ws := f.dial(fmt.Sprintf("?clientId=r%d", i))
		go func() {
			if _, err := ws.read(10 * time.Second); err != nil {
				ready.Done()
				results <- result{err: err}
				return
			}
			ready.Done()
			id := <-start
			progress := 0
			deadline := time.Now().Add(30 * time.Second)
			for {
				m, err := ws.read(time.Until(deadline))
				if err != nil {
					results <- result{err: fmt.Errorf("after %d progress: %w", progress, err)}
					return
				}
				if m.typ == "progress" && str(m.data, "prompt_id") == id {
					progress++
				}
				if m.typ == "status" && progress > 0 && queueRemainingOf(t, m) == 0 {
					results <- result{progress: progress}
					return
				}
			}
		}()
	}
	ready.Wait()
	began := time.Now()
	// A long prompt whose previews all go to the client that never reads.
	bigID = f.queuePrompt(`{"1": {"class_type": "TestSpam", "inputs": {"steps": 150, "previews": true, "size": 256}}}`, `"client_id": "stuck"`)
	// Then a prompt without a client: its progress is broadcast to everyone.
	small := f.queuePrompt(`{"1": {"class_type": "TestSpam", "inputs": {"steps": 50, "previews": false}}}`)
	for i := 0; i < readers; i++ {
		start <- small
	}
	for i := 0; i < readers; i++ {
		r := <-results
		if r.err != nil {
			t.Fatalf("reader: %v", r.err)
		}
		if r.progress == 0 {
			t.Fatalf("a reader got no progress")
		}
	}
	elapsed := time.Since(began)
	if elapsed > 20*time.Second {
		t.Fatalf("the readers waited %v: something blocked on the client that never reads", elapsed)
	}
	for _, id := range []string{bigID, small} {
		if e := f.waitHistory(id, 5*time.Second); statusStr(t, e) != "success" {
			t.Fatalf("prompt %s: %s", id, mustJSON(t, e))
		}
	}
	// The stuck client had previews dropped or was disconnected.
	f.srv.hub.mu.Lock()
	c, still := f.srv.hub.bySID["stuck"]
	dropped := int64(0)
	if still {
		dropped = c.dropped.Load()
	}
	f.srv.hub.mu.Unlock()
	if still && dropped == 0 {
		t.Fatalf("the client that never reads lost nothing: the drop policy did not engage")
	}
	t.Logf("99 readers done in %v; never-reading client: registered=%v dropped=%d", elapsed, still, dropped)
}

// The drop policy on one client whose writer is stuck (never started here): progress and
// previews are dropped once its queue is half full; when a message that must not be lost finds
// the queue full, the client is disconnected and leaves the registry. Other clients are
// unaffected.
func TestHubDropPolicy(t *testing.T) {
	h := newHub(slog.New(slog.NewTextHandler(io.Discard, nil)), 8, time.Second, time.Minute)
	conns := make(chan *websocket.Conn, 2)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		conns <- c
	}))
	defer ts.Close()
	dial := func() *websocket.Conn {
		c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.URL, "http"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return <-conns
	}
	stuck := h.attach(dial(), "stuck")
	other := h.attach(dial(), "other")
	defer h.wg.Add(-4) // neither client runs its goroutines in this test
	drain := func(c *wsClient) int {
		n := 0
		for {
			select {
			case <-c.send:
				n++
			default:
				return n
			}
		}
	}
	progress := outMsg{data: []byte(`{"type":"progress"}`)}
	critical := outMsg{data: []byte(`{"type":"executing"}`), critical: true}
	for i := 0; i < 6; i++ {
		h.broadcast(progress)
	}
	if d := stuck.dropped.Load(); d != 2 {
		t.Fatalf("dropped %d progress messages, want 2 (the queue of 8 takes 4 before dropping)", d)
	}
	drain(other)
	for i := 0; i < 4; i++ { // fills the stuck queue to 8
		h.broadcast(critical)
	}
	if _, ok := h.bySID["stuck"]; !ok {
		t.Fatalf("disconnected before the queue was full")
	}
	h.broadcast(critical)
	h.mu.Lock()
	_, stillStuck := h.bySID["stuck"]
	_, stillOther := h.bySID["other"]
	h.mu.Unlock()
	if stillStuck {
		t.Fatalf("a client whose queue is full of critical messages stayed registered")
	}
	if !stillOther || drain(other) != 5 {
		t.Fatalf("the other client lost messages")
	}
	select {
	case <-stuck.done:
	default:
		t.Fatalf("the stuck client was not stopped")
	}
	other.kill()
}

// After Shutdown and closing the HTTP server, no goroutine of the server remains.
func TestNoGoroutineLeaks(t *testing.T) {
	settle := func(limit int) int {
		var n int
		for i := 0; i < 300; i++ {
			runtime.GC()
			n = runtime.NumGoroutine()
			if n <= limit {
				return n
			}
			time.Sleep(10 * time.Millisecond)
		}
		return n
	}
	runtime.GC()
	time.Sleep(50 * time.Millisecond)
	base := runtime.NumGoroutine()
	block := newBlockNode()
	f := newFixture(t, withRegistry(testRegistry(block)))
	var conns []*wsConn
	for i := 0; i < 10; i++ {
		ws := f.dial(fmt.Sprintf("?clientId=c%d", i))
		ws.mustRead(5 * time.Second)
		conns = append(conns, ws)
	}
	id := f.queuePrompt(`{"1": {"class_type": "TestSpam", "inputs": {"steps": 20, "previews": true}}}`, `"client_id": "c0"`)
	conns[0].until(10*time.Second, isDone(id))
	// Leave a prompt running and one pending, a client connected, and shut down.
	f.queuePrompt(`{"1": {"class_type": "TestBlock", "inputs": {"key": "leak"}}}`)
	<-block.started
	f.queuePrompt(outPrompt(1))
	f.close()
	for _, c := range conns {
		c.conn.Close()
	}
	if n := settle(base); n > base {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%d goroutines after shutdown, %d before:\n%s", n, base, buf)
	}
}

// A client that never answers pings (this one never reads, so its pong handler never runs) is
// dropped after two ping periods; a reading client stays.
func TestPingKeepalive(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.WSPingInterval = 50 * time.Millisecond })
	silent := f.dial("?clientId=silent")
	silent.mustRead(5 * time.Second) // then it never reads again
	alive := f.dial("?clientId=alive")
	alive.mustRead(5 * time.Second) // registered once its first message arrives
	done := make(chan struct{})
	go func() { // reading answers the pings; it ends when the connection is closed below
		defer close(done)
		for {
			if _, err := alive.read(10 * time.Second); err != nil {
				return
			}
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.srv.hub.mu.Lock()
		_, s := f.srv.hub.bySID["silent"]
		_, a := f.srv.hub.bySID["alive"]
		f.srv.hub.mu.Unlock()
		if !a {
			t.Fatalf("a client that answers pings was dropped")
		}
		if !s {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a client that never answers pings was kept")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // several more ping periods
	f.srv.hub.mu.Lock()
	_, a := f.srv.hub.bySID["alive"]
	f.srv.hub.mu.Unlock()
	alive.conn.Close()
	<-done
	if !a {
		t.Fatalf("a client that answers pings was dropped")
	}
}
