package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dypegraph/dypegraph/models/zimage"
	"github.com/dypegraph/dypegraph/tensor"
	"github.com/dypegraph/dypegraph/tensor/cpu"
)

func init() {
	commands["bench"] = command{summary: "benchmarks: bench dit (one DiT forward pass), bench dype (the DyPE resolution × method matrix)", run: runBench}
}

// benchSubcommands are the `dypegraph bench` subcommands.
var benchSubcommands = map[string]struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}{
	"dit": {summary: "time one forward pass of a random-weight Z-Image DiT of a given shape", run: runBenchDiT},
}

func runBench(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		benchUsage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	sub, ok := benchSubcommands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "dypegraph bench: unknown subcommand %q\n\n", args[0])
		benchUsage(stderr)
		return 2
	}
	return sub.run(args[1:], stdout, stderr)
}

func benchUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: dypegraph bench <subcommand> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "subcommands:")
	names := make([]string, 0, len(benchSubcommands))
	for n := range benchSubcommands {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, benchSubcommands[n].summary)
	}
}

const benchDiTUsage = `usage: dypegraph bench dit --dim D --layers L --heads H --tokens N --caption C [flags]

Builds a Z-Image-shaped DiT with random weights in memory (ComfyUI's size rules: FFN
ceil256(8/3·dim), t_embedder min(dim, 1024), RoPE axes split like (32,48,48) for head dim 128)
and times Forward on a latent of N image tokens laid out as a near-square grid and a caption
of C tokens (both padded to 32 inside the model). Prints median/min/max wall time of one
forward pass, the matrix FLOPs (zimage.md §8 counting) and the peak resident memory.

flags:
`

// benchDiTResult is the JSON the command prints.
type benchDiTResult struct {
	MedianMS    float64   `json:"median_ms"`
	MinMS       float64   `json:"min_ms"`
	MaxMS       float64   `json:"max_ms"`
	GFLOP       float64   `json:"gflop"`
	GFLOPSPerS  float64   `json:"gflops_per_s"`
	PeakRSSMB   float64   `json:"peak_rss_mb"`
	TimesMS     []float64 `json:"times_ms"`
	Backend     string    `json:"backend"`
	Kernel      string    `json:"kernel,omitempty"`
	Threads     int       `json:"threads,omitempty"`
	DType       string    `json:"dtype"`
	Dim         int       `json:"dim"`
	Layers      int       `json:"layers"`
	Refiners    int       `json:"refiner_layers"`
	Heads       int       `json:"heads"`
	HeadDim     int       `json:"head_dim"`
	FFNHidden   int       `json:"ffn_hidden"`
	CapFeatDim  int       `json:"cap_feat_dim"`
	Batch       int       `json:"batch"`
	ImageTokens int       `json:"image_tokens"`
	Grid        [2]int    `json:"grid"`
	Caption     int       `json:"caption_tokens"`
	SeqLen      int       `json:"seq_len"`
	WeightsMB   float64   `json:"weights_mb"`
	BuildMS     float64   `json:"build_ms"`
	Warmup      int       `json:"warmup"`
	Repeats     int       `json:"repeats"`
}

func runBenchDiT(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dypegraph bench dit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchDiTUsage)
		fs.PrintDefaults()
	}
	dim := fs.Int("dim", 0, "model width (required; the released model: 3840)")
	layers := fs.Int("layers", 0, "number of joint layers (required; released: 30)")
	refiners := fs.Int("refiner-layers", 2, "noise and context refiner blocks each")
	heads := fs.Int("heads", 0, "attention heads (required; dim must be a multiple)")
	tokens := fs.Int("tokens", 0, "image tokens (required; 4096 for 1024×1024)")
	caption := fs.Int("caption", 0, "caption tokens before padding (required)")
	capDim := fs.Int("cap-dim", 2560, "caption feature width (Qwen3-4B hidden size)")
	batch := fs.Int("batch", 1, "batch size")
	backend := fs.String("backend", "cpu", "tensor backend: "+strings.Join(tensor.Backends(), ", "))
	dtype := fs.String("dtype", "bf16", "weight dtype: bf16 or f32 (activations are f32)")
	threads := fs.Int("threads", 0, "CPU threads (0 = all cores; cpu backend only)")
	repeats := fs.Int("repeats", 3, "timed forward passes")
	warmup := fs.Int("warmup", 1, "untimed forward passes before timing")
	seed := fs.Uint64("seed", 1, "seed of the random weights and inputs")
	asJSON := fs.Bool("json", false, "print one JSON object instead of text")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "dypegraph bench dit: "+format+"\n", a...)
		return 2
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q (all inputs are flags)", fs.Arg(0))
	}
	for _, name := range []string{"dim", "layers", "heads", "tokens", "caption"} {
		if !flagSet(fs, name) {
			return fail("--%s is required", name)
		}
	}
	for _, f := range []struct {
		name string
		v    int
		min  int
	}{{"dim", *dim, 1}, {"layers", *layers, 0}, {"refiner-layers", *refiners, 0}, {"heads", *heads, 1},
		{"tokens", *tokens, 1}, {"caption", *caption, 1}, {"cap-dim", *capDim, 1}, {"batch", *batch, 1},
		{"repeats", *repeats, 1}, {"warmup", *warmup, 0}, {"threads", *threads, 0}} {
		if f.v < f.min {
			return fail("--%s must be at least %d, got %d", f.name, f.min, f.v)
		}
	}
	var wdt tensor.DType
	switch strings.ToLower(*dtype) {
	case "bf16":
		wdt = tensor.BF16
	case "f32", "fp32":
		wdt = tensor.F32
	case "f16", "fp16":
		wdt = tensor.F16
	default:
		return fail("--dtype must be bf16, f16 or f32, got %q", *dtype)
	}
	cfg, err := zimage.ShapeConfig(*dim, *layers, *refiners, *heads, *capDim)
	if err != nil {
		return fail("%v", err)
	}
	if *threads > 0 && *backend != "cpu" {
		return fail("--threads applies to the cpu backend only")
	}

	var be tensor.Backend
	if *backend == "cpu" {
		b, err := cpu.New(cpu.Options{Threads: *threads})
		if err != nil {
			fmt.Fprintf(stderr, "dypegraph bench dit: %v\n", err)
			return 1
		}
		be = b
	} else {
		if !slices.Contains(tensor.Backends(), *backend) {
			return fail("backend %q is not available (have: %s)", *backend, strings.Join(tensor.Backends(), ", "))
		}
		if be, err = tensor.Open(*backend); err != nil {
			fmt.Fprintf(stderr, "dypegraph bench dit: %v\n", err)
			return 1
		}
	}
	defer be.Close()

	res, err := benchDiT(be, cfg, wdt, *batch, *tokens, *caption, *warmup, *repeats, *seed)
	if err != nil {
		fmt.Fprintf(stderr, "dypegraph bench dit: %v\n", err)
		return 1
	}
	res.DType = strings.ToLower(wdt.String())
	if c, ok := be.(*cpu.Backend); ok {
		res.Kernel, res.Threads = c.KernelName(), c.Threads()
	}
	if *asJSON {
		data, err := json.Marshal(res)
		if err != nil {
			fmt.Fprintf(stderr, "dypegraph bench dit: %v\n", err)
			return 1
		}
		if _, err := stdout.Write(append(data, '\n')); err != nil {
			return 1
		}
		return 0
	}
	fmt.Fprintf(stdout, "DiT dim %d, %d layers + %d/%d refiners, %d heads of %d, FFN %d; %s weights (%.1f MB) on %s",
		res.Dim, res.Layers, res.Refiners, res.Refiners, res.Heads, res.HeadDim, res.FFNHidden, res.DType, res.WeightsMB, res.Backend)
	if res.Kernel != "" {
		fmt.Fprintf(stdout, " (%s, %d threads)", res.Kernel, res.Threads)
	}
	fmt.Fprintf(stdout, "\nbatch %d, %d image tokens (%d×%d), caption %d, joint sequence %d\n", res.Batch, res.ImageTokens, res.Grid[0], res.Grid[1], res.Caption, res.SeqLen)
	fmt.Fprintf(stdout, "forward: median %.1f ms (min %.1f, max %.1f, %d runs), %.2f GFLOP → %.1f GFLOP/s, peak RSS %.0f MB\n",
		res.MedianMS, res.MinMS, res.MaxMS, res.Repeats, res.GFLOP, res.GFLOPSPerS, res.PeakRSSMB)
	return 0
}

// flagSet reports whether the flag was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// nearSquareGrid lays n tokens out as rows × cols = n with rows ≤ cols as close as possible.
func nearSquareGrid(n int) (rows, cols int) {
	for r := int(math.Sqrt(float64(n))); r >= 1; r-- {
		if n%r == 0 {
			return r, n / r
		}
	}
	return 1, n
}

// benchDiT builds the model and times the forward passes.
func benchDiT(be tensor.Backend, cfg zimage.Config, wdt tensor.DType, batch, tokens, caption, warmup, repeats int, seed uint64) (*benchDiTResult, error) {
	start := time.Now()
	weights, err := zimage.RandomWeights(cfg, wdt, seed)
	if err != nil {
		return nil, err
	}
	wbytes := 0
	for _, t := range weights {
		wbytes += t.NumElements() * t.DType().Size()
	}
	m, err := zimage.NewFromTensors(cfg, weights, be, zimage.Options{})
	if err != nil {
		return nil, err
	}
	defer m.Close()
	gh, gw := nearSquareGrid(tokens)
	p := cfg.PatchSize
	x, err := benchInput(be, seed+1, batch, cfg.InChannels, gh*p, gw*p)
	if err != nil {
		return nil, err
	}
	defer be.Free(x)
	cx, err := benchInput(be, seed+2, batch, caption, cfg.CapFeatDim)
	if err != nil {
		return nil, err
	}
	defer be.Free(cx)
	sig := make([]float32, batch)
	for i := range sig {
		sig[i] = 0.7
	}
	build := time.Since(start)
	in := zimage.Input{X: x, Sigma: sig, Context: cx}
	run := func() (time.Duration, error) {
		t0 := time.Now()
		v, err := m.Forward(context.Background(), in)
		if err != nil {
			return 0, err
		}
		// Read one value so that an asynchronous backend has finished.
		var one [1]float32
		head, _ := v.Reshape(-1)
		if head != nil {
			head, _ = head.Slice(0, 0, 1)
		}
		if head != nil {
			err = be.Read(one[:], head)
		}
		d := time.Since(t0)
		be.Free(v)
		return d, err
	}
	for range warmup {
		if _, err := run(); err != nil {
			return nil, err
		}
	}
	times := make([]float64, repeats)
	for i := range times {
		d, err := run()
		if err != nil {
			return nil, err
		}
		times[i] = float64(d.Microseconds()) / 1000
	}
	sorted := slices.Clone(times)
	slices.Sort(sorted)
	median := sorted[len(sorted)/2]
	if len(sorted)%2 == 0 {
		median = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
	}
	gflop := cfg.FLOPs(batch, tokens, caption) / 1e9
	res := &benchDiTResult{
		MedianMS: median, MinMS: sorted[0], MaxMS: sorted[len(sorted)-1], GFLOP: gflop,
		PeakRSSMB: peakRSSMB(), TimesMS: times, Backend: be.Name(),
		Dim: cfg.Dim, Layers: cfg.NLayers, Refiners: cfg.NRefinerLayers, Heads: cfg.NHeads,
		HeadDim: cfg.HeadDim, FFNHidden: cfg.FFNHidden, CapFeatDim: cfg.CapFeatDim, Batch: batch,
		ImageTokens: tokens, Grid: [2]int{gh, gw}, Caption: caption,
		SeqLen:    roundUp(tokens, cfg.PadTokensMultiple) + roundUp(caption, cfg.PadTokensMultiple),
		WeightsMB: float64(wbytes) / (1 << 20), BuildMS: float64(build.Microseconds()) / 1000,
		Warmup: warmup, Repeats: repeats,
	}
	if median > 0 {
		res.GFLOPSPerS = gflop / (median / 1000)
	}
	return res, nil
}

func roundUp(n, m int) int {
	if m <= 1 {
		return n
	}
	return (n + m - 1) / m * m
}

// benchInput makes a backend F32 tensor of deterministic values in [-1, 1).
func benchInput(be tensor.Backend, seed uint64, shape ...int) (*tensor.Tensor, error) {
	t, err := be.Alloc(tensor.F32, shape...)
	if err != nil {
		return nil, err
	}
	v := make([]float32, t.NumElements())
	s := seed*0x9E3779B97F4A7C15 + 1
	for i := range v {
		s ^= s << 13
		s ^= s >> 7
		s ^= s << 17
		v[i] = float32(s>>40)/float32(1<<23) - 1
	}
	if err := be.Write(t, v); err != nil {
		be.Free(t)
		return nil, err
	}
	return t, nil
}

// peakRSSMB is the process's peak resident set (VmHWM on Linux; the Go runtime's memory
// obtained from the OS elsewhere).
func peakRSSMB() float64 {
	if f, err := os.Open("/proc/self/status"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
				fields := strings.Fields(rest)
				if len(fields) >= 1 {
					if kb, err := strconv.ParseFloat(fields[0], 64); err == nil {
						return kb / 1024
					}
				}
			}
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.Sys) / (1 << 20)
}
