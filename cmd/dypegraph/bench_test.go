package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestBenchDiT(t *testing.T) {
	var out, errb bytes.Buffer
	code := runMain([]string{"bench", "dit", "--dim", "64", "--layers", "1", "--refiner-layers", "1", "--heads", "2",
		"--tokens", "12", "--caption", "5", "--cap-dim", "16", "--threads", "1", "--repeats", "3", "--warmup", "0", "--json"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var res map[string]any
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	for _, k := range []string{"median_ms", "min_ms", "max_ms", "gflop", "gflops_per_s", "peak_rss_mb"} {
		v, ok := res[k].(float64)
		if !ok || v <= 0 {
			t.Errorf("%s = %v, want a positive number", k, res[k])
		}
	}
	if res["min_ms"].(float64) > res["median_ms"].(float64) || res["median_ms"].(float64) > res["max_ms"].(float64) {
		t.Errorf("min/median/max out of order: %v", res)
	}
	if g, ok := res["grid"].([]any); !ok || len(g) != 2 || g[0].(float64) != 3 || g[1].(float64) != 4 {
		t.Errorf("grid %v, want [3 4] for 12 tokens", res["grid"])
	}
	if res["seq_len"].(float64) != 64 || res["threads"].(float64) != 1 || res["dtype"] != "bf16" {
		t.Errorf("seq_len %v threads %v dtype %v", res["seq_len"], res["threads"], res["dtype"])
	}
	if n := len(res["times_ms"].([]any)); n != 3 {
		t.Errorf("%d timings, want 3", n)
	}

	// Text output.
	out.Reset()
	code = runMain([]string{"bench", "dit", "--dim", "64", "--layers", "0", "--heads", "2", "--tokens", "4", "--caption", "1",
		"--cap-dim", "8", "--threads", "1", "--repeats", "1", "--dtype", "f32"}, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "GFLOP/s") {
		t.Fatalf("text output: exit %d: %q %s", code, out.String(), errb.String())
	}
}

func TestBenchUsage(t *testing.T) {
	base := []string{"--dim", "64", "--layers", "1", "--heads", "2", "--tokens", "4", "--caption", "1"}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no subcommand", []string{"bench"}, 2, "usage: dypegraph bench"},
		{"help", []string{"bench", "-h"}, 0, "dit"},
		{"unknown subcommand", []string{"bench", "vae"}, 2, "unknown subcommand"},
		{"dit help", []string{"bench", "dit", "-h"}, 0, "--tokens"},
		{"missing dim", []string{"bench", "dit", "--layers", "1", "--heads", "2", "--tokens", "4", "--caption", "1"}, 2, "--dim is required"},
		{"bad flag", append([]string{"bench", "dit", "--bogus"}, base...), 2, "bogus"},
		{"heads", []string{"bench", "dit", "--dim", "64", "--layers", "1", "--heads", "3", "--tokens", "4", "--caption", "1"}, 2, "heads"},
		{"dtype", append(append([]string{"bench", "dit"}, base...), "--dtype", "int8"), 2, "--dtype"},
		{"backend", append(append([]string{"bench", "dit"}, base...), "--backend", "tpu"), 2, "not available"},
		{"repeats", append(append([]string{"bench", "dit"}, base...), "--repeats", "0"), 2, "--repeats"},
		{"argument", append(append([]string{"bench", "dit"}, base...), "extra"), 2, "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runMain(tc.args, &out, &errb)
			if code != tc.code {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tc.code, errb.String())
			}
			if !strings.Contains(errb.String()+out.String(), tc.want) {
				t.Errorf("output %q does not mention %q", errb.String()+out.String(), tc.want)
			}
		})
	}
}

func TestNearSquareGrid(t *testing.T) {
	for _, tc := range []struct{ n, r, c int }{{4096, 64, 64}, {12, 3, 4}, {13, 1, 13}, {1, 1, 1}, {60, 6, 10}, {1024, 32, 32}} {
		if r, c := nearSquareGrid(tc.n); r != tc.r || c != tc.c {
			t.Errorf("nearSquareGrid(%d) = %d×%d, want %d×%d", tc.n, r, c, tc.r, tc.c)
		}
	}
}
