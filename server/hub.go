package server

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/dypegraph/dypegraph/internal/ojson"
)

// maxClientMessage bounds what a websocket client may send in one message (the only message
// processed is a small feature_flags object).
const maxClientMessage = 64 << 10

// outMsg is one frame queued for a client.
type outMsg struct {
	binary bool
	data   []byte
	// critical messages (execution events, executing, executed, status) are never dropped: a
	// client whose queue is full of them is disconnected. Others (progress, previews) are
	// dropped when the queue is half full.
	critical bool
}

// wsClient is one websocket connection. Its writer goroutine owns all data writes; the
// handler goroutine reads. send is never closed: done tells the writer to stop.
type wsClient struct {
	hub  *hub
	sid  string
	conn *websocket.Conn
	send chan outMsg
	done chan struct{}
	once sync.Once
	// previewMeta is set when the client negotiated supports_preview_metadata.
	previewMeta atomic.Bool
	dropped     atomic.Int64
}

// kill stops the client: its goroutines end and it leaves the registry (only if the registry
// still points at it: a reconnect with the same clientId may have replaced it).
func (c *wsClient) kill() {
	c.once.Do(func() {
		close(c.done)
		_ = c.conn.Close()
		c.hub.remove(c)
	})
}

// enqueue adds m without blocking; it reports false when the client must be disconnected.
func (c *wsClient) enqueue(m outMsg) bool {
	select {
	case <-c.done:
		return true
	default:
	}
	if !m.critical && len(c.send) >= cap(c.send)/2 {
		c.dropped.Add(1)
		return true
	}
	select {
	case c.send <- m:
		return true
	default:
		return false
	}
}

// hub is the registry of websocket clients and the fan-out of messages to them.
type hub struct {
	log          *slog.Logger
	queueLen     int
	writeTimeout time.Duration
	ping         time.Duration

	mu     sync.Mutex
	bySID  map[string]*wsClient
	conns  map[*wsClient]struct{}
	closed bool
	wg     sync.WaitGroup
}

func newHub(log *slog.Logger, queueLen int, writeTimeout, ping time.Duration) *hub {
	return &hub{log: log, queueLen: queueLen, writeTimeout: writeTimeout, ping: ping,
		bySID: map[string]*wsClient{}, conns: map[*wsClient]struct{}{}}
}

// A client registers under its sid (attach). A previous client with the same sid is dropped
// from the registry but not closed (ComfyUI's rule: the frontend reuses its id across
// reconnects, and a duplicated browser tab shares it).

// remove is compare-and-remove: a replaced client never unregisters its successor.
func (h *hub) remove(c *wsClient) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.bySID[c.sid] == c {
		delete(h.bySID, c.sid)
	}
	delete(h.conns, c)
}

// deliver queues m for the clients chosen by pick (under the lock) and disconnects the ones that
// cannot take a critical message.
func (h *hub) deliver(targets func(yield func(*wsClient))) {
	var dead []*wsClient
	h.mu.Lock()
	targets(func(c *wsClient) { dead = append(dead, c) })
	h.mu.Unlock()
	for _, c := range dead {
		h.log.Warn("websocket client too slow: its send queue is full, disconnecting", "sid", c.sid)
		c.kill()
	}
}

// broadcast sends m to every registered client.
func (h *hub) broadcast(m outMsg) {
	h.deliver(func(dead func(*wsClient)) {
		for _, c := range h.bySID {
			if !c.enqueue(m) {
				dead(c)
			}
		}
	})
}

// sendTo sends m to the client registered under sid, if any.
func (h *hub) sendTo(sid string, m outMsg) {
	h.deliver(func(dead func(*wsClient)) {
		if c, ok := h.bySID[sid]; ok && !c.enqueue(m) {
			dead(c)
		}
	})
}

func (h *hub) clients() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.bySID)
}

// closeAll sends a going-away close frame to every connection, closes them and waits for
// their goroutines. No client can register afterwards.
func (h *hub) closeAll() {
	h.mu.Lock()
	h.closed = true
	all := make([]*wsClient, 0, len(h.conns))
	for c := range h.conns {
		all = append(all, c)
	}
	h.mu.Unlock()
	msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down")
	for _, c := range all {
		_ = c.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		c.kill()
	}
	h.wg.Wait()
}

// attach registers an upgraded connection with its first messages; nil when the hub is
// closed (the connection is then closed). Callers that must order the first messages against
// broadcasts hold their own lock around attach.
func (h *hub) attach(conn *websocket.Conn, sid string, first ...outMsg) *wsClient {
	c := &wsClient{hub: h, sid: sid, conn: conn, send: make(chan outMsg, h.queueLen), done: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		_ = conn.Close()
		return nil
	}
	for _, m := range first {
		c.enqueue(m)
	}
	h.bySID[c.sid] = c
	h.conns[c] = struct{}{}
	h.wg.Add(2)
	return c
}

// run serves an attached client until it ends: the calling goroutine reads, a second one
// writes.
func (h *hub) run(c *wsClient, onFlags func(*wsClient, *ojson.Object) []outMsg) {
	go func() {
		defer h.wg.Done()
		c.writeLoop(h.writeTimeout, h.ping)
	}()
	defer h.wg.Done()
	c.readLoop(h.ping, onFlags)
	c.kill()
}

func (c *wsClient) writeLoop(writeTimeout, ping time.Duration) {
	t := time.NewTicker(ping)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case m := <-c.send:
			typ := websocket.TextMessage
			if m.binary {
				typ = websocket.BinaryMessage
			}
			_ = c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := c.conn.WriteMessage(typ, m.data); err != nil {
				c.kill()
				return
			}
		case <-t.C:
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)); err != nil {
				c.kill()
				return
			}
		}
	}
}

// readLoop reads until the connection fails or stays silent (no pong, no message) for two
// ping periods. Only the first text message is looked at, for feature flags.
func (c *wsClient) readLoop(ping time.Duration, onFlags func(*wsClient, *ojson.Object) []outMsg) {
	c.conn.SetReadLimit(maxClientMessage)
	alive := func() { _ = c.conn.SetReadDeadline(time.Now().Add(2 * ping)) }
	alive()
	c.conn.SetPongHandler(func(string) error { alive(); return nil })
	first := true
	for {
		typ, data, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		alive()
		if typ != websocket.TextMessage || !first {
			continue
		}
		msg, err := parseClientMessage(data)
		if err != nil {
			continue // like ComfyUI: invalid JSON does not count as the first message
		}
		first = false
		if msg.Type == "feature_flags" && onFlags != nil {
			for _, m := range onFlags(c, msg.Data) {
				if !c.enqueue(m) {
					return
				}
			}
		}
	}
}

// clientMessage is a message a websocket client sent: {"type": str, "data": object}.
type clientMessage struct {
	Type string
	Data *ojson.Object
}

// parseClientMessage reads one client message. data defaults to an empty object; a non-object
// data is an error for feature_flags only (other types are ignored by the server anyway).
func parseClientMessage(b []byte) (*clientMessage, error) {
	if len(b) > maxClientMessage {
		return nil, fmt.Errorf("client message of %d bytes is over the %d byte limit", len(b), maxClientMessage)
	}
	v, err := ojson.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("client message: %w", err)
	}
	obj, ok := v.(*ojson.Object)
	if !ok {
		return nil, fmt.Errorf("client message: expected a JSON object, got %s", ojson.Kind(v))
	}
	msg := &clientMessage{Data: ojson.NewObject()}
	if t, ok := obj.Get("type"); ok {
		s, ok := t.(string)
		if !ok {
			return nil, fmt.Errorf("client message: type must be a string, got %s", ojson.Kind(t))
		}
		msg.Type = s
	}
	if d, ok := obj.Get("data"); ok && d != nil {
		dobj, ok := d.(*ojson.Object)
		if !ok {
			if msg.Type == "feature_flags" {
				return nil, fmt.Errorf("client message: feature_flags data must be an object, got %s", ojson.Kind(d))
			}
		} else {
			msg.Data = dobj
		}
	}
	return msg, nil
}

// jsonMsg encodes a {"type", "data"} text frame.
func jsonMsg(typ string, data any, critical bool) outMsg {
	b, err := ojson.Marshal(ojson.NewObject().Set("type", typ).Set("data", data))
	if err != nil {
		// Event data is built by the server and the executor; a value that cannot be encoded
		// is a bug, but the client still learns that something happened.
		b, _ = json.Marshal(map[string]any{"type": typ, "data": map[string]string{"error": err.Error()}})
	}
	return outMsg{data: b, critical: critical}
}

var upgrader = websocket.Upgrader{
	ReadBufferSize:  4096,
	WriteBufferSize: 16 << 10,
	// The Host/Origin guard (or CORS) middleware has already judged the request.
	CheckOrigin: func(*http.Request) bool { return true },
}

// has reports whether a client is registered under sid.
func (h *hub) has(sid string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.bySID[sid]
	return ok
}

// previewMeta reports whether the client registered under sid negotiated
// supports_preview_metadata.
func (h *hub) previewMeta(sid string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.bySID[sid]
	return ok && c.previewMeta.Load()
}
