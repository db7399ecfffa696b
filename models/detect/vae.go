package detect

import "fmt"

// Flux VAE values that shapes cannot give (ComfyUI / LDM autoencoder defaults; zimage.md §6.2).
var vaeDefaults = []struct {
	key string
	val any
}{
	{"resolution", 256},
	{"dropout", 0.0},
	{"groupnorm_groups", 32},
	{"groupnorm_eps", 1e-6},
}

var vaeRequired = []string{"ch", "ch_mult", "num_res_blocks", "z_channels", "in_channels", "out_ch", "double_z"}

// fluxLatentChannels is what tells the Flux VAE from the 4-channel SD ones.
const fluxLatentChannels = 16

// vaeNames abstracts the two namings of the same autoencoder.
type vaeNames struct {
	layout    string
	downStem  string                        // encoder levels: <stem>N.
	blockStem func(level int) string        // resnets of encoder level N: <stem>M.
	conv1     func(level, block int) string // first conv of a resnet
	attnStem  func(level int) string        // attention blocks inside encoder level N, "" if none
}

var ldmNames = vaeNames{
	layout:    "ldm",
	downStem:  "encoder.down.",
	blockStem: func(l int) string { return fmt.Sprintf("encoder.down.%d.block.", l) },
	conv1:     func(l, b int) string { return fmt.Sprintf("encoder.down.%d.block.%d.conv1.weight", l, b) },
	attnStem:  func(l int) string { return fmt.Sprintf("encoder.down.%d.attn.", l) },
}

var diffusersNames = vaeNames{
	layout:    "diffusers",
	downStem:  "encoder.down_blocks.",
	blockStem: func(l int) string { return fmt.Sprintf("encoder.down_blocks.%d.resnets.", l) },
	conv1:     func(l, b int) string { return fmt.Sprintf("encoder.down_blocks.%d.resnets.%d.conv1.weight", l, b) },
	attnStem:  func(l int) string { return fmt.Sprintf("encoder.down_blocks.%d.attentions.", l) },
}

// decoder-side names, for decoder-only files.
func decoderConv2(layout string, level, nLevels, block int) string {
	if layout == "diffusers" {
		return fmt.Sprintf("decoder.up_blocks.%d.resnets.%d.conv2.weight", nLevels-1-level, block)
	}
	return fmt.Sprintf("decoder.up.%d.block.%d.conv2.weight", level, block)
}

// inferVAE recognises the LDM-style autoencoder (Flux `ae.safetensors` naming, or diffusers
// AutoencoderKL naming) and reads ch, ch_mult, num_res_blocks and z_channels from its shapes.
func inferVAE(v view) (Result, bool) {
	names := ldmNames
	if v.has("encoder.down_blocks.0.resnets.0.conv1.weight") || v.has("decoder.up_blocks.0.resnets.0.conv1.weight") {
		names = diffusersNames
	}
	b := newBuilder(FluxVAE)
	b.set("layout", names.layout)
	if v.prefix != "" {
		b.set("key_prefix", v.prefix)
	}
	encIn, hasEnc := v.shape("encoder.conv_in.weight", 4)
	decIn, hasDec := v.shape("decoder.conv_in.weight", 4)
	decOut, hasDecOut := v.shape("decoder.conv_out.weight", 4)
	if !hasEnc && !(hasDec && hasDecOut) {
		return unknown("VAE conv_in/conv_out weights missing or not 4-D")
	}

	var ch, z int
	if hasDec {
		z = decIn[1]
	}
	if hasEnc {
		ch = encIn[0]
		b.set("in_channels", encIn[1])
		if encOut, ok := v.shape("encoder.conv_out.weight", 4); ok {
			if z == 0 {
				z = encOut[0] / 2
			}
			b.set("double_z", encOut[0] == 2*z)
		}
	} else {
		ch = decOut[1]
	}
	if hasDecOut {
		b.set("out_ch", decOut[0])
	}
	if ch <= 0 || z <= 0 {
		return unknown("VAE channel counts not readable from conv shapes")
	}
	if v.has("quant_conv.weight") || v.has("post_quant_conv.weight") {
		return unknown("autoencoder with quant convs (%d latent channels) is not the Flux VAE", z)
	}
	if z != fluxLatentChannels {
		return unknown("autoencoder with %d latent channels is not the Flux VAE", z)
	}
	b.set("ch", ch)
	b.set("z_channels", z)

	var mult []int
	var attn []int
	resolution := 256
	if hasEnc {
		levels := v.count(names.downStem)
		for l := range levels {
			w, ok := v.shape(names.conv1(l, 0), 4)
			if !ok || w[0]%ch != 0 {
				return unknown("encoder level %d has no first resnet conv", l)
			}
			mult = append(mult, w[0]/ch)
			if v.count(names.attnStem(l)) > 0 {
				attn = append(attn, resolution>>l)
			}
		}
		b.set("num_res_blocks", v.count(names.blockStem(0)))
	} else {
		up := "decoder.up."
		if names.layout == "diffusers" {
			up = "decoder.up_blocks."
		}
		levels := v.count(up)
		for l := range levels {
			w, ok := v.shape(decoderConv2(names.layout, l, levels, 0), 4)
			if !ok || w[0]%ch != 0 {
				return unknown("decoder level %d has no first resnet conv", l)
			}
			mult = append(mult, w[0]/ch)
		}
		blocks := fmt.Sprintf("decoder.up.%d.block.", 0)
		if names.layout == "diffusers" {
			blocks = fmt.Sprintf("decoder.up_blocks.%d.resnets.", levels-1)
		}
		if n := v.count(blocks); n > 1 {
			b.set("num_res_blocks", n-1) // decoder levels have one resnet more
		}
	}
	if len(mult) == 0 {
		return unknown("no VAE resolution levels")
	}
	b.set("ch_mult", mult)
	if attn == nil {
		attn = []int{}
	}
	if hasEnc {
		b.set("attn_resolutions", attn)
	}
	for _, d := range vaeDefaults {
		b.def(d.key, d.val)
	}
	b.set("has_encoder", hasEnc)
	b.set("has_decoder", hasDec && hasDecOut)
	if !hasEnc {
		// A decoder-only file: the encoder's input channels and double_z do not apply.
		return b.finish([]string{"ch", "ch_mult", "num_res_blocks", "z_channels", "out_ch"})
	}
	return b.finish(vaeRequired)
}
