package upscale

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/dypegraph/dypegraph/models/safetensors"
	"github.com/dypegraph/dypegraph/models/torchpickle"
	"github.com/dypegraph/dypegraph/tensor"
)

// Naming is the key layout a state dict uses.
type Naming string

// The supported namings.
const (
	// NamingESRGAN is the original ESRGAN layout: model.0, model.1.sub.N.RDBr.convc.0, ...
	NamingESRGAN Naming = "esrgan"
	// NamingBasicSR is BasicSR's RRDBNet (Real-ESRGAN): conv_first, body.N.rdbr.convc, ...
	NamingBasicSR Naming = "basicsr"
	// NamingBSRGAN is BSRGAN's and RealSR's: conv_first, RRDB_trunk.N.RDBr.convc, trunk_conv, ...
	NamingBSRGAN Naming = "bsrgan"
)

// MaxUpsamples bounds the number of ×2 upsampling stages accepted (×16), MaxBlocks the number
// of RRDB blocks (published models have up to 23).
const (
	MaxUpsamples = 4
	MaxBlocks    = 1024
)

// Config is an RRDBNet's shape as read from its weights.
type Config struct {
	Naming Naming
	// NetInChannels is the first convolution's input width: the image channels times
	// Shuffle².
	NetInChannels int
	// InChannels and OutChannels are the image channels the model takes and returns.
	InChannels, OutChannels int
	Features                int // num_filters (nf)
	Growth                  int // growth channels of the dense blocks (gc)
	Blocks                  int // number of RRDB blocks (nb)
	Upsamples               int // ×2 nearest upsampling stages
	// Shuffle is the pixel-unshuffle factor applied to the input (1: none; Real-ESRGAN x2plus
	// uses 2, x1 uses 4).
	Shuffle int
	// Scale is the model's overall scale: 2^Upsamples / Shuffle.
	Scale int
}

// String describes the configuration in spandrel's terms.
func (c Config) String() string {
	s := fmt.Sprintf("ESRGAN x%d, %dnf, %dnb, %d→%d channels (%s naming)", c.Scale, c.Features, c.Blocks, c.InChannels, c.OutChannels, c.Naming)
	if c.Shuffle > 1 {
		s += fmt.Sprintf(", unshuffle %d", c.Shuffle)
	}
	return s
}

// ErrNotESRGAN is returned (wrapped) for state dicts that are not an ESRGAN-family model.
var ErrNotESRGAN = errors.New("not an ESRGAN (RRDBNet) upscale model")

// layerNames returns the state-dict prefixes of every convolution, in forward order, for cfg:
// first, blocks×3×5 dense convs, the trunk conv, the upsampling convs, hr, last.
type layerNames struct {
	first string
	dense [][3][5]string
	trunk string
	ups   []string
	hr    string
	last  string
}

// canonicalize strips the common prefixes spandrel removes ("module.", then "netG.").
func canonicalize(names []string) (prefix string) {
	for _, p := range []string{"module.", "netG."} {
		if len(names) == 0 {
			return prefix
		}
		all := true
		for _, n := range names {
			if !strings.HasPrefix(n, prefix+p) {
				all = false
				break
			}
		}
		if all {
			prefix += p
		}
	}
	return prefix
}

// Detect reads the configuration from a state dict's tensor shapes (names already without any
// container prefix; a common "module." or "netG." prefix is allowed). It checks that every
// tensor the network needs is present with the right shape and that no other tensor is.
func Detect(shapes map[string][]int) (Config, error) {
	names := make([]string, 0, len(shapes))
	for k := range shapes {
		names = append(names, k)
	}
	sort.Strings(names)
	prefix := canonicalize(names)
	sd := make(map[string][]int, len(shapes))
	for _, n := range names {
		sd[strings.TrimPrefix(n, prefix)] = shapes[n]
	}
	cfg, ln, err := detect(sd)
	if err != nil {
		return Config{}, err
	}
	if err := checkShapes(sd, cfg, ln); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func has(sd map[string][]int, keys ...string) bool {
	for _, k := range keys {
		if _, ok := sd[k]; !ok {
			return false
		}
	}
	return true
}

// seqIndices returns the integer indices i of keys "<prefix>i.<rest>".
func seqIndices(sd map[string][]int, prefix string) map[int]bool {
	idx := map[int]bool{}
	for k := range sd {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		head, _, _ := strings.Cut(rest, ".")
		if i, err := strconv.Atoi(head); err == nil && i >= 0 && i < 1<<20 && strconv.Itoa(i) == head {
			idx[i] = true
		}
	}
	return idx
}

func seqLen(sd map[string][]int, prefix string) int {
	n := 0
	for i := range seqIndices(sd, prefix) {
		n = max(n, i+1)
	}
	return n
}

func checkCounts(blocks, ups int) error {
	if blocks > MaxBlocks {
		return fmt.Errorf("%d RRDB blocks are more than the %d supported", blocks, MaxBlocks)
	}
	if ups > MaxUpsamples {
		return fmt.Errorf("%d upsampling stages (x%d) are not supported (at most %d)", ups, 1<<min(ups, 62), MaxUpsamples)
	}
	return nil
}

func detect(sd map[string][]int) (Config, layerNames, error) {
	var cfg Config
	var ln layerNames
	switch {
	case has(sd, "model.0.weight", "model.1.sub.0.RDB1.conv1x1.weight"),
		has(sd, "conv_first.weight", "body.0.rdb1.conv1x1.weight"):
		return cfg, ln, fmt.Errorf("ESRGAN+ models (dense blocks with conv1x1) are not supported; use a plain ESRGAN/Real-ESRGAN model")
	case has(sd, "model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight"):
		cfg.Naming = NamingESRGAN
		nb := seqLen(sd, "model.1.sub.") - 1
		if nb < 1 {
			return cfg, ln, fmt.Errorf("%w: no trunk convolution model.1.sub.N", ErrNotESRGAN)
		}
		n := seqLen(sd, "model.")
		if n < 5 {
			return cfg, ln, fmt.Errorf("%w: the model.N sequence has %d layers, want at least 5", ErrNotESRGAN, n)
		}
		ups := (n - 5) / 3
		if (n-5)%3 != 0 {
			return cfg, ln, fmt.Errorf("the model.N sequence has %d layers, which is no ×2 upsampling ESRGAN (5 + 3 per ×2); scale-3 and other variants are not supported", n)
		}
		if err := checkCounts(nb, ups); err != nil {
			return cfg, ln, err
		}
		cfg.Blocks, cfg.Upsamples = nb, ups
		ln.first = "model.0"
		ln.trunk = fmt.Sprintf("model.1.sub.%d", nb)
		ln.dense = make([][3][5]string, nb)
		for b := range nb {
			for r := range 3 {
				for c := range 5 {
					ln.dense[b][r][c] = fmt.Sprintf("model.1.sub.%d.RDB%d.conv%d.0", b, r+1, c+1)
				}
			}
		}
		for u := range ups {
			ln.ups = append(ln.ups, fmt.Sprintf("model.%d", 3*(u+1)))
		}
		ln.hr = fmt.Sprintf("model.%d", 3*ups+2)
		ln.last = fmt.Sprintf("model.%d", 3*ups+4)
	case has(sd, "conv_first.weight", "body.0.rdb1.conv1.weight", "conv_body.weight", "conv_last.weight"),
		has(sd, "conv_first.weight", "RRDB_trunk.0.RDB1.conv1.weight", "trunk_conv.weight", "conv_last.weight"):
		blockFmt, trunk := "body.%d.rdb%d.conv%d", "conv_body"
		cfg.Naming = NamingBasicSR
		if _, ok := sd["trunk_conv.weight"]; ok {
			blockFmt, trunk = "RRDB_trunk.%d.RDB%d.conv%d", "trunk_conv"
			cfg.Naming = NamingBSRGAN
		}
		blockPrefix, _, _ := strings.Cut(blockFmt, "%")
		cfg.Blocks = seqLen(sd, blockPrefix)
		if err := checkCounts(cfg.Blocks, 0); err != nil {
			return cfg, ln, err
		}
		ln.first, ln.trunk, ln.last = "conv_first", trunk, "conv_last"
		ln.dense = make([][3][5]string, cfg.Blocks)
		for b := range cfg.Blocks {
			for r := range 3 {
				for c := range 5 {
					ln.dense[b][r][c] = fmt.Sprintf(blockFmt, b, r+1, c+1)
				}
			}
		}
		// Upsampling convs: conv_upK or upconvK (either spelling in either layout, as spandrel
		// matches them), K = 1, 2, ... without gaps.
		for k := 1; ; k++ {
			var name string
			for _, p := range []string{"conv_up", "upconv"} {
				if has(sd, fmt.Sprintf("%s%d.weight", p, k)) {
					name = fmt.Sprintf("%s%d", p, k)
				}
			}
			if name == "" {
				break
			}
			if k > MaxUpsamples {
				return cfg, ln, fmt.Errorf("more than %d upsampling convolutions (x%d) are not supported", MaxUpsamples, 1<<k)
			}
			ln.ups = append(ln.ups, name)
		}
		cfg.Upsamples = len(ln.ups)
		switch {
		case has(sd, "conv_hr.weight"):
			ln.hr = "conv_hr"
		case has(sd, "HRconv.weight"):
			ln.hr = "HRconv"
		default:
			return cfg, ln, fmt.Errorf("missing tensor conv_hr.weight (or HRconv.weight)")
		}
	default:
		return cfg, ln, fmt.Errorf("%w: none of model.0.weight + model.1.sub.0.RDB1.conv1.0.weight (ESRGAN), conv_first.weight + body.0.rdb1.conv1.weight (Real-ESRGAN) or conv_first.weight + RRDB_trunk.0.RDB1.conv1.weight (BSRGAN) is present", ErrNotESRGAN)
	}
	first, ok := sd[ln.first+".weight"]
	if !ok || len(first) != 4 {
		return cfg, ln, fmt.Errorf("tensor %s.weight has shape %v, want [nf, in, 3, 3]", ln.first, first)
	}
	last, ok := sd[ln.last+".weight"]
	if !ok || len(last) != 4 {
		return cfg, ln, fmt.Errorf("tensor %s.weight has shape %v, want [out, nf, 3, 3]", ln.last, last)
	}
	dense1, ok := sd[ln.dense[0][0][0]+".weight"]
	if !ok || len(dense1) != 4 {
		return cfg, ln, fmt.Errorf("tensor %s.weight has shape %v, want [gc, nf, 3, 3]", ln.dense[0][0][0], dense1)
	}
	cfg.Features, cfg.NetInChannels, cfg.OutChannels, cfg.Growth = first[0], first[1], last[0], dense1[0]
	if cfg.Features < 1 || cfg.NetInChannels < 1 || cfg.OutChannels < 1 || cfg.Growth < 1 ||
		cfg.Features > 1<<16 || cfg.NetInChannels > 1<<16 || cfg.OutChannels > 1<<16 || cfg.Growth > 1<<16 {
		return cfg, ln, fmt.Errorf("implausible widths: %d features, %d growth, %d in and %d out channels", cfg.Features, cfg.Growth, cfg.NetInChannels, cfg.OutChannels)
	}
	// Pixel-unshuffle (Real-ESRGAN x2plus, x1): spandrel infers it from the channel ratio.
	cfg.Shuffle, cfg.InChannels = 1, cfg.NetInChannels
	switch cfg.NetInChannels {
	case cfg.OutChannels * 4:
		cfg.Shuffle, cfg.InChannels = 2, cfg.OutChannels
	case cfg.OutChannels * 16:
		cfg.Shuffle, cfg.InChannels = 4, cfg.OutChannels
	}
	if 1<<cfg.Upsamples < cfg.Shuffle {
		return cfg, ln, fmt.Errorf("an unshuffle factor of %d with %d upsampling stages would downscale; not a supported model", cfg.Shuffle, cfg.Upsamples)
	}
	cfg.Scale = (1 << cfg.Upsamples) / cfg.Shuffle
	return cfg, ln, nil
}

// expected lists every tensor the network needs with its shape.
func expected(cfg Config, ln layerNames) map[string][]int {
	want := map[string][]int{}
	conv := func(name string, cout, cin int) {
		want[name+".weight"] = []int{cout, cin, 3, 3}
		want[name+".bias"] = []int{cout}
	}
	nf, gc := cfg.Features, cfg.Growth
	conv(ln.first, nf, cfg.NetInChannels)
	for b := range ln.dense {
		for r := range 3 {
			for c := range 5 {
				cout := gc
				if c == 4 {
					cout = nf
				}
				conv(ln.dense[b][r][c], cout, nf+c*gc)
			}
		}
	}
	conv(ln.trunk, nf, nf)
	for _, u := range ln.ups {
		conv(u, nf, nf)
	}
	conv(ln.hr, nf, nf)
	conv(ln.last, cfg.OutChannels, nf)
	return want
}

func checkShapes(sd map[string][]int, cfg Config, ln layerNames) error {
	want := expected(cfg, ln)
	var problems []string
	for _, name := range sortedKeys(want) {
		got, ok := sd[name]
		switch {
		case !ok:
			problems = append(problems, "missing tensor "+name)
		case !sameInts(got, want[name]):
			problems = append(problems, fmt.Sprintf("tensor %s has shape %v, want %v", name, got, want[name]))
		}
	}
	for _, name := range sortedKeys(sd) {
		if _, ok := want[name]; !ok {
			problems = append(problems, "unexpected tensor "+name)
		}
	}
	if len(problems) == 0 {
		return nil
	}
	more := ""
	if len(problems) > 5 {
		more = fmt.Sprintf(" (and %d more)", len(problems)-5)
		problems = problems[:5]
	}
	return fmt.Errorf("not a consistent %s: %s%s", cfg, strings.Join(problems, "; "), more)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sameInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// conv is one 3×3 convolution on the backend.
type conv struct {
	w, b *tensor.Tensor
}

// Model is a loaded RRDBNet.
type Model struct {
	cfg   Config
	be    tensor.Backend
	first conv
	dense [][3][5]conv
	trunk conv
	ups   []conv
	hr    conv
	last  conv
	all   []*tensor.Tensor
}

// Config returns the model's configuration.
func (m *Model) Config() Config { return m.cfg }

// Scale returns the model's overall scale (spandrel's ImageModelDescriptor.scale).
func (m *Model) Scale() int { return m.cfg.Scale }

// Backend returns the backend the model runs on.
func (m *Model) Backend() tensor.Backend { return m.be }

// Close frees the weights. The model must not be used afterwards.
func (m *Model) Close() error {
	for _, t := range m.all {
		m.be.Free(t)
	}
	m.all = nil
	return nil
}

// Load builds a model from a state dict (tensor name → dtype, shape and little-endian bytes)
// on be. The weights are converted to float32.
func Load(sd map[string]safetensors.Entry, be tensor.Backend) (*Model, error) {
	if be == nil {
		return nil, errors.New("upscale: no tensor backend")
	}
	shapes := make(map[string][]int, len(sd))
	names := make([]string, 0, len(sd))
	for k, e := range sd {
		shapes[k] = e.Shape
		names = append(names, k)
	}
	cfg, err := Detect(shapes)
	if err != nil {
		return nil, fmt.Errorf("upscale: %w", err)
	}
	sort.Strings(names)
	prefix := canonicalize(names)
	_, ln, _ := detect(trimmed(shapes, prefix))
	m := &Model{cfg: cfg, be: be}
	var loadErr error
	get := func(name string) conv {
		if loadErr != nil {
			return conv{}
		}
		var c conv
		for i, suffix := range []string{".weight", ".bias"} {
			e := sd[prefix+name+suffix]
			t, err := upload(be, e)
			if err != nil {
				loadErr = fmt.Errorf("upscale: tensor %s%s: %w", name, suffix, err)
				return conv{}
			}
			m.all = append(m.all, t)
			if i == 0 {
				c.w = t
			} else {
				c.b = t
			}
		}
		return c
	}
	m.first = get(ln.first)
	m.dense = make([][3][5]conv, len(ln.dense))
	for b := range ln.dense {
		for r := range 3 {
			for c := range 5 {
				m.dense[b][r][c] = get(ln.dense[b][r][c])
			}
		}
	}
	m.trunk = get(ln.trunk)
	for _, u := range ln.ups {
		m.ups = append(m.ups, get(u))
	}
	m.hr = get(ln.hr)
	m.last = get(ln.last)
	if loadErr != nil {
		m.Close()
		return nil, loadErr
	}
	return m, nil
}

func trimmed(shapes map[string][]int, prefix string) map[string][]int {
	out := make(map[string][]int, len(shapes))
	for k, v := range shapes {
		out[strings.TrimPrefix(k, prefix)] = v
	}
	return out
}

// upload converts an entry to a float32 tensor on be.
func upload(be tensor.Backend, e safetensors.Entry) (*tensor.Tensor, error) {
	n := 1
	for _, d := range e.Shape {
		n *= d
	}
	size := e.DType.Size()
	if size == 0 || len(e.Data) != n*size {
		return nil, fmt.Errorf("%d bytes of %s for shape %v", len(e.Data), e.DType, e.Shape)
	}
	f := make([]float32, n)
	switch e.DType {
	case safetensors.F32:
		for i := range f {
			f[i] = math.Float32frombits(binary.LittleEndian.Uint32(e.Data[4*i:]))
		}
	case safetensors.F64:
		for i := range f {
			f[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(e.Data[8*i:])))
		}
	case safetensors.F16:
		for i := range f {
			f[i] = tensor.F16ToF32(binary.LittleEndian.Uint16(e.Data[2*i:]))
		}
	case safetensors.BF16:
		for i := range f {
			f[i] = tensor.BF16ToF32(binary.LittleEndian.Uint16(e.Data[2*i:]))
		}
	default:
		return nil, fmt.Errorf("dtype %s is not a floating-point weight type (F32, F16, BF16, F64)", e.DType)
	}
	t, err := tensor.FromFloat32(f, e.Shape...)
	if err != nil {
		return nil, err
	}
	return be.ToDevice(t)
}

// ReadSafetensors reads a .safetensors file into a state dict.
func ReadSafetensors(path string) (map[string]safetensors.Entry, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sd := make(map[string]safetensors.Entry, f.Len())
	for _, info := range f.Tensors() {
		data, err := f.Data(info.Name)
		if err != nil {
			return nil, err
		}
		sd[info.Name] = safetensors.Entry{DType: info.DType, Shape: info.Shape, Data: append([]byte(nil), data...)}
	}
	return sd, nil
}

// LoadFile loads a model file: .safetensors/.sft, or a torch pickle (.pth, .pt, .ckpt, .bin)
// through models/torchpickle.
func LoadFile(path string, be tensor.Backend) (*Model, error) {
	var sd map[string]safetensors.Entry
	var err error
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".safetensors", ".sft":
		sd, err = ReadSafetensors(path)
	case ".pth", ".pt", ".ckpt", ".bin":
		sd, err = torchpickle.Load(path)
	default:
		return nil, fmt.Errorf("upscale: %s: unsupported file type %q; use .safetensors or .pth", filepath.Base(path), ext)
	}
	if err != nil {
		return nil, fmt.Errorf("upscale: %s: %w", filepath.Base(path), err)
	}
	m, err := Load(sd, be)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return m, nil
}
