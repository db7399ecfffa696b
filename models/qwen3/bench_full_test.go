//go:build fullbench

package qwen3

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dypegraph/dypegraph/tensor"
)

// fullBenchEnv names a folder where BenchmarkFull4B keeps (and on first use writes) an 8 GB
// random-weight checkpoint of the real Qwen3-4B size. The benchmark is built only with the
// fullbench tag: QWEN3_FULL_BENCH_DIR=/big go test -tags fullbench -run '^$' -bench Full4B ./models/qwen3
const fullBenchEnv = "QWEN3_FULL_BENCH_DIR"

// BenchmarkFull4B encodes a 77-token prompt with a Qwen3-4B-sized encoder (random BF16 weights
// in ComfyUI's qwen_3_4b.safetensors naming, memory-mapped, 35 layers run) and reports the time
// per encode and the process's peak resident memory (VmHWM), which includes the mapped weight
// pages the forward pass touched.
func BenchmarkFull4B(b *testing.B) {
	dir := os.Getenv(fullBenchEnv)
	if dir == "" {
		b.Fatalf("set %s to a folder with 8 GB free to run the full-size benchmark", fullBenchEnv)
	}
	path := filepath.Join(dir, "qwen3_4b_random_bf16.safetensors")
	if _, err := os.Stat(path); err != nil {
		start := time.Now()
		if err := writeRandom4B(path, Qwen3_4B()); err != nil {
			b.Fatal(err)
		}
		b.Logf("wrote %s in %v", path, time.Since(start))
	}
	be := newCPU(b)
	start := time.Now()
	enc, err := Load(path, be, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer enc.Close()
	b.Logf("loaded %v in %v", enc, time.Since(start))
	ids := make([]int, 77)
	for i := range ids {
		ids[i] = (i*7919 + 13) % 151643
	}
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		h, err := enc.Hidden(ctx, ids)
		if err != nil {
			b.Fatal(err)
		}
		if !h.ShapeIs(1, 77, 2560) {
			b.Fatalf("hidden %v", h.Shape())
		}
		be.Free(h)
	}
	b.StopTimer()
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/encode")
	if hwm, err := procStatusKB("VmHWM"); err == nil {
		b.ReportMetric(float64(hwm)/(1<<20), "peak_RSS_GiB")
	}
}

// procStatusKB reads a "kB" field of /proc/self/status.
func procStatusKB(field string) (int64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", field)
}

// writeRandom4B streams a safetensors file with every tensor of a Qwen3 decoder of config c in
// HF naming, BF16, filled with small pseudo-random values (norm gains near 1), without holding
// the tensors in memory.
func writeRandom4B(path string, c Config) error {
	type tspec struct {
		name  string
		shape []int
		gain  bool
		scale float64
	}
	H, D, I := c.HiddenSize, c.HeadDim, c.IntermediateSize
	q, kv := c.NumAttentionHeads*D, c.NumKeyValueHeads*D
	specs := []tspec{{"model.embed_tokens.weight", []int{c.VocabSize, H}, false, 1}, {"model.norm.weight", []int{H}, true, 0}}
	for l := range c.NumHiddenLayers {
		p := fmt.Sprintf("model.layers.%d.", l)
		sh, si, sq := 1/math.Sqrt(float64(H)), 1/math.Sqrt(float64(I)), 1/math.Sqrt(float64(q))
		specs = append(specs,
			tspec{p + "input_layernorm.weight", []int{H}, true, 0},
			tspec{p + "post_attention_layernorm.weight", []int{H}, true, 0},
			tspec{p + "self_attn.q_proj.weight", []int{q, H}, false, sh},
			tspec{p + "self_attn.k_proj.weight", []int{kv, H}, false, sh},
			tspec{p + "self_attn.v_proj.weight", []int{kv, H}, false, sh},
			tspec{p + "self_attn.o_proj.weight", []int{H, q}, false, sq},
			tspec{p + "self_attn.q_norm.weight", []int{D}, true, 0},
			tspec{p + "self_attn.k_norm.weight", []int{D}, true, 0},
			tspec{p + "mlp.gate_proj.weight", []int{I, H}, false, sh},
			tspec{p + "mlp.up_proj.weight", []int{I, H}, false, sh},
			tspec{p + "mlp.down_proj.weight", []int{H, I}, false, si},
		)
	}
	slices.SortFunc(specs, func(a, b tspec) int { return strings.Compare(a.name, b.name) })
	header := map[string]any{}
	var off int64
	for _, s := range specs {
		n := int64(1)
		for _, d := range s.shape {
			n *= int64(d)
		}
		header[s.name] = map[string]any{"dtype": "BF16", "shape": s.shape, "data_offsets": []int64{off, off + 2*n}}
		off += 2 * n
	}
	hj, err := json.Marshal(header)
	if err != nil {
		return err
	}
	for len(hj)%8 != 0 {
		hj = append(hj, ' ')
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<22)
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hj)))
	w.Write(lenBuf[:])
	if _, err := w.Write(hj); err != nil {
		f.Close()
		return err
	}
	state := uint64(0x9e3779b97f4a7c15)
	chunk := make([]byte, 1<<21)
	for _, s := range specs {
		n := 1
		for _, d := range s.shape {
			n *= d
		}
		for n > 0 {
			m := min(n, len(chunk)/2)
			for i := range m {
				// splitmix64 → uniform in [-1, 1)
				state += 0x9e3779b97f4a7c15
				z := state
				z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
				z = (z ^ (z >> 27)) * 0x94d049bb133111eb
				z ^= z >> 31
				u := float64(z>>11)/float64(1<<53)*2 - 1
				v := u * s.scale
				if s.gain {
					v = 1 + 0.1*u
				}
				binary.LittleEndian.PutUint16(chunk[2*i:], tensor.F32ToBF16(float32(v)))
			}
			if _, err := w.Write(chunk[:2*m]); err != nil {
				f.Close()
				return err
			}
			n -= m
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
