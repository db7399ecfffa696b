package vae

// Memory estimates. They follow the forward passes of forward.go op by op: at every op the
// tensors alive are the op's inputs that are still needed, its output, and (for a bfloat16
// compute dtype) the float32 copy that the CPU backend makes of a convolution's, resize's or
// linear layer's input; attention adds its packed float32 K and V. Host buffers (inputs,
// outputs, tile accumulators) are added on top. Weights are not included: they are memory-mapped
// (CPU) or resident (device) whatever the pass.

type memModel struct {
	e int64 // bytes per activation element
}

// scratch is the float32 copy of an op input of n elements made when activations are not F32.
func (m memModel) scratch(n int64) int64 {
	if m.e != 4 {
		return 4 * n
	}
	return 0
}

// resnet: x + gn1 + conv1 out; x + conv1 out + conv2 out; x + conv2 out + shortcut out.
func (m memModel) resnet(s, cin, cout int64) int64 {
	p := (2*cin+cout)*s*m.e + m.scratch(cin*s)
	p = max(p, (cin+2*cout)*s*m.e+m.scratch(cout*s))
	if cin != cout {
		p = max(p, (cin+2*cout)*s*m.e+m.scratch(cin*s))
	}
	return p
}

// attention: x, q, k, v and the output alive during the attention op, plus K and V packed as
// float32 (a little over 2·C·S values).
func (m memModel) attention(s, c int64) int64 {
	return 5*c*s*m.e + 8*(c+16)*(s+16) + m.scratch(c*s)
}

// upsample of x [c, s]: x + the resized copy [c, 4s], then the resized copy + the conv output.
func (m memModel) upsample(s, c int64) int64 {
	return max(5*c*s*m.e+m.scratch(c*s)+m.scratch(4*c*s), 8*c*s*m.e+m.scratch(4*c*s))
}

// downsample of x [c, h, w]: x + the output [c, h/2, w/2].
func (m memModel) downsample(h, w, c int64) int64 {
	return c*h*w*m.e + c*(h/2)*(w/2)*m.e + m.scratch(c*h*w)
}

// conv of x [cin, s] into [cout, s'].
func (m memModel) conv(sIn, cin, sOut, cout int64) int64 {
	return cin*sIn*m.e + cout*sOut*m.e + m.scratch(cin*sIn)
}

func (v *VAE) mem() memModel { return memModel{e: int64(v.compute.Size())} }

// decodeActivations is the peak activation memory of DecodeRaw on one h×w latent.
func (v *VAE) decodeActivations(h, w int) int64 {
	m, c := v.mem(), v.cfg
	n := len(c.ChMult)
	s := int64(h) * int64(w)
	ch := int64(c.levelChannels(n - 1))
	// The input converted to the compute dtype (when it is not already) and conv_in.
	peak := m.conv(s, int64(c.ZChannels), s, ch) + m.scratch(int64(c.ZChannels)*s)
	peak = max(peak, m.resnet(s, ch, ch), m.attention(s, ch))
	for i := n - 1; i >= 0; i-- {
		out := int64(c.levelChannels(i))
		for j := 0; j <= c.NumResBlocks; j++ {
			peak = max(peak, m.resnet(s, ch, out))
			ch = out
			if v.dec != nil && len(v.dec.levels[i].attn) > 0 {
				peak = max(peak, m.attention(s, ch))
			}
		}
		if i != 0 {
			peak = max(peak, m.upsample(s, ch))
			s *= 4
		}
	}
	return max(peak, m.conv(s, ch, s, int64(c.OutCh)))
}

// DecodePeakBytes estimates the peak memory of a plain Decode of one h×w latent: the decoder's
// activations plus the host buffers of its output (raw decoder output and image, float32).
func (v *VAE) DecodePeakBytes(h, w int) int64 {
	f := int64(v.Downscale())
	px := int64(h) * int64(w) * f * f
	return v.decodeActivations(h, w) + 2*4*int64(v.cfg.OutCh)*px
}

// DecodeTiledPeakBytes estimates the peak memory of DecodeTiled of one h×w latent with tiles t:
// the decoder's activations on the largest tile of the three passes plus the host buffers (tile
// input, output and mask; the pass's output and weight accumulators, the running sum and the
// image, all float32 at full resolution). It grows with the image only through those host
// buffers (10 float32 values per output pixel for 3 channels).
func (v *VAE) DecodeTiledPeakBytes(h, w int, t TileOptions) int64 {
	f := int64(v.Downscale())
	oc := int64(v.cfg.OutCh)
	var tile int64
	for _, p := range decodePasses(t) {
		th, tw := min(h, max(p.tileY, 1)), min(w, max(p.tileX, 1))
		tpx := int64(th) * int64(tw) * f * f
		host := 4 * (int64(v.cfg.ZChannels)*int64(th)*int64(tw) + (oc+1)*tpx)
		tile = max(tile, v.decodeActivations(th, tw)+host)
	}
	px := int64(h) * int64(w) * f * f
	return tile + 4*px*(3*oc+1)
}

// encodeActivations is the peak activation memory of EncodeMoments on one h×w image.
func (v *VAE) encodeActivations(h, w int) int64 {
	m, c := v.mem(), v.cfg
	hh, ww := int64(h), int64(w)
	s := hh * ww
	cin := int64(c.InChannels)
	ch := int64(c.Ch)
	peak := m.conv(s, cin, s, ch) + m.scratch(cin*s)
	for i := range c.ChMult {
		out := int64(c.levelChannels(i))
		for range c.NumResBlocks {
			peak = max(peak, m.resnet(s, ch, out))
			ch = out
			if v.enc != nil && len(v.enc.levels[i].attn) > 0 {
				peak = max(peak, m.attention(s, ch))
			}
		}
		if i != len(c.ChMult)-1 {
			peak = max(peak, m.downsample(hh, ww, ch))
			hh, ww = hh/2, ww/2
			s = hh * ww
		}
	}
	peak = max(peak, m.resnet(s, ch, ch), m.attention(s, ch))
	zc := int64(c.ZChannels)
	if c.DoubleZ {
		zc *= 2
	}
	return max(peak, m.conv(s, ch, s, zc))
}

// EncodePeakBytes estimates the peak memory of a plain Encode of one h×w image (pixels, already
// a multiple of Downscale): the encoder's activations plus the host buffers (signed float32
// pixel planes and the latent).
func (v *VAE) EncodePeakBytes(h, w int) int64 {
	f := int64(v.Downscale())
	px := int64(h) * int64(w)
	return v.encodeActivations(h, w) + 4*int64(v.cfg.InChannels)*px + 4*int64(v.cfg.ZChannels)*px/(f*f)
}

// EncodeTiledPeakBytes estimates the peak memory of EncodeTiled of one h×w image with tiles t:
// the encoder's activations on the largest tile plus the host buffers (the image as planes, the
// tile and its signed copy, the accumulators at latent resolution).
func (v *VAE) EncodeTiledPeakBytes(h, w int, t TileOptions) int64 {
	f := int64(v.Downscale())
	cin, z := int64(v.cfg.InChannels), int64(v.cfg.ZChannels)
	var tile int64
	for _, p := range encodePasses(t) {
		th, tw := min(h, max(p.tileY, 1)), min(w, max(p.tileX, 1))
		tpx := int64(th) * int64(tw)
		tile = max(tile, v.encodeActivations(th, tw)+4*(2*cin*tpx+(z+1)*tpx/(f*f)))
	}
	px := int64(h) * int64(w)
	return tile + 4*cin*px + 4*(3*z+1)*px/(f*f)
}
