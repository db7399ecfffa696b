package brownian_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"strconv"
	"testing"

	"github.com/dypegraph/dypegraph/sampling"
	"github.com/dypegraph/dypegraph/sampling/brownian"
)

// torchRandn is the adapter to the sampling package's torch-exact CPU generator.
func torchRandn(seed uint32, dst []float32) { sampling.NewGenerator(uint64(seed)).Randn(dst) }

type refCall struct {
	Sigma     uint32   `json:"sigma"`
	SigmaNext uint32   `json:"sigma_next"`
	SHA256    string   `json:"sha256"`
	Head      []uint32 `json:"head"`
	Error     string   `json:"error"` // set where torchsde fails (RecursionError)
}

type refCase struct {
	Name     string    `json:"name"`
	Seed     string    `json:"seed"`
	Shape    []int     `json:"shape"`
	SigmaMin uint32    `json:"sigma_min"`
	SigmaMax uint32    `json:"sigma_max"`
	Calls    []refCall `json:"calls"`
}

type refFile struct {
	Cases []refCase `json:"cases"`
}

func loadRef(t *testing.T) refFile {
	t.Helper()
	raw, err := os.ReadFile("testdata/brownian_tree.json")
	if err != nil {
		t.Fatalf("reference data (regenerate with testdata/gen.py): %v", err)
	}
	var ref refFile
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatalf("testdata/brownian_tree.json: %v", err)
	}
	if len(ref.Cases) == 0 {
		t.Fatal("testdata/brownian_tree.json has no cases")
	}
	return ref
}

func ulps(a, b float32) int64 {
	ia, ib := int64(int32(math.Float32bits(a))), int64(int32(math.Float32bits(b)))
	if ia < 0 {
		ia = math.MinInt32 - ia
	}
	if ib < 0 {
		ib = math.MinInt32 - ib
	}
	d := ia - ib
	if d < 0 {
		d = -d
	}
	return d
}

// TestMatchesComfyUI replays the noise-sampler calls ComfyUI's dpmpp_2m_sde, dpmpp_sde and
// dpmpp_3m_sde make on flow schedules (and hand-made query orders) and compares every returned
// tensor with torchsde's, bit for bit (SHA-256 of the float32 bytes; the first 8 values are
// kept for the diagnosis of a mismatch). Where torchsde recurses forever (ends closer than its
// 1e-6 resolution), Sample must return an error.
func TestMatchesComfyUI(t *testing.T) {
	ref := loadRef(t)
	calls := 0
	for _, c := range ref.Cases {
		t.Run(c.Name, func(t *testing.T) {
			seed, err := strconv.ParseUint(c.Seed, 10, 64)
			if err != nil {
				t.Fatalf("seed %q: %v", c.Seed, err)
			}
			ns, err := brownian.NewTreeNoiseSampler(seed, c.Shape, math.Float32frombits(c.SigmaMin),
				math.Float32frombits(c.SigmaMax), torchRandn)
			if err != nil {
				t.Fatal(err)
			}
			for i, call := range c.Calls {
				s, sn := math.Float32frombits(call.Sigma), math.Float32frombits(call.SigmaNext)
				got, err := ns.Sample(s, sn)
				if call.Error != "" {
					if err == nil {
						t.Errorf("call %d (%v, %v): torchsde fails with %s, got noise %v...", i, s, sn, call.Error, got[:4])
					}
					continue
				}
				if err != nil {
					t.Fatalf("call %d (%v, %v): %v", i, s, sn, err)
				}
				buf := make([]byte, 4*len(got))
				for j, v := range got {
					binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(v))
				}
				sum := sha256.Sum256(buf)
				if hex.EncodeToString(sum[:]) == call.SHA256 {
					calls++
					continue
				}
				var worst int64
				for j, h := range call.Head {
					worst = max(worst, ulps(got[j], math.Float32frombits(h)))
				}
				t.Errorf("call %d (%v -> %v): noise differs from torchsde's; first %d values differ by up to %d ulp (got %v, want bits %v)",
					i, s, sn, len(call.Head), worst, got[:len(call.Head)], call.Head)
			}
		})
	}
	t.Logf("%d noise tensors bit-identical to ComfyUI/torchsde", calls)
}

// TestOrderIndependent checks the halfway tree's property that a query's noise depends on the
// seed and the interval only, not on what was asked before (the basis for replaying ComfyUI's
// calls in any sampler order), and that repeated queries give the same tensor.
func TestOrderIndependent(t *testing.T) {
	queries := [][2]float32{{0.99, 0.8}, {0.8, 0.55}, {0.55, 0.31}, {0.31, 0.05}, {0.7, 0.2}, {0.05, 0.99}}
	shape := []int{1, 4, 8, 8}
	fresh := make([][]float32, len(queries))
	for i, q := range queries {
		ns, err := brownian.NewTreeNoiseSampler(11, shape, 0.05, 0.99, torchRandn)
		if err != nil {
			t.Fatal(err)
		}
		if fresh[i], err = ns.Sample(q[0], q[1]); err != nil {
			t.Fatal(err)
		}
	}
	ns, err := brownian.NewTreeNoiseSampler(11, shape, 0.05, 0.99, torchRandn)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		for i := len(queries) - 1; i >= 0; i-- {
			got, err := ns.Sample(queries[i][0], queries[i][1])
			if err != nil {
				t.Fatal(err)
			}
			for j := range got {
				if math.Float32bits(got[j]) != math.Float32bits(fresh[i][j]) {
					t.Fatalf("round %d query %v: value %d is %v after other queries, %v on a fresh tree", round, queries[i], j, got[j], fresh[i][j])
				}
			}
		}
	}
	// Reversing the interval negates the noise; the increments of adjacent intervals add up
	// (up to float32 rounding) to the increment over their union.
	ab, _ := ns.Sample(0.8, 0.55)
	ba, _ := ns.Sample(0.55, 0.8)
	for j := range ab {
		if ab[j] != -ba[j] {
			t.Fatalf("value %d: %v over (0.8, 0.55) but %v over (0.55, 0.8)", j, ab[j], ba[j])
		}
	}
	whole, _ := ns.Sample(0.99, 0.55)
	first, _ := ns.Sample(0.99, 0.8)
	for j := range whole {
		sum := float64(first[j])*math.Sqrt(0.19) + float64(ab[j])*math.Sqrt(0.25)
		if d := math.Abs(float64(whole[j])*math.Sqrt(0.44) - sum); d > 1e-5 {
			t.Fatalf("value %d: W(0.99, 0.55) = %v but W(0.99, 0.8) + W(0.8, 0.55) = %v", j, float64(whole[j])*math.Sqrt(0.44), sum)
		}
	}
}

// TestStatistics checks that the noise is standard normal over many disjoint intervals.
func TestStatistics(t *testing.T) {
	ns, err := brownian.NewTreeNoiseSampler(2024, []int{1, 16, 16, 16}, 0.01, 1, torchRandn)
	if err != nil {
		t.Fatal(err)
	}
	var n, sum, sumSq float64
	prev := float32(1)
	for k := 1; k <= 20; k++ {
		next := float32(1 - 0.0495*float64(k))
		w, err := ns.Sample(prev, next)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range w {
			n++
			sum += float64(v)
			sumSq += float64(v) * float64(v)
		}
		prev = next
	}
	mean, variance := sum/n, sumSq/n-(sum/n)*(sum/n)
	if math.Abs(mean) > 0.02 || math.Abs(variance-1) > 0.03 {
		t.Errorf("noise over %v values has mean %.4f and variance %.4f, want 0 and 1", n, mean, variance)
	}
}

func TestBadArguments(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	cases := []struct {
		name               string
		shape              []int
		sigmaMin, sigmaMax float32
		randn              brownian.RandnFunc
	}{
		{"nil randn", []int{1, 4}, 0.1, 1, nil},
		{"empty shape", nil, 0.1, 1, torchRandn},
		{"zero dimension", []int{1, 0, 4}, 0.1, 1, torchRandn},
		{"negative dimension", []int{1, -4}, 0.1, 1, torchRandn},
		{"huge shape", []int{1 << 20, 1 << 20, 1 << 20}, 0.1, 1, torchRandn},
		{"NaN sigmaMin", []int{4}, nan, 1, torchRandn},
		{"infinite sigmaMax", []int{4}, 0.1, inf, torchRandn},
		{"negative sigmaMin", []int{4}, -0.1, 1, torchRandn},
		{"min above max", []int{4}, 0.9, 0.1, torchRandn},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if ns, err := brownian.NewTreeNoiseSampler(1, c.shape, c.sigmaMin, c.sigmaMax, c.randn); err == nil {
				t.Errorf("accepted, sampler of shape %v", ns.Shape())
			}
		})
	}

	ns, err := brownian.NewTreeNoiseSampler(1, []int{2, 3}, 0.1, 1, torchRandn)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range [][2]float32{{0.5, 0.5}, {nan, 0.5}, {0.5, inf}, {-1, 0.5}, {0.5, float32(math.Inf(-1))}} {
		if w, err := ns.Sample(q[0], q[1]); err == nil {
			t.Errorf("Sample(%v, %v) accepted, returned %v", q[0], q[1], w)
		}
	}
}

// FuzzSample drives the sampler with arbitrary schedules and queries: it must return finite
// noise of the right size or an error, never panic or hang.
func FuzzSample(f *testing.F) {
	f.Add(uint64(0), float32(0.03), float32(1), float32(0.9), float32(0.5), uint8(3))
	f.Add(uint64(1<<63+5), float32(0.5), float32(0.5), float32(0.7), float32(0.3), uint8(1))
	f.Add(uint64(7), float32(1e-7), float32(3e7), float32(2e-7), float32(1e-7), uint8(2))
	f.Add(uint64(9), float32(0.41), float32(0.42), float32(0.41), float32(0.4100004), uint8(4))
	f.Fuzz(func(t *testing.T, seed uint64, lo, hi, a, b float32, n uint8) {
		shape := []int{1, int(n%5) + 1, 3}
		ns, err := brownian.NewTreeNoiseSampler(seed, shape, lo, hi, torchRandn)
		if err != nil {
			return
		}
		for range 2 {
			w, err := ns.Sample(a, b)
			if err != nil {
				return
			}
			if len(w) != shape[1]*3 {
				t.Fatalf("%d values for shape %v", len(w), shape)
			}
			a, b = b, a
		}
	})
}

// BenchmarkSampleRun times the noise of a 20-step dpmpp_2m_sde run on a 1×16×128×128 latent
// (uniform sigmas from 1 to 0.05) against the seed+1 stream of the ancestral samplers (one
// torch.randn per step), for scale.
func BenchmarkSampleRun(b *testing.B) {
	shape := []int{1, 16, 128, 128}
	const steps = 20
	sig := make([]float32, steps)
	for i := range sig {
		sig[i] = float32(1 - 0.95*float64(i)/(steps-1))
	}
	b.Run("brownian_tree", func(b *testing.B) {
		draws := 0
		counted := func(seed uint32, dst []float32) { draws++; torchRandn(seed, dst) }
		for b.Loop() {
			ns, err := brownian.NewTreeNoiseSampler(42, shape, sig[steps-1], sig[0], counted)
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i+1 < steps; i++ {
				if _, err := ns.Sample(sig[i], sig[i+1]); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(draws)/float64(b.N), "randn/op")
	})
	b.Run("randn_stream", func(b *testing.B) {
		like, err := sampling.NewLatent(shape...)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			ns := sampling.NewNoiseSampler(42)
			for i := 0; i+1 < steps; i++ {
				ns.Next(like)
			}
		}
		b.ReportMetric(steps-1, "randn/op")
	})
}
