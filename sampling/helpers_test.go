package sampling

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// stTensor is one F32 tensor of a safetensors file.
type stTensor struct {
	Shape []int
	Data  []float32
}

// readSafetensorsF32 is a test-only safetensors reader: 8-byte header length, JSON header,
// raw little-endian data. It decodes F32 tensors and skips the others.
func readSafetensorsF32(path string) (map[string]stTensor, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(raw) < 8 {
		return nil, fmt.Errorf("%s: too short", path)
	}
	n := binary.LittleEndian.Uint64(raw)
	if n > uint64(len(raw)-8) {
		return nil, fmt.Errorf("%s: header length %d beyond file", path, n)
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &hdr); err != nil {
		return nil, fmt.Errorf("%s: header: %w", path, err)
	}
	data := raw[8+n:]
	out := map[string]stTensor{}
	for name, v := range hdr {
		if name == "__metadata__" {
			continue
		}
		var e struct {
			Dtype   string  `json:"dtype"`
			Shape   []int   `json:"shape"`
			Offsets []int64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, name, err)
		}
		if e.Dtype != "F32" {
			continue
		}
		if len(e.Offsets) != 2 || e.Offsets[0] < 0 || e.Offsets[1] > int64(len(data)) || e.Offsets[0] > e.Offsets[1] || (e.Offsets[1]-e.Offsets[0])%4 != 0 {
			return nil, fmt.Errorf("%s: %s: bad offsets %v", path, name, e.Offsets)
		}
		b := data[e.Offsets[0]:e.Offsets[1]]
		vals := make([]float32, len(b)/4)
		for i := range vals {
			vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		out[name] = stTensor{Shape: e.Shape, Data: vals}
	}
	return out, nil
}

// reference is testdata/reference.json (see testdata/gen_reference.py).
type reference struct {
	Noise []struct {
		Seed    uint64   `json:"seed"`
		Sizes   []int    `json:"sizes"`
		Tensors []string `json:"tensors"`
	} `json:"noise"`
	PrepareNoise []struct {
		Shape      []int  `json:"shape"`
		Seed       uint64 `json:"seed"`
		BatchIndex []int  `json:"batch_index"`
		Tensor     string `json:"tensor"`
	} `json:"prepare_noise"`
	Schedules []struct {
		Shift      float64   `json:"shift"`
		Multiplier float64   `json:"multiplier"`
		Table      []float32 `json:"table"`
		Schedules  []struct {
			Scheduler string    `json:"scheduler"`
			Steps     int       `json:"steps"`
			Sigmas    []float32 `json:"sigmas"`
		} `json:"schedules"`
	} `json:"schedules"`
	KSamplerSigmas []struct {
		Scheduler     string    `json:"scheduler"`
		Steps         int       `json:"steps"`
		Denoise       float64   `json:"denoise"`
		Start         *int      `json:"start"`
		End           *int      `json:"end"`
		LeftoverNoise bool      `json:"leftover_noise"`
		Skip          bool      `json:"skip"`
		Sigmas        []float32 `json:"sigmas"`
	} `json:"ksampler_sigmas"`
	Runs []refRun `json:"runs"`
}

type refRun struct {
	Sampler       string    `json:"sampler"`
	Scheduler     string    `json:"scheduler"`
	Steps         int       `json:"steps"`
	Denoise       float64   `json:"denoise"`
	CFG           float64   `json:"cfg"`
	Seed          uint64    `json:"seed"`
	Shape         []int     `json:"shape"`
	BatchIndex    []int     `json:"batch_index"`
	Latent        string    `json:"latent"`
	Start         *int      `json:"start"`
	End           *int      `json:"end"`
	LeftoverNoise bool      `json:"leftover_noise"`
	AddNoise      *bool     `json:"add_noise"`
	Sigmas        []float32 `json:"sigmas"`
	Output        string    `json:"output"`
	Calls         []struct {
		Cond  string  `json:"cond"`
		Sigma float32 `json:"sigma"`
		X     string  `json:"x"`
		Out   string  `json:"out"`
	} `json:"calls"`
	Callbacks []struct {
		Step     int    `json:"step"`
		Total    int    `json:"total"`
		Denoised string `json:"denoised"`
	} `json:"callbacks"`
}

type refData struct {
	reference
	t map[string]stTensor
}

var refCache *refData

func loadReference(t testing.TB) *refData {
	t.Helper()
	if refCache != nil {
		return refCache
	}
	raw, err := os.ReadFile(filepath.Join("testdata", "reference.json"))
	if err != nil {
		t.Fatalf("reference: %v", err)
	}
	r := &refData{}
	if err := json.Unmarshal(raw, &r.reference); err != nil {
		t.Fatalf("reference.json: %v", err)
	}
	r.t, err = readSafetensorsF32(filepath.Join("testdata", "reference.safetensors"))
	if err != nil {
		t.Fatalf("reference tensors: %v", err)
	}
	refCache = r
	return r
}

func (r *refData) tensor(t testing.TB, name string) stTensor {
	t.Helper()
	v, ok := r.t[name]
	if !ok {
		t.Fatalf("reference tensor %q missing", name)
	}
	return v
}

func (r *refData) latent(t testing.TB, name string) *Latent {
	t.Helper()
	v := r.tensor(t, name)
	l, err := LatentFrom(append([]float32(nil), v.Data...), v.Shape...)
	if err != nil {
		t.Fatalf("reference tensor %q: %v", name, err)
	}
	return l
}

// maxAbsDiff returns the largest |a-b| (Inf when lengths differ or a NaN appears).
func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	m := 0.0
	for i := range a {
		d := math.Abs(float64(a[i]) - float64(b[i]))
		if d != d {
			return math.Inf(1)
		}
		m = math.Max(m, d)
	}
	return m
}

// ulpDiff is the largest distance in float32 units in the last place between a and b.
func ulpDiff(a, b []float32) int64 {
	if len(a) != len(b) {
		return math.MaxInt64
	}
	var m int64
	for i := range a {
		d := ordered(a[i]) - ordered(b[i])
		if d < 0 {
			d = -d
		}
		m = max(m, d)
	}
	return m
}

func ordered(f float32) int64 {
	b := int64(math.Float32bits(f))
	if b&0x80000000 != 0 {
		return -(b & 0x7fffffff)
	}
	return b
}

// replay is a Denoiser returning, call after call, the outputs a reference run recorded for one
// conditioning, and checking that it is called with the recorded x and sigma.
type replay struct {
	t      testing.TB
	name   string
	xs     []*Latent
	outs   []*Latent
	sigmas []float32
	next   int
	xTol   float64
	maxDx  float64
}

func (r *replay) Denoise(_ context.Context, x *Latent, sigma float32, step int) (*Latent, error) {
	if r.next >= len(r.outs) {
		return nil, fmt.Errorf("%s: call %d beyond the %d recorded", r.name, r.next+1, len(r.outs))
	}
	i := r.next
	r.next++
	if ulpDiff([]float32{sigma}, []float32{r.sigmas[i]}) > 1 { // 1 ulp: kl_optimal/karras/exponential via SLEEF in torch
		r.t.Errorf("%s call %d (step %d): sigma %v, recorded %v", r.name, i, step, sigma, r.sigmas[i])
	}
	if !x.SameShape(r.xs[i]) {
		return nil, fmt.Errorf("%s call %d: x shape %v, recorded %v", r.name, i, x.Shape, r.xs[i].Shape)
	}
	d := maxAbsDiff(x.Data, r.xs[i].Data)
	r.maxDx = math.Max(r.maxDx, d)
	if d > r.xTol {
		r.t.Errorf("%s call %d (step %d): x differs from the recorded one by %g (tolerance %g)", r.name, i, step, d, r.xTol)
	}
	return r.outs[i].Clone(), nil
}
