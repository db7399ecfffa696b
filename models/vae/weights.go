package vae

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/dypegraph/dypegraph/models/safetensors"
	"github.com/dypegraph/dypegraph/tensor"
)

// Layers, as ComfyUI's modules hold them. Every tensor lives on the VAE's backend.

type convLayer struct {
	w, b *tensor.Tensor // [Cout, Cin, K, K], [Cout]
	cout int
}

type normLayer struct {
	w, b *tensor.Tensor // [C], [C]
}

// linear is a 1x1 convolution held as a torch Linear: w [Cout, Cin], b [Cout].
type linear struct {
	w, b *tensor.Tensor
}

type resBlock struct {
	norm1, norm2 normLayer
	conv1, conv2 convLayer
	nin          *convLayer // 1x1 shortcut when in ≠ out
	cin, cout    int
}

type attnBlock struct {
	norm          normLayer
	q, k, v, proj linear
	c             int
}

type level struct {
	blocks []resBlock
	attn   []attnBlock // empty, or one per block
	resamp *convLayer  // encoder: downsample conv (stride 2); decoder: upsample conv
}

type encoder struct {
	convIn  convLayer
	levels  []level
	mid1    resBlock
	midAttn attnBlock
	mid2    resBlock
	normOut normLayer
	convOut convLayer
}

type decoder struct {
	convIn  convLayer
	mid1    resBlock
	midAttn attnBlock
	mid2    resBlock
	levels  []level // index i = ComfyUI's decoder.up.i (run from the last to 0)
	normOut normLayer
	convOut convLayer
}

// loader reads tensors by their LDM names from a source in either layout, checks their shapes,
// and collects every problem instead of stopping at the first.
type loader struct {
	src     safetensors.Source
	file    string
	layout  string
	nLevels int
	be      tensor.Backend
	errs    []error
	loaded  []*tensor.Tensor
	used    map[string]bool
}

// stored returns the name under which the source holds the LDM-named tensor.
func (l *loader) stored(name string) string {
	if l.layout == "diffusers" {
		return diffusersName(name, l.nLevels)
	}
	return name
}

func (l *loader) has(name string) bool {
	_, ok := l.src.Info(l.stored(name))
	return ok
}

func (l *loader) fail(name, format string, args ...any) {
	l.errs = append(l.errs, fmt.Errorf("vae: %s: tensor %s: %s", l.file, l.stored(name), fmt.Sprintf(format, args...)))
}

// get loads the LDM-named tensor and checks its shape. alt, when not nil, is a second accepted
// stored shape (a 1x1 conv [C,C,1,1] where a Linear [C,C] is wanted); the result always has
// shape want.
func (l *loader) get(name string, want []int, alt []int) *tensor.Tensor {
	stored := l.stored(name)
	info, ok := l.src.Info(stored)
	if !ok {
		l.fail(name, "missing")
		return nil
	}
	l.used[stored] = true
	if !sameInts(info.Shape, want) && (alt == nil || !sameInts(info.Shape, alt)) {
		if alt != nil {
			l.fail(name, "shape %v, want %v or %v", info.Shape, want, alt)
		} else {
			l.fail(name, "shape %v, want %v", info.Shape, want)
		}
		return nil
	}
	dt, err := tensor.ParseDType(string(info.DType))
	if err != nil || !dt.Valid() {
		l.fail(name, "dtype %s is not a floating-point weight type", info.DType)
		return nil
	}
	data, err := l.src.Data(stored)
	if err != nil {
		l.errs = append(l.errs, fmt.Errorf("vae: %s: tensor %s: %w", l.file, stored, err))
		return nil
	}
	t, err := tensor.FromBytes(data, dt, info.Shape...)
	if err == nil && !sameInts(info.Shape, want) {
		t, err = t.Reshape(want...)
	}
	if err == nil {
		t, err = l.be.ToDevice(t)
	}
	if err != nil {
		l.errs = append(l.errs, fmt.Errorf("vae: %s: tensor %s: %w", l.file, stored, err))
		return nil
	}
	l.loaded = append(l.loaded, t)
	return t
}

func (l *loader) conv(name string, cout, cin, k int) convLayer {
	return convLayer{
		w:    l.get(name+".weight", []int{cout, cin, k, k}, nil),
		b:    l.get(name+".bias", []int{cout}, nil),
		cout: cout,
	}
}

func (l *loader) norm(name string, c int) normLayer {
	return normLayer{w: l.get(name+".weight", []int{c}, nil), b: l.get(name+".bias", []int{c}, nil)}
}

func (l *loader) linear(name string, c int) linear {
	return linear{
		w: l.get(name+".weight", []int{c, c}, []int{c, c, 1, 1}),
		b: l.get(name+".bias", []int{c}, nil),
	}
}

func (l *loader) resBlock(name string, cin, cout int) resBlock {
	rb := resBlock{
		norm1: l.norm(name+".norm1", cin),
		conv1: l.conv(name+".conv1", cout, cin, 3),
		norm2: l.norm(name+".norm2", cout),
		conv2: l.conv(name+".conv2", cout, cout, 3),
		cin:   cin, cout: cout,
	}
	switch {
	case cin != cout:
		nin := l.conv(name+".nin_shortcut", cout, cin, 1)
		rb.nin = &nin
	case l.has(name + ".nin_shortcut.weight"):
		l.fail(name+".nin_shortcut.weight", "unexpected: block %d→%d channels needs no shortcut", cin, cout)
	}
	return rb
}

func (l *loader) attn(name string, c int) attnBlock {
	return attnBlock{
		norm: l.norm(name+".norm", c),
		q:    l.linear(name+".q", c),
		k:    l.linear(name+".k", c),
		v:    l.linear(name+".v", c),
		proj: l.linear(name+".proj_out", c),
		c:    c,
	}
}

// levelAttn decides whether a level has attention blocks: the weights say so; a configuration
// that lists attn_resolutions must agree with them.
func (l *loader) levelAttn(cfg Config, stem string, i int) bool {
	first := stem + ".attn.0.norm.weight"
	has := l.has(first)
	if cfg.AttnResolutions != nil && cfg.levelHasAttn(i) != has {
		l.fail(first, "present: %v, but attn_resolutions %v at resolution %d says %v",
			has, cfg.AttnResolutions, cfg.Resolution, cfg.levelHasAttn(i))
	}
	return has
}

func (l *loader) encoder(cfg Config) *encoder {
	e := &encoder{convIn: l.conv("encoder.conv_in", cfg.Ch, cfg.InChannels, 3)}
	in := cfg.Ch
	n := len(cfg.ChMult)
	for i := range n {
		out := cfg.levelChannels(i)
		stem := "encoder.down." + strconv.Itoa(i)
		var lv level
		withAttn := l.levelAttn(cfg, stem, i)
		for j := range cfg.NumResBlocks {
			lv.blocks = append(lv.blocks, l.resBlock(stem+".block."+strconv.Itoa(j), in, out))
			in = out
			if withAttn {
				lv.attn = append(lv.attn, l.attn(stem+".attn."+strconv.Itoa(j), out))
			}
		}
		if i != n-1 {
			c := l.conv(stem+".downsample.conv", out, out, 3)
			lv.resamp = &c
		}
		e.levels = append(e.levels, lv)
	}
	e.mid1 = l.resBlock("encoder.mid.block_1", in, in)
	e.midAttn = l.attn("encoder.mid.attn_1", in)
	e.mid2 = l.resBlock("encoder.mid.block_2", in, in)
	e.normOut = l.norm("encoder.norm_out", in)
	zc := cfg.ZChannels
	if cfg.DoubleZ {
		zc *= 2
	}
	e.convOut = l.conv("encoder.conv_out", zc, in, 3)
	return e
}

func (l *loader) decoder(cfg Config) *decoder {
	n := len(cfg.ChMult)
	in := cfg.levelChannels(n - 1)
	d := &decoder{convIn: l.conv("decoder.conv_in", in, cfg.ZChannels, 3)}
	d.mid1 = l.resBlock("decoder.mid.block_1", in, in)
	d.midAttn = l.attn("decoder.mid.attn_1", in)
	d.mid2 = l.resBlock("decoder.mid.block_2", in, in)
	d.levels = make([]level, n)
	for i := n - 1; i >= 0; i-- {
		out := cfg.levelChannels(i)
		stem := "decoder.up." + strconv.Itoa(i)
		lv := &d.levels[i]
		withAttn := l.levelAttn(cfg, stem, i)
		for j := range cfg.NumResBlocks + 1 {
			lv.blocks = append(lv.blocks, l.resBlock(stem+".block."+strconv.Itoa(j), in, out))
			in = out
			if withAttn {
				lv.attn = append(lv.attn, l.attn(stem+".attn."+strconv.Itoa(j), out))
			}
		}
		if i != 0 {
			c := l.conv(stem+".upsample.conv", out, out, 3)
			lv.resamp = &c
		}
	}
	d.normOut = l.norm("decoder.norm_out", in)
	d.convOut = l.conv("decoder.conv_out", cfg.OutCh, in, 3)
	return d
}

// err joins the collected problems (at most a dozen are listed).
func (l *loader) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	errs := l.errs
	if len(errs) > 12 {
		errs = append(errs[:12:12], fmt.Errorf("vae: %s: ... and %d more problems", l.file, len(l.errs)-12))
	}
	return errors.Join(errs...)
}

// diffusersName maps an LDM (ae.safetensors) name to the diffusers AutoencoderKL name, as
// ComfyUI's diffusers_convert does in reverse; nLevels is len(ch_mult) (decoder levels are
// numbered the other way round).
func diffusersName(name string, nLevels int) string {
	p := strings.Split(name, ".")
	if len(p) < 3 {
		return name
	}
	attn := func(rest []string) []string {
		out := append([]string(nil), rest...)
		if len(out) == 0 {
			return out
		}
		switch out[0] {
		case "norm":
			out[0] = "group_norm"
		case "q", "k", "v":
			out[0] = "to_" + out[0]
		case "proj_out":
			out = append([]string{"to_out", "0"}, out[1:]...)
		}
		return out
	}
	resnet := func(rest []string) []string {
		out := append([]string(nil), rest...)
		if len(out) > 0 && out[0] == "nin_shortcut" {
			out[0] = "conv_shortcut"
		}
		return out
	}
	var out []string
	switch p[1] {
	case "down", "up":
		if len(p) < 5 {
			return name
		}
		idx, err := strconv.Atoi(p[2])
		if err != nil {
			return name
		}
		blocks := "down_blocks"
		sampler := "downsamplers"
		if p[1] == "up" {
			blocks, sampler = "up_blocks", "upsamplers"
			idx = nLevels - 1 - idx
		}
		head := []string{p[0], blocks, strconv.Itoa(idx)}
		switch p[3] {
		case "block":
			out = append(append(head, "resnets", p[4]), resnet(p[5:])...)
		case "attn":
			out = append(append(head, "attentions", p[4]), attn(p[5:])...)
		case "downsample", "upsample":
			out = append(append(head, sampler, "0"), p[4:]...)
		default:
			return name
		}
	case "mid":
		switch p[2] {
		case "block_1", "block_2":
			if len(p) < 4 {
				return name
			}
			i := "0"
			if p[2] == "block_2" {
				i = "1"
			}
			out = append([]string{p[0], "mid_block", "resnets", i}, resnet(p[3:])...)
		case "attn_1":
			if len(p) < 4 {
				return name
			}
			out = append([]string{p[0], "mid_block", "attentions", "0"}, attn(p[3:])...)
		default:
			return name
		}
	case "norm_out":
		out = append([]string{p[0], "conv_norm_out"}, p[2:]...)
	default:
		return name
	}
	return strings.Join(out, ".")
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
