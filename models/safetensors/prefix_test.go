package safetensors

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestDetectPrefix(t *testing.T) {
	cases := []struct {
		name     string
		names    []string
		prefixes []string
		want     string
	}{
		{"no prefix", []string{"layers.0.w", "x_embedder.weight"}, []string{"model.diffusion_model.", "diffusion_model."}, ""},
		{"comfy checkpoint", []string{"model.diffusion_model.layers.0.w", "first_stage_model.x"}, []string{"model.diffusion_model.", "model."}, "model.diffusion_model."},
		{"order decides", []string{"model.diffusion_model.layers.0.w"}, []string{"model.", "model.diffusion_model."}, "model."},
		{"second candidate", []string{"diffusion_model.a"}, []string{"model.diffusion_model.", "diffusion_model."}, "diffusion_model."},
		{"exact name is not a prefix match", []string{"model."}, []string{"model."}, ""},
		{"empty candidate ignored", []string{"a"}, []string{""}, ""},
		{"no names", nil, []string{"model."}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := DetectPrefix(tc.names, tc.prefixes...); got != tc.want {
				t.Errorf("DetectPrefix = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestStripPrefix(t *testing.T) {
	stored := []string{"model.diffusion_model.layers.0.w", "model.diffusion_model.x_pad_token", "first_stage_model.decoder.w", "model.diffusion_model."}
	entries := map[string]Entry{}
	for i, n := range stored {
		entries[n] = Entry{DType: U8, Shape: []int{1}, Data: []byte{byte(i)}}
	}
	b, err := Marshal(entries, map[string]string{"m": "1"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse("ckpt.safetensors", b)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		prefixes []string
		prefix   string
		names    string
	}{
		{"diffusion model", []string{"model.diffusion_model.", "diffusion_model."}, "model.diffusion_model.", "layers.0.w,x_pad_token"},
		{"vae", []string{"first_stage_model.", "vae."}, "first_stage_model.", "decoder.w"},
		{"nothing matches: all as stored", []string{"text_encoders."}, "", strings.Join(f.Names(), ",")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := StripPrefix(f, tc.prefixes...)
			if v.Prefix() != tc.prefix {
				t.Errorf("prefix %q, want %q", v.Prefix(), tc.prefix)
			}
			if got := strings.Join(v.Names(), ","); got != tc.names {
				t.Errorf("names %s, want %s", got, tc.names)
			}
			for _, n := range v.Names() {
				info, ok := v.Info(n)
				if !ok || info.Name != n {
					t.Errorf("Info(%q) = %+v, %v", n, info, ok)
				}
				d, err := v.Data(n)
				want, _ := f.Data(v.Stored(n))
				if err != nil || !bytes.Equal(d, want) {
					t.Errorf("Data(%q) = %v, %v; want %v", n, d, err, want)
				}
			}
			if v.Metadata()["m"] != "1" {
				t.Errorf("metadata %v", v.Metadata())
			}
		})
	}
	v := StripPrefix(f, "model.diffusion_model.")
	if _, err := v.Data("decoder.w"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a tensor outside the prefix is visible: %v", err)
	}
	if _, ok := v.Info(""); ok {
		t.Error(`Info("") found the tensor named exactly like the prefix`)
	}
	if _, err := v.Data(""); !errors.Is(err, ErrNotFound) {
		t.Errorf(`Data(""): %v`, err)
	}
}
