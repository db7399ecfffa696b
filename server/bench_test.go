package server

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dypegraph/dypegraph/internal/ojson"
)

// BenchmarkPromptAccept measures POST /prompt end to end (parse, validate, a durable SQLite
// commit with fsync) on a paused server.
func BenchmarkPromptAccept(b *testing.B) {
	for _, par := range []int{1, 8} {
		b.Run(fmt.Sprintf("clients=%d", par), func(b *testing.B) {
			f := newFixture(b, withRegistry(testRegistry(newBlockNode())), paused(), func(c *Config) { c.WSQueue = 1024 })
			body := `{"prompt": ` + outPrompt(1) + `}`
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			per := (b.N + par - 1) / par
			errs := make(chan error, par)
			for w := 0; w < par; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < per; i++ {
						resp, err := f.client.Post(f.ts.URL+"/prompt", "application/json", strings.NewReader(body))
						if err != nil {
							errs <- err
							return
						}
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							errs <- fmt.Errorf("status %d", resp.StatusCode)
							return
						}
					}
				}()
			}
			wg.Wait()
			el := time.Since(start)
			b.StopTimer()
			select {
			case err := <-errs:
				b.Fatal(err)
			default:
			}
			b.ReportMetric(float64(per*par)/el.Seconds(), "prompts/s")
		})
	}
}

// BenchmarkWSFanout200 measures delivery to 200 websocket clients: "broadcast" is one status
// message from the hub to all 200 readers; "prompt" is a trivial prompt without client_id from
// POST until all 200 clients got the final status (queue_remaining 0).
func BenchmarkWSFanout200(b *testing.B) {
	const clients = 200
	f := newFixture(b, withRegistry(testRegistry(newBlockNode())), paused(), func(c *Config) { c.WSQueue = 1024 })
	f.srv.Resume()
	got := make(chan struct{}, clients*4)
	var readers sync.WaitGroup
	for i := 0; i < clients; i++ {
		ws := f.dial(fmt.Sprintf("?clientId=b%d", i))
		readers.Add(1)
		go func() {
			defer readers.Done()
			final := []byte(`{"type":"status","data":{"status":{"exec_info":{"queue_remaining":0}}}}`)
			for {
				_ = ws.conn.SetReadDeadline(time.Now().Add(time.Minute))
				_, data, err := ws.conn.ReadMessage()
				if err != nil {
					return
				}
				if bytes.Equal(data, final) {
					got <- struct{}{}
				}
			}
		}()
	}
	wait := func() {
		for i := 0; i < clients; i++ {
			select {
			case <-got:
			case <-time.After(30 * time.Second):
				b.Fatalf("only %d of %d clients got the message", i, clients)
			}
		}
	}
	msg := jsonMsg("status", ojson.NewObject().Set("status", ojson.NewObject().Set("exec_info", ojson.NewObject().Set("queue_remaining", 0))), true)
	b.Run("broadcast", func(b *testing.B) {
		for b.Loop() {
			f.srv.hub.broadcast(msg)
			wait()
		}
	})
	b.Run("prompt", func(b *testing.B) {
		body := `{"prompt": ` + outPrompt(1) + `}`
		for b.Loop() {
			resp, err := f.client.Post(f.ts.URL+"/prompt", "application/json", strings.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			wait()
		}
	})
	f.close()
	readers.Wait()
}
