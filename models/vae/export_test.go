package vae

// Internals for the external tests.

// DecodeActivations exposes the activation part of DecodePeakBytes.
func (v *VAE) DecodeActivations(h, w int) int64 { return v.decodeActivations(h, w) }

// EncodeActivations exposes the activation part of EncodePeakBytes.
func (v *VAE) EncodeActivations(h, w int) int64 { return v.encodeActivations(h, w) }
