package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain runs `dypegraph serve` as a real process (one that the tests can kill with SIGKILL)
// when startServe runs the test binary again with DYPEGRAPH_SERVE_ARGS set; otherwise the tests.
func TestMain(m *testing.M) {
	if raw := os.Getenv("DYPEGRAPH_SERVE_ARGS"); raw != "" {
		var args []string
		if err := json.Unmarshal([]byte(raw), &args); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		os.Exit(runMain(args, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

type serveProc struct {
	cmd    *exec.Cmd
	base   string
	exited chan struct{} // closed when the process has exited; err is then set
	err    error
}

func startServe(t *testing.T, args ...string) *serveProc {
	t.Helper()
	all, _ := json.Marshal(append([]string{"serve", "--port", "0", "--log-level", "warn"}, args...))
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "DYPEGRAPH_SERVE_ARGS="+string(all))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serveProc{cmd: cmd, exited: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on ") {
				lines <- sc.Text()
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
	})
	select {
	case l := <-lines:
		p.base = l[strings.Index(l, "http://"):]
	case <-p.exited:
		t.Fatalf("serve exited before listening: %v", p.err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start listening")
	}
	return p
}

func imagePromptBody(color int) string {
	return fmt.Sprintf(`{"prompt": {"1": {"class_type": "EmptyImage", "inputs": {"width": 768, "height": 768, "batch_size": 1, "color": %d}},
		"2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
		"3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "k9"}}}}`, color)
}

// Every prompt that got a 200 reaches history after the server is killed with SIGKILL and
// started again on the same folders.
func TestServeKill9Durability(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	dir := t.TempDir()
	dirs := []string{"--data-dir", filepath.Join(dir, "data"), "--models-dir", filepath.Join(dir, "models"),
		"--input-dir", filepath.Join(dir, "input"), "--output-dir", filepath.Join(dir, "output"), "--temp-dir", filepath.Join(dir, "temp")}
	p := startServe(t, dirs...)
	client := &http.Client{Timeout: 10 * time.Second}
	var ids []string
	for i := 0; i < 25; i++ {
		resp, err := client.Post(p.base+"/prompt", "application/json", strings.NewReader(imagePromptBody(i)))
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			PromptID string `json:"prompt_id"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			t.Fatalf("POST /prompt = %d (%v)", resp.StatusCode, err)
		}
		ids = append(ids, out.PromptID)
	}
	// The kill must hit a server with work left, or the test proves nothing.
	resp, err := client.Get(p.base + "/prompt")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		ExecInfo struct {
			QueueRemaining int `json:"queue_remaining"`
		} `json:"exec_info"`
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	if st.ExecInfo.QueueRemaining == 0 {
		t.Fatalf("all prompts finished before the kill; make them slower")
	}
	t.Logf("killed with %d of %d prompts left", st.ExecInfo.QueueRemaining, len(ids))

	q := startServe(t, dirs...)
	deadline := time.Now().Add(60 * time.Second)
	for _, id := range ids {
		for {
			resp, err := client.Get(q.base + "/history/" + id)
			if err != nil {
				t.Fatal(err)
			}
			var h map[string]struct {
				Status struct {
					StatusStr string `json:"status_str"`
				} `json:"status"`
			}
			err = json.NewDecoder(resp.Body).Decode(&h)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if e, ok := h[id]; ok && e.Status.StatusStr == "success" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("prompt %s accepted before the kill never succeeded after the restart (history %v)", id, h)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// SIGTERM stops it gracefully with exit code 0.
	if err := q.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-q.exited:
		if q.err != nil {
			t.Fatalf("serve after SIGTERM: %v", q.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
}

func TestServeFlagErrors(t *testing.T) {
	dir := t.TempDir()
	base := []string{"serve", "--data-dir", filepath.Join(dir, "d"), "--temp-dir", filepath.Join(dir, "t"),
		"--input-dir", filepath.Join(dir, "i"), "--output-dir", filepath.Join(dir, "o"), "--models-dir", filepath.Join(dir, "m")}
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"serve", "-h"}, 0, "--auth-token"},
		{[]string{"serve", "extra"}, 2, "unexpected arguments"},
		{[]string{"serve", "--port", "70000"}, 2, "out of range"},
		{[]string{"serve", "--max-upload-size", "0"}, 2, "must be positive"},
		{[]string{"serve", "--log-level", "loud"}, 2, "--log-level"},
		{append(append([]string{}, base...), "--preview-method", "fancy"), 1, "unknown preview method"},
		{append(append([]string{}, base...), "--temp-dir", dir, "--data-dir", filepath.Join(dir, "d")), 1, "refusing to use"},
		{append(append([]string{}, base...), "--listen", "256.0.0.1"), 1, "listen"},
	}
	for _, c := range cases {
		code, _, stderr := runCLI(c.args...)
		if code != c.code || !strings.Contains(stderr, c.msg) {
			t.Errorf("%v = %d, stderr %q; want %d with %q", c.args, code, stderr, c.code, c.msg)
		}
	}
}
